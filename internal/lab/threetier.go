package lab

import (
	"context"
	"fmt"

	"github.com/weftnet/weft/internal/reach"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ThreeTier is the demo application of weave-npc's talk: pods labelled
// tier=presentation, tier=middle and tier=data in one namespace, and a
// client pod in another. `make demo` and the end-to-end suite both run it.
type ThreeTier struct {
	// Namespace holds the three tiers; ClientNamespace the client.
	Namespace, ClientNamespace string
}

// DefaultThreeTier is the application in namespaces "shop" and "outside".
var DefaultThreeTier = ThreeTier{Namespace: "shop", ClientNamespace: "outside"}

// threeTierPod is one pod of the application and the node index it runs on.
type threeTierPod struct {
	namespace, name string
	labels          map[string]string
	node            int
}

func (a ThreeTier) pods() []threeTierPod {
	return []threeTierPod{
		{a.Namespace, "presentation", map[string]string{"tier": "presentation"}, 0},
		{a.Namespace, "middle", map[string]string{"tier": "middle"}, 0},
		{a.Namespace, "data", map[string]string{"tier": "data"}, 1},
		{a.ClientNamespace, "client", map[string]string{"app": "client"}, 1},
	}
}

// Deploy creates the namespaces and the pods (presentation and middle on the
// first node, data and client on the last) and returns the pods in the
// order presentation, middle, data, client.
func (a ThreeTier) Deploy(ctx context.Context, l *Lab) ([]*Pod, error) {
	for _, ns := range []string{a.Namespace, a.ClientNamespace} {
		if err := l.EnsureNamespace(ctx, ns, map[string]string{"name": ns}); err != nil {
			return nil, err
		}
	}
	var out []*Pod
	for _, p := range a.pods() {
		node := l.Nodes[min(p.node, len(l.Nodes)-1)]
		pod, err := l.AddPod(ctx, PodSpec{Namespace: p.namespace, Name: p.name, Node: node, Labels: p.labels})
		if err != nil {
			return out, fmt.Errorf("deploy three-tier application: %w", err)
		}
		out = append(out, pod)
	}
	return out, nil
}

// Policies are the talk's two policies — presentation-policy (ingress on
// TCP 80 from anywhere) and middle-tier-policy (ingress only from
// tier=presentation) — and data-tier-policy (ingress only from tier=middle).
func (a ThreeTier) Policies() []*networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port80 := intstr.FromInt32(80)
	tier := func(t string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"tier": t}}
	}
	from := func(t string) []networkingv1.NetworkPolicyIngressRule {
		sel := tier(t)
		return []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &sel}}}}
	}
	np := func(name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: name}, Spec: spec}
	}
	return []*networkingv1.NetworkPolicy{
		np("presentation-policy", networkingv1.NetworkPolicySpec{
			PodSelector: tier("presentation"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port80}}}},
		}),
		np("middle-tier-policy", networkingv1.NetworkPolicySpec{PodSelector: tier("middle"), Ingress: from("presentation")}),
		np("data-tier-policy", networkingv1.NetworkPolicySpec{PodSelector: tier("data"), Ingress: from("middle")}),
	}
}

// ExpectedBefore is the TCP/80 matrix with no policy: everything connects.
func (a ThreeTier) ExpectedBefore() *Matrix {
	ids := a.ids()
	return allConnect(ids)
}

// ExpectedAfter is the TCP/80 matrix with Policies applied, written by hand
// from the policies: anyone reaches presentation on TCP 80; middle accepts
// only presentation; data accepts only middle; the client is not isolated.
// Each pod reaches itself.
func (a ThreeTier) ExpectedAfter() *Matrix {
	return a.matrix(`
	           presentation middle data client
	presentation    .         .     X     .
	middle          .         .     .     .
	data            .         X     .     .
	client          .         X     X     .`)
}

// ExpectedAfterTCP81 is the TCP/81 matrix with Policies applied:
// presentation-policy opens only TCP 80, so presentation accepts nobody on
// 81; the middle and data policies name no port, so 81 is as 80 there.
func (a ThreeTier) ExpectedAfterTCP81() *Matrix {
	return a.matrix(`
	           presentation middle data client
	presentation    .         .     X     .
	middle          X         .     .     .
	data            X         X     .     .
	client          X         X     X     .`)
}

// matrix reads a matrix written with short names and gives it the pods' IDs.
func (a ThreeTier) matrix(text string) *Matrix {
	short := reach.MustParseMatrix(text)
	ids := a.ids()
	m := reach.NewMatrix(ids, ids, false)
	for i, from := range short.From {
		for j, to := range short.To {
			m.Set(ids[i], ids[j], connects(short, from, to))
		}
	}
	return m
}

func (a ThreeTier) ids() []string {
	var ids []string
	for _, p := range a.pods() {
		ids = append(ids, p.namespace+"/"+p.name)
	}
	return ids
}
