package policy

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReusedAddressGoesToThePodNotTerminating: while the old pod of a reused
// address terminates, the new pod owns the address, so the new pod's
// isolation applies to it.
func TestReusedAddressGoesToThePodNotTerminating(t *testing.T) {
	now := metav1.NewTime(time.Now())
	mk := func(name string, deleting bool, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "n1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.32.0.5"}}},
		}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny-new"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "new"}}},
	}
	// "a-old" sorts first by name, but it is terminating.
	s := NewSnapshot(nil, []*corev1.Pod{mk("a-old", true, nil), mk("z-new", false, map[string]string{"app": "new"})}, []*networkingv1.NetworkPolicy{deny})
	if p := s.PodByIP(netip.MustParseAddr("10.32.0.5")); p == nil || p.Name != "z-new" {
		t.Fatalf("address owner = %v, want z-new", p)
	}
	d := (&Evaluator{Snapshot: s}).Decide(Flow{Src: netip.MustParseAddr("10.32.0.9"), Dst: netip.MustParseAddr("10.32.0.5"), Protocol: TCP, Port: 80})
	if d.Allowed {
		t.Fatal("the new pod's deny-all does not hold on its reused address")
	}
}
