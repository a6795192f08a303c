package explain

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/policy"
)

func pod(ns, name, node, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}, HostIPs: []corev1.HostIP{{IP: "10.32.0.1"}}},
	}
}

func TestSummaryAndReasons(t *testing.T) {
	snap := policy.NewSnapshot(nil,
		[]*corev1.Pod{pod("x", "b", "n1", "10.32.0.7", map[string]string{"pod": "b"}), pod("y", "a", "n1", "10.32.0.11", map[string]string{"pod": "a"})},
		[]*networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "deny-all"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}})
	e := &policy.Evaluator{Snapshot: snap}
	d := e.Decide(policy.Flow{Src: netip.MustParseAddr("10.32.0.7"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.TCP, Port: 80})
	r := NewReport(d, snap)
	want := "TCP connection from x/b 10.32.0.7 to y/a 10.32.0.11:80 blocked: ingress of y/a isolated by y/deny-all, and no ingress rule allows it"
	if got := r.Summary(); got != want {
		t.Errorf("summary:\n got %s\nwant %s", got, want)
	}
	if r.Verdict != "blocked" || len(r.Blocked) != 1 || r.Blocked[0] != "ingress" {
		t.Errorf("report %+v", r)
	}

	// From the pod's node (its host IP): always allowed, and said so.
	d = e.Decide(policy.Flow{Src: netip.MustParseAddr("10.32.0.1"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.TCP, Port: 80})
	var b strings.Builder
	r = NewReport(d, snap)
	r.WriteText(&b)
	if !d.Allowed || !strings.Contains(b.String(), "traffic from the pod's own node is always allowed") {
		t.Errorf("node traffic:\n%s", b.String())
	}
	// To itself: always allowed.
	d = e.Decide(policy.Flow{Src: netip.MustParseAddr("10.32.0.11"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.UDP, Port: 53})
	if r := NewReport(d, snap); !d.Allowed || !strings.Contains(r.Ingress.Reason, "to itself") {
		t.Errorf("self traffic: %+v", r)
	}
}

// A blocked direction of a pod whose namespace is annotated
// weft.dev/enforcement=audit is blocked by policy, and audited.
func TestAuditedSide(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "y", Annotations: map[string]string{policy.EnforcementAnnotation: "audit"}}}
	snap := policy.NewSnapshot([]*corev1.Namespace{ns},
		[]*corev1.Pod{pod("x", "b", "n1", "10.32.0.7", nil), pod("y", "a", "n1", "10.32.0.11", nil)},
		[]*networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "deny-all"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}})
	d := (&policy.Evaluator{Snapshot: snap}).Decide(policy.Flow{Src: netip.MustParseAddr("10.32.0.7"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.TCP, Port: 80})
	r := NewReport(d, snap)
	var b strings.Builder
	r.WriteText(&b)
	if r.Verdict != "blocked" || !r.Ingress.Audited || !strings.Contains(b.String(), "ingress of y/a: BLOCKED, audited: its node logs it as would be blocked and lets it through") {
		t.Errorf("report %+v:\n%s", r, b.String())
	}
}
