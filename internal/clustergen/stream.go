package clustergen

import (
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weftnet/weft/internal/policy"
)

// normalizer turns a random cluster's objects into their normal form, each
// object once, as the watcher does (an unchanged object keeps its normal
// form, so snapshots share it).
type normalizer struct {
	pods  map[*corev1.Pod]*policy.Pod
	nss   map[*corev1.Namespace]*policy.Namespace
	pols  map[*networkingv1.NetworkPolicy]*policy.Policy
	nodes map[string]*policy.Node
	audit map[string]string // namespace → enforcement annotation
}

func newNormalizer() *normalizer {
	return &normalizer{pods: map[*corev1.Pod]*policy.Pod{}, nss: map[*corev1.Namespace]*policy.Namespace{},
		pols: map[*networkingv1.NetworkPolicy]*policy.Policy{}, nodes: map[string]*policy.Node{}, audit: map[string]string{}}
}

func (n *normalizer) pod(p *corev1.Pod) *policy.Pod {
	if p == nil {
		return nil
	}
	if q, ok := n.pods[p]; ok {
		return q
	}
	q := policy.PodFromAPI(p)
	n.pods[p] = q
	return q
}

func (n *normalizer) namespace(ns *corev1.Namespace) *policy.Namespace {
	if ns == nil {
		return nil
	}
	if q, ok := n.nss[ns]; ok {
		return q
	}
	q := policy.NamespaceFromAPI(ns)
	if v := n.audit[ns.Name]; v != "" {
		q.Annotations = map[string]string{policy.EnforcementAnnotation: v}
	}
	n.nss[ns] = q
	return q
}

func (n *normalizer) policy(p *networkingv1.NetworkPolicy) *policy.Policy {
	if p == nil {
		return nil
	}
	if q, ok := n.pols[p]; ok {
		return q
	}
	q := policy.PolicyFromAPI(p)
	n.pols[p] = q
	return q
}

func (n *normalizer) clusterPolicies(c *Cluster) []*policy.ClusterPolicy {
	var out []*policy.ClusterPolicy
	for _, p := range c.ClusterPolicies {
		out = append(out, policy.ClusterPolicyFromAPI(p))
	}
	return out
}

// full builds c's snapshot from scratch (the reference).
func (n *normalizer) full(c *Cluster) *policy.Snapshot {
	var nss []*policy.Namespace
	for _, ns := range c.Namespaces {
		nss = append(nss, n.namespace(ns))
	}
	var pods []*policy.Pod
	for _, p := range c.Pods {
		pods = append(pods, n.pod(p))
	}
	var pols []*policy.Policy
	for _, p := range c.Policies {
		pols = append(pols, n.policy(p))
	}
	s := policy.BuildSnapshot(nss, pods, pols)
	var nodes []*policy.Node
	for _, node := range n.nodes {
		nodes = append(nodes, node)
	}
	s.AddNodes(nodes...)
	s.AddClusterPolicies(n.clusterPolicies(c)...)
	return s
}

// changes is ch in normal form.
func (n *normalizer) changes(c *Cluster, ch Change) policy.Changes {
	out := policy.Changes{Pods: map[string]*policy.Pod{}, Namespaces: map[string]*policy.Namespace{}, Policies: map[string]*policy.Policy{}, Nodes: map[string]*policy.Node{}}
	for k, p := range ch.Pods {
		out.Pods[k] = n.pod(p)
	}
	for k, ns := range ch.Namespaces {
		out.Namespaces[k] = n.namespace(ns)
	}
	for k, p := range ch.Policies {
		out.Policies[k] = n.policy(p)
	}
	for k, node := range ch.Nodes {
		n.nodes[k] = node
		out.Nodes[k] = node
	}
	if ch.ClusterPolicies {
		out.ClusterPolicies, out.SetClusterPolicies = n.clusterPolicies(c), true
	}
	return out
}

// Stream is a cluster that changes one random change at a time (Mutate),
// with its snapshot derived from the one before (policy.Snapshot.With), as
// the watcher derives it; every object is normalised once, so snapshots
// share what did not change.
type Stream struct {
	Cluster *Cluster
	n       *normalizer
	snap    *policy.Snapshot
}

// NewStream starts a stream from c. audit names namespaces given the
// enforcement annotation "audit".
func NewStream(c *Cluster, audit ...string) *Stream {
	s := &Stream{Cluster: c, n: newNormalizer()}
	for _, ns := range audit {
		s.n.audit[ns] = "audit"
	}
	if c.Snapshot != nil {
		for name, node := range c.Snapshot.Nodes {
			s.n.nodes[name] = node
		}
	}
	s.snap = s.n.full(c)
	return s
}

// Snapshot is the current snapshot.
func (s *Stream) Snapshot() *policy.Snapshot { return s.snap }

// Full builds the current snapshot anew from every object.
func (s *Stream) Full() *policy.Snapshot { return s.n.full(s.Cluster) }

// Next makes one random change and derives the snapshot; it returns what
// changed, in words.
func (s *Stream) Next(rng *rand.Rand) string {
	ch := s.Cluster.Mutate(rng)
	s.snap = s.snap.With(s.n.changes(s.Cluster, ch))
	return ch.What
}

// ApplyPods derives the snapshot after changes made to Cluster's objects by
// hand: pods by key (nil: deleted).
func (s *Stream) ApplyPods(pods map[string]*corev1.Pod) {
	ch := Change{Pods: pods}
	s.snap = s.snap.With(s.n.changes(s.Cluster, ch))
}

// Pod is p's normal form.
func (s *Stream) Pod(p *corev1.Pod) *policy.Pod { return s.n.pod(p) }
