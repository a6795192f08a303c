package compile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/ir"
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

func (n *normalizer) clusterPolicies(c *clustergen.Cluster) []*policy.ClusterPolicy {
	var out []*policy.ClusterPolicy
	for _, p := range c.ClusterPolicies {
		out = append(out, policy.ClusterPolicyFromAPI(p))
	}
	return out
}

// full builds c's snapshot from scratch (the reference).
func (n *normalizer) full(c *clustergen.Cluster) *policy.Snapshot {
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
func (n *normalizer) changes(c *clustergen.Cluster, ch clustergen.Change) policy.Changes {
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

// incrementalCase is one random cluster and the options it is compiled with.
type incrementalCase struct {
	cfg  clustergen.RandomConfig
	opts Options
}

func randomIncrementalCase(rng *rand.Rand) incrementalCase {
	ic := incrementalCase{cfg: clustergen.RandomConfig{
		Namespaces: 2 + rng.IntN(4), Pods: 6 + rng.IntN(30), Policies: 2 + rng.IntN(8), Nodes: 1 + rng.IntN(3),
	}}
	if rng.IntN(3) == 0 {
		ic.cfg.ClusterPolicies = 1 + rng.IntN(4)
	}
	switch rng.IntN(3) {
	case 0:
		ic.opts.Node = "node-1"
	case 1:
		ic.opts.Node = "node-1"
		ic.opts.PodRanges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
		ic.opts.NodeAddrs = []netip.Addr{netip.MustParseAddr("10.32.0.1")}
	}
	if rng.IntN(3) == 0 {
		ic.opts.Log = ir.DefaultLog
		ic.opts.Mode = policy.Enforcement(rng.IntN(2))
	}
	return ic
}

// runIncremental applies steps random changes to a random cluster and
// checks, after each, that the incremental compile equals Compile of the
// same snapshot, and that the derived snapshot compiles as one built anew.
// It returns how many changes it checked.
func runIncremental(t testing.TB, rng *rand.Rand, steps int) int {
	ic := randomIncrementalCase(rng)
	c := clustergen.Random(rng, ic.cfg)
	n := newNormalizer()
	if ic.opts.Log.Enabled {
		for _, ns := range c.Namespaces {
			if rng.IntN(3) == 0 {
				n.audit[ns.Name] = "audit"
			}
		}
	}
	for name, node := range c.Snapshot.Nodes {
		n.nodes[name] = node
	}
	snap := n.full(c)
	inc := NewIncremental()
	check := func(what string) {
		t.Helper()
		got := inc.Compile(snap, ic.opts)
		want := CompileWith(snap, ic.opts)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s (cluster %+v, options %+v): the incremental compile differs from Compile:\n%s", what, ic.cfg, ic.opts, rulesetDiff(want, got))
		}
		full := n.full(c)
		if d := policy.Diff(full, snap); d != "" {
			t.Fatalf("after %s: the derived snapshot differs from one built anew: %s", what, d)
		}
		if fresh := CompileWith(full, ic.opts); !reflect.DeepEqual(want, fresh) {
			t.Fatalf("after %s (cluster %+v, options %+v): the derived snapshot compiles otherwise than one built anew:\n%s", what, ic.cfg, ic.opts, rulesetDiff(fresh, want))
		}
	}
	check("start")
	for range steps {
		ch := c.Mutate(rng)
		snap = snap.With(n.changes(c, ch))
		check(ch.What)
	}
	return steps
}

// rulesetDiff says where two rulesets differ.
func rulesetDiff(want, got *ir.Ruleset) string {
	var out string
	sets := func(rs *ir.Ruleset) map[string]ir.Set {
		m := map[string]ir.Set{}
		for _, s := range rs.Sets {
			m[s.Name] = s
		}
		return m
	}
	ws, gs := sets(want), sets(got)
	for name, s := range ws {
		if g, ok := gs[name]; !ok {
			out += fmt.Sprintf("  missing set %s (%s)\n", name, s.Comment)
		} else if !reflect.DeepEqual(s, g) {
			out += fmt.Sprintf("  set %s (%s): want %v %v %v, got %v %v %v\n", name, s.Comment, s.Addrs, s.Prefixes, s.Endpoints, g.Addrs, g.Prefixes, g.Endpoints)
		}
	}
	for name, s := range gs {
		if _, ok := ws[name]; !ok {
			out += fmt.Sprintf("  extra set %s (%s)\n", name, s.Comment)
		}
	}
	if !reflect.DeepEqual(want.Chains, got.Chains) {
		out += fmt.Sprintf("  chains: want %d, got %d\n", len(want.Chains), len(got.Chains))
	}
	if !reflect.DeepEqual(want.Groups, got.Groups) {
		out += fmt.Sprintf("  groups: want %+v\n          got %+v\n", want.Groups, got.Groups)
	}
	if !reflect.DeepEqual(want.UnknownRanges, got.UnknownRanges) {
		out += fmt.Sprintf("  unknown ranges: want %v, got %v\n", want.UnknownRanges, got.UnknownRanges)
	}
	if out == "" {
		out = "  (elsewhere)"
	}
	return out
}

// TestIncrementalEqualsCompile: over 10,000 random changes (pods created,
// relabelled, moved through their phases, deleted, addresses reused;
// namespaces relabelled, created, deleted; policies created, edited,
// deleted; cluster policies and nodes changed), the incremental compile
// equals Compile after every change.
func TestIncrementalEqualsCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	total := 0
	for total < 10000 {
		total += runIncremental(t, rng, 200)
	}
	t.Logf("%d changes, incremental compile equal to Compile after each", total)
}

// FuzzIncremental is TestIncrementalEqualsCompile from a fuzzed seed.
func FuzzIncremental(f *testing.F) {
	f.Add(uint64(1), uint8(30))
	f.Add(uint64(99), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		runIncremental(t, rand.New(rand.NewPCG(seed, 3)), int(steps))
	})
}

// TestIncrementalReuses: a pod relabel patches the sets it touches and
// reuses the chains; an unrelated change recomputes no set.
func TestIncrementalReuses(t *testing.T) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 100, Policies: 400, LocalPods: 60, Nodes: 20, Seed: 1})
	n := newNormalizer()
	snap := n.full(c)
	inc := NewIncremental()
	opts := Options{Node: "node-1"}
	inc.Compile(snap, opts)
	if !inc.Stats.Full {
		t.Fatal("the first compile was not a full one")
	}
	// Relabel a remote pod.
	i := slices.IndexFunc(c.Pods, func(p *corev1.Pod) bool { return p.Spec.NodeName != "node-1" })
	p := c.Pods[i].DeepCopy()
	p.Labels["app"] = "app-7"
	c.Pods[i] = p
	snap = snap.With(policy.Changes{Pods: map[string]*policy.Pod{p.Namespace + "/" + p.Name: n.pod(p)}})
	got := inc.Compile(snap, opts)
	if inc.Stats.Full || inc.Stats.SetsBuilt != 0 || inc.Stats.ChainsReused == 0 {
		t.Fatalf("a relabel compiled %+v; want no set built and chains reused", inc.Stats)
	}
	if want := CompileWith(snap, opts); !reflect.DeepEqual(got, want) {
		t.Fatalf("differs from Compile:\n%s", rulesetDiff(want, got))
	}
}
