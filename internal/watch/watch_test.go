package watch

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftnet/weft/internal/policy"
)

func TestTrimNamespaceKeepsLabelsAndWeftsAnnotations(t *testing.T) {
	in := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "x", UID: "u", ResourceVersion: "7", Labels: map[string]string{"team": "a"},
		Annotations: map[string]string{
			policy.LegacyIsolationAnnotation:                   `{"ingress":{"isolation":"DefaultDeny"}}`,
			policy.EnforcementAnnotation:                       "audit",
			"kubectl.kubernetes.io/last-applied-configuration": "{...}",
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	out := trimNamespace(in)
	want := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "x", UID: "u", ResourceVersion: "7", Labels: map[string]string{"team": "a"},
		Annotations: map[string]string{policy.LegacyIsolationAnnotation: `{"ingress":{"isolation":"DefaultDeny"}}`, policy.EnforcementAnnotation: "audit"},
	}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("trimmed namespace (-want +got):\n%s", diff)
	}
	in.Annotations = map[string]string{"other": "x"}
	if out := trimNamespace(in); out.Annotations != nil {
		t.Errorf("annotations kept: %v", out.Annotations)
	}

}

func pod(name, uid string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name, UID: types.UID(uid), ResourceVersion: "1"},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

// The CNI hook's addresses stand in for a status not yet written; a released
// address is no longer its old pod's, even while the API still says so; what
// the API does not show any more is forgotten.
func TestCNIOverlay(t *testing.T) {
	w := New(nil, slog.New(slog.DiscardHandler))
	a4, a6 := netip.MustParseAddr("10.41.0.2"), netip.MustParseAddr("fd00::41:0:2")
	var normal []*policy.Pod // the normal forms of the pods of the last snapshot
	snapOf := func(pods ...*corev1.Pod) func() (string, string) {
		w.mu.Lock()
		v := w.cni.view()
		w.mu.Unlock()
		normal = convert(pods, policy.PodFromAPI)
		s := buildSnapshot(nil, slices.Clone(normal), nil, nil, nil, v)
		return func() (string, string) {
			holder := func(a netip.Addr) string {
				if p := s.PodByIP(a); p != nil {
					return p.Key()
				}
				return ""
			}
			return holder(a4), holder(a6)
		}
	}

	// ADD before the status: the pod holds the addresses the hook gave.
	gen := w.CNIAdd("x", "new", "c1", []netip.Addr{a4, a6})
	if gen == 0 {
		t.Fatal("CNIAdd returned generation 0")
	}
	if h4, h6 := snapOf(pod("new", "u1"))(); h4 != "x/new" || h6 != "x/new" {
		t.Fatalf("after ADD, holders %q %q, want x/new", h4, h6)
	}
	// The cached normal form of the pod is not changed by the overlay.
	if c := normal[0]; len(c.IPs) != 0 {
		t.Fatalf("the overlay changed the cached pod: %v", c.IPs)
	}

	// DEL by container id alone releases what ADD reported, although the
	// API (terminating pod) still names the addresses.
	if g := w.CNIDel("x", "new", "c1", nil); g <= gen {
		t.Fatalf("CNIDel generation %d not after %d", g, gen)
	}
	if h4, h6 := snapOf(pod("new", "u1", "10.41.0.2", "fd00::41:0:2"))(); h4 != "" || h6 != "" {
		t.Fatalf("after DEL, holders %q %q, want none (the addresses are released)", h4, h6)
	}

	// A new pod given the address by ADD holds it.
	w.CNIAdd("x", "other", "c2", []netip.Addr{a4})
	if h4, _ := snapOf(pod("new", "u1", "10.41.0.2"), pod("other", "u2"))(); h4 != "x/other" {
		t.Fatalf("after the new pod's ADD, 10.41.0.2 is held by %q, want x/other", h4)
	}

	// Once x/new is gone from the API, its released address is forgotten.
	w.CNIDel("x", "new", "c1", []netip.Addr{a6})
	s := buildSnapshot(nil, convert([]*corev1.Pod{pod("other", "u2")}, policy.PodFromAPI), nil, nil, nil, w.cni.view())
	w.ForgetCNI(s)
	if len(w.cni.released) != 0 {
		t.Fatalf("released addresses of a deleted pod are kept: %v", w.cni.released)
	}
	if _, ok := w.cni.added["x/other"]; !ok {
		t.Fatal("a recent ADD of a pod the API does not show yet was forgotten")
	}
}
