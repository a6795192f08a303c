package policy

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fixedStage is a tier that does the same with every flow into pods
// labelled app=web: what a ClusterNetworkPolicy tier will do through the
// same interface.
type fixedStage struct {
	tier   Tier
	action Action
}

func (s fixedStage) Tier() Tier { return s.tier }
func (s fixedStage) Evaluate(_ *Evaluator, sub *Subject, _ *Check) Action {
	if sub.Direction == Ingress && sub.Pod.Labels["app"] == "web" {
		return s.action
	}
	return Next
}

// The pipeline: the first stage that accepts or denies decides a
// direction; NetworkPolicy isolation is a Deny, no isolation a Next; a
// direction no stage decides is allowed.
func TestPipeline(t *testing.T) {
	pod := func(name, ip string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "n1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}},
		}
	}
	pods := []*corev1.Pod{
		pod("client", "10.32.0.2", map[string]string{"app": "client"}),
		pod("isolated", "10.32.0.3", map[string]string{"app": "web", "np": "isolated"}),
		pod("allowed", "10.32.0.4", map[string]string{"app": "web", "np": "allowed"}),
		pod("open", "10.32.0.5", map[string]string{"app": "web"}),
	}
	pols := []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"np": "isolated"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "allow"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"np": "allowed"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}},
	}
	snap := NewSnapshot(nil, pods, pols)
	np := networkPolicyStage{}
	admin := func(a Action) Stage { return fixedStage{TierAdmin, a} }
	baseline := func(a Action) Stage { return fixedStage{TierBaseline, a} }
	type want struct {
		allowed bool
		tier    Tier
	}
	for _, tc := range []struct {
		name                  string
		stages                []Stage
		isolated, allow, open want
	}{
		{"NetworkPolicy alone", nil,
			want{false, TierNetworkPolicy}, want{true, TierNetworkPolicy}, want{true, TierDefault}},
		{"Admin Deny beats a NetworkPolicy allow", []Stage{admin(Deny), np},
			want{false, TierAdmin}, want{false, TierAdmin}, want{false, TierAdmin}},
		{"Admin Accept beats a NetworkPolicy isolation", []Stage{admin(Accept), np},
			want{true, TierAdmin}, want{true, TierAdmin}, want{true, TierAdmin}},
		{"Admin Pass defers to NetworkPolicy, then Baseline", []Stage{admin(Next), np, baseline(Deny)},
			want{false, TierNetworkPolicy}, want{true, TierNetworkPolicy}, want{false, TierBaseline}},
		{"Baseline Deny applies only where no NetworkPolicy isolates", []Stage{np, baseline(Deny)},
			want{false, TierNetworkPolicy}, want{true, TierNetworkPolicy}, want{false, TierBaseline}},
		{"Baseline Accept opens nothing NetworkPolicy isolates", []Stage{np, baseline(Accept)},
			want{false, TierNetworkPolicy}, want{true, TierNetworkPolicy}, want{true, TierBaseline}},
	} {
		e := &Evaluator{Snapshot: snap, Stages: tc.stages}
		for _, dst := range []struct {
			ip   string
			want want
		}{{"10.32.0.3", tc.isolated}, {"10.32.0.4", tc.allow}, {"10.32.0.5", tc.open}} {
			d := e.Decide(Flow{Src: netip.MustParseAddr("10.32.0.2"), Dst: netip.MustParseAddr(dst.ip), Protocol: TCP, Port: 80})
			if d.Allowed != dst.want.allowed || d.Ingress.Tier != dst.want.tier {
				t.Errorf("%s, to %s: allowed %v by tier %v (%v); want %v by %v", tc.name, d.Dst.Name, d.Allowed, d.Ingress.Tier, d.Ingress.Action, dst.want.allowed, dst.want.tier)
			}
			// Egress of the client: no stage decides it.
			if d.Egress.Tier != TierDefault || !d.Egress.Allowed {
				t.Errorf("%s, to %s: egress decided by %v", tc.name, d.Dst.Name, d.Egress.Tier)
			}
		}
	}
}
