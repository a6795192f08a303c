package compile

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
)

// packetFor is how node sees the first packet of f.
func packetFor(s *policy.Snapshot, f policy.Flow, node string) ir.Packet {
	return ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: uint8(f.Protocol), Port: f.Port, FromHost: s.IsNodeAddress(f.Src, node), ToHost: s.IsNodeAddress(f.Dst, node)}
}

// mismatches compares, for every flow, the evaluator with the compiled and
// traced ruleset: per node (each node's view) and for the whole cluster (a
// flow passes when every node lets it through).
//
// ranges, when set, gives nodes pod ranges in which unknown addresses are
// denied; the whole-cluster comparison is then skipped (the evaluator without
// a node knows no ranges).
func mismatches(c *clustergen.Cluster, nodes []string, flows []policy.Flow, ranges ...map[string][]netip.Prefix) []string {
	s := c.Snapshot
	var podRanges map[string][]netip.Prefix
	if len(ranges) > 0 {
		podRanges = ranges[0]
	}
	tracers := make([]*ir.Tracer, len(nodes))
	for i, n := range nodes {
		tracers[i] = ir.NewTracer(CompileWith(s, Options{Node: n, PodRanges: podRanges[n]}))
	}
	whole := &policy.Evaluator{Snapshot: s}
	var out []string
	for _, f := range flows {
		all := true
		for i, n := range nodes {
			want := (&policy.Evaluator{Snapshot: s, Node: n, PodRanges: podRanges[n]}).Decide(f)
			got := tracers[i].Trace(packetFor(s, f, n))
			all = all && got.Accepted
			if got.Accepted != want.Allowed {
				out = append(out, fmt.Sprintf("node %s: %s %s -> %s:%d: evaluator allowed=%v (egress %+v, ingress %+v), trace %+v",
					n, f.Protocol, f.Src, f.Dst, f.Port, want.Allowed, want.Egress.AllowedBy, want.Ingress.AllowedBy, got))
			}
		}
		if want := whole.Decide(f); podRanges == nil && want.Allowed != all {
			out = append(out, fmt.Sprintf("whole cluster: %s %s -> %s:%d: evaluator allowed=%v, nodes together %v", f.Protocol, f.Src, f.Dst, f.Port, want.Allowed, all))
		}
	}
	return out
}

func nodesOf(c *clustergen.Cluster) []string {
	var nodes []string
	for n := range c.NodeIPs {
		nodes = append(nodes, n)
	}
	return nodes
}

// TestCompileAgreesWithEvaluator is the differential test: random clusters and
// policies, random flows, evaluator against Compile + Trace.
func TestCompileAgreesWithEvaluator(t *testing.T) {
	const clusters, flowsPer = 250, 400
	rng := rand.New(rand.NewPCG(1, 2))
	total, allowed := 0, 0
	for i := 0; i < clusters; i++ {
		cfg := clustergen.RandomConfig{Namespaces: 1 + rng.IntN(4), Pods: 4 + rng.IntN(20), Policies: 1 + rng.IntN(6), Nodes: 1 + rng.IntN(3)}
		c := clustergen.Random(rng, cfg)
		flows := clustergen.RandomFlows(rng, c, flowsPer)
		total += len(flows)
		for _, f := range flows {
			if (&policy.Evaluator{Snapshot: c.Snapshot}).Decide(f).Allowed {
				allowed++
			}
		}
		if bad := mismatches(c, nodesOf(c), flows); len(bad) > 0 {
			t.Fatalf("cluster %d (%+v): %d mismatches, first:\n%s", i, cfg, len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
	}
	if total < 100000 {
		t.Fatalf("only %d flows checked, want at least 100,000", total)
	}
	// A generator that allowed everything or nothing would prove little.
	if allowed < total/10 || allowed > total*9/10 {
		t.Fatalf("%d of %d flows allowed: the random policies are too lopsided to test anything", allowed, total)
	}
	t.Logf("%d flows, %d allowed, 0 mismatches", total, allowed)
}

// TestCompileAgreesWithEvaluatorClusterPolicies is the differential test
// with ClusterNetworkPolicies of both tiers beside NetworkPolicies: every
// action, peer kind and port form, priorities with ties, broken rules.
func TestCompileAgreesWithEvaluatorClusterPolicies(t *testing.T) {
	const clusters, flowsPer = 250, 400
	rng := rand.New(rand.NewPCG(5, 6))
	total, allowed := 0, 0
	var byTier [4]int
	for i := 0; i < clusters; i++ {
		cfg := clustergen.RandomConfig{Namespaces: 1 + rng.IntN(4), Pods: 4 + rng.IntN(20), Policies: rng.IntN(5), Nodes: 1 + rng.IntN(3), ClusterPolicies: 1 + rng.IntN(5)}
		c := clustergen.Random(rng, cfg)
		flows := clustergen.RandomFlows(rng, c, flowsPer)
		total += len(flows)
		for _, f := range flows {
			d := (&policy.Evaluator{Snapshot: c.Snapshot}).Decide(f)
			if d.Allowed {
				allowed++
			}
			byTier[d.Ingress.Tier]++
			byTier[d.Egress.Tier]++
		}
		if bad := mismatches(c, nodesOf(c), flows); len(bad) > 0 {
			t.Fatalf("cluster %d (%+v): %d mismatches, first:\n%s", i, cfg, len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
	}
	if allowed < total/10 || allowed > total*9/10 {
		t.Fatalf("%d of %d flows allowed: the random policies are too lopsided to test anything", allowed, total)
	}
	// Every tier must decide a fair share of directions, or the test proves
	// little about it.
	for tier, n := range byTier {
		if n < total/50 {
			t.Fatalf("tier %v decided only %d of %d directions", policy.Tier(tier), n, 2*total)
		}
	}
	t.Logf("%d flows, %d allowed, directions decided by Admin/NetworkPolicy/Baseline/default: %v, 0 mismatches", total, allowed, byTier)
}

// TestCompileAgreesWithEvaluatorUnknownDenied is the differential test with
// pod ranges: addresses in a node's ranges that no local pod holds (finished
// pods' old addresses, pods of other nodes, addresses of no pod) are denied
// both ways by the evaluator and by the ruleset.
func TestCompileAgreesWithEvaluatorUnknownDenied(t *testing.T) {
	const clusters, flowsPer = 150, 400
	rng := rand.New(rand.NewPCG(3, 4))
	candidates := [][]netip.Prefix{
		{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")},
		{netip.MustParsePrefix("10.32.0.0/28")},
		{netip.MustParsePrefix("10.32.0.8/29"), netip.MustParsePrefix("fd00:32::/124"), netip.MustParsePrefix("10.47.0.0/24")}, // holds node addresses
	}
	total, unknown := 0, 0
	for i := 0; i < clusters; i++ {
		cfg := clustergen.RandomConfig{Namespaces: 1 + rng.IntN(4), Pods: 4 + rng.IntN(20), Policies: 1 + rng.IntN(6), Nodes: 1 + rng.IntN(3)}
		c := clustergen.Random(rng, cfg)
		ranges := map[string][]netip.Prefix{}
		for _, n := range nodesOf(c) {
			if r := rng.IntN(len(candidates) + 1); r < len(candidates) {
				ranges[n] = candidates[r]
			}
		}
		flows := clustergen.RandomFlows(rng, c, flowsPer)
		total += len(flows)
		for _, f := range flows {
			for _, n := range nodesOf(c) {
				d := (&policy.Evaluator{Snapshot: c.Snapshot, Node: n, PodRanges: ranges[n]}).Decide(f)
				if d.Egress.Unknown || d.Ingress.Unknown {
					unknown++
					break
				}
			}
		}
		if bad := mismatches(c, nodesOf(c), flows, ranges); len(bad) > 0 {
			t.Fatalf("cluster %d (%+v, ranges %v): %d mismatches, first:\n%s", i, cfg, ranges, len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
	}
	if unknown < total/20 {
		t.Fatalf("only %d of %d flows touch an unknown address: the test proves little", unknown, total)
	}
	t.Logf("%d flows, %d with an unknown address, 0 mismatches", total, unknown)
}

func FuzzCompileAgreesWithEvaluator(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		// Cluster policies in two of three clusters.
		c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 1 + rng.IntN(3), Pods: 2 + rng.IntN(12), Policies: 1 + rng.IntN(4), Nodes: 1 + rng.IntN(2), ClusterPolicies: rng.IntN(3)})
		flows := clustergen.RandomFlows(rng, c, 200)
		if bad := mismatches(c, nodesOf(c), flows); len(bad) > 0 {
			t.Fatalf("%d mismatches, first:\n%s", len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
		// And audited: random mode and namespace annotations.
		clustergen.AnnotateEnforcement(rng, c)
		if bad, _, _ := auditMismatches(c, nodesOf(c), flows, policy.Enforcement(rng.IntN(2)), nil); len(bad) > 0 {
			t.Fatalf("audit: %d mismatches, first:\n%s", len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
	})
}

func TestCompileIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 4, Pods: 40, Policies: 12, Nodes: 2})
	want, err := json.Marshal(Compile(c.Snapshot, "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		// The same objects in another order make the same ruleset, byte for byte.
		rng.Shuffle(len(c.Pods), func(a, b int) { c.Pods[a], c.Pods[b] = c.Pods[b], c.Pods[a] })
		rng.Shuffle(len(c.Policies), func(a, b int) { c.Policies[a], c.Policies[b] = c.Policies[b], c.Policies[a] })
		rng.Shuffle(len(c.Namespaces), func(a, b int) { c.Namespaces[a], c.Namespaces[b] = c.Namespaces[b], c.Namespaces[a] })
		got, _ := json.Marshal(Compile(policy.NewSnapshot(c.Namespaces, c.Pods, c.Policies), "node-1"))
		if string(got) != string(want) {
			t.Fatalf("compile of the same cluster in another order differs")
		}
	}
}

func TestSetNamesAreStableAcrossMembershipChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 2, Pods: 20, Policies: 8, Nodes: 1})
	before := Compile(c.Snapshot, "node-1")
	// Add a pod: members change, names do not.
	c.Pods = append(c.Pods, c.Pods[0].DeepCopy())
	c.Pods[len(c.Pods)-1].Name = "newcomer"
	c.Pods[len(c.Pods)-1].Status.PodIPs[0].IP = "10.32.200.1"
	after := Compile(policy.NewSnapshot(c.Namespaces, c.Pods, c.Policies), "node-1")
	names := func(rs *ir.Ruleset) (out []string) {
		for _, s := range rs.Sets {
			out = append(out, s.Name)
		}
		for _, ch := range rs.Chains {
			out = append(out, ch.Name)
		}
		return out
	}
	if b, a := strings.Join(names(before), " "), strings.Join(names(after), " "); a != b {
		t.Fatalf("set or chain names changed with membership:\nbefore %s\nafter  %s", b, a)
	}
}

func TestSubtract(t *testing.T) {
	cases := []struct {
		cidr, except string
		want         string
	}{
		{"10.0.0.0/8", "", "10.0.0.0/8"},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9"},
		{"10.0.0.0/30", "10.0.0.1/32", "10.0.0.0/32 10.0.0.2/31"},
		{"10.0.0.0/24", "10.0.0.0/25,10.0.0.128/26", "10.0.0.192/26"},
		{"fd00::/126", "fd00::3/128", "fd00::/127 fd00::2/128"},
		{"0.0.0.0/0", "128.0.0.0/1", "0.0.0.0/1"},
	}
	for _, tc := range cases {
		var ex []netip.Prefix
		if tc.except != "" {
			for _, e := range strings.Split(tc.except, ",") {
				ex = append(ex, netip.MustParsePrefix(e))
			}
		}
		var got []string
		for _, p := range subtract(netip.MustParsePrefix(tc.cidr), ex) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s except %s = %v, want %s", tc.cidr, tc.except, got, tc.want)
		}
	}
}

// A tier chain's rules do not grow with its policies: 40 Admin policies
// denying one namespace each on 80/TCP become one rule per family, whose
// peer set is the union; a Pass between them splits the run.
func TestTierChainMergesSameVerdict(t *testing.T) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 200, Namespaces: 50, Policies: 0, LocalPods: 20, Seed: 1})
	tcp := func() []npav1alpha2.ClusterNetworkPolicyProtocol {
		return []npav1alpha2.ClusterNetworkPolicyProtocol{{TCP: &npav1alpha2.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npav1alpha2.Port{Number: 80}}}}
	}
	for i := range 40 {
		action := npav1alpha2.ClusterNetworkPolicyRuleActionDeny
		if i == 20 {
			action = npav1alpha2.ClusterNetworkPolicyRuleActionPass
		}
		p := &npav1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("deny-%02d", i)}, Spec: npav1alpha2.ClusterNetworkPolicySpec{
			Tier: npav1alpha2.AdminTier, Priority: int32(i),
			Subject: npav1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []npav1alpha2.ClusterNetworkPolicyIngressRule{{Action: action, Protocols: tcp(),
				From: []npav1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": fmt.Sprintf("ns-%d", i)}}}}}},
		}}
		c.Snapshot.AddClusterPolicies(policy.ClusterPolicyFromAPI(p))
	}
	rs := Compile(c.Snapshot, "node-1")
	var tier *ir.Chain
	for i := range rs.Chains {
		if strings.HasPrefix(rs.Chains[i].Policy, "Admin tier") && rs.Chains[i].Direction == ir.Ingress {
			tier = &rs.Chains[i]
		}
	}
	if tier == nil {
		t.Fatal("no Admin tier chain")
	}
	// Deny ×20 (v4, v6), Pass (v4, v6), Deny ×19 (v4, v6).
	var verdicts []string
	for _, r := range tier.Rules {
		verdicts = append(verdicts, fmt.Sprintf("%s/%d", r.Verdict, r.Family))
	}
	if got, want := strings.Join(verdicts, " "), "drop/4 drop/6 pass/4 pass/6 drop/4 drop/6"; got != want {
		t.Errorf("tier chain rules %q, want %q", got, want)
	}
	if s := rs.Set(tier.Rules[0].PeerSet); s == nil || s.Len() == 0 {
		t.Errorf("the first rule's union set %q is missing or empty", tier.Rules[0].PeerSet)
	}
	// And it still decides as the evaluator does, on node-1 (the other
	// nodes' pods are not compiled here: no whole-cluster comparison).
	rng := rand.New(rand.NewPCG(1, 1))
	if bad := mismatches(c, []string{"node-1"}, clustergen.RandomFlows(rng, c, 2000), map[string][]netip.Prefix{}); len(bad) > 0 {
		t.Fatalf("%d mismatches, first:\n%s", len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
	}
}

// auditMismatches compiles c for each node in mode (with the log on, as
// audit needs) and beside it in enforce mode with no annotations, and
// checks every flow: the audited ruleset lets through what the evaluator
// says passes (Decision.Passes), logs as would-be-dropped exactly the
// directions the evaluator audits, and would drop (Result.WouldDrop) each
// flow exactly where the enforcing ruleset drops it: same direction, same
// rule, same unknown address. So audit reports blocked exactly what
// enforce blocks.
func auditMismatches(c *clustergen.Cluster, nodes []string, flows []policy.Flow, mode policy.Enforcement, ranges map[string][]netip.Prefix) (bad []string, audits, byRule int) {
	s := c.Snapshot
	enforced := &policy.Snapshot{}
	*enforced = *s
	enforced.Namespaces = map[string]*policy.Namespace{}
	for name, ns := range s.Namespaces {
		enforced.Namespaces[name] = &policy.Namespace{Name: ns.Name, Labels: ns.Labels}
	}
	for _, n := range nodes {
		audit := CompileWith(s, Options{Node: n, PodRanges: ranges[n], Log: ir.DefaultLog, Mode: mode})
		if err := audit.Validate(); err != nil {
			return []string{fmt.Sprintf("node %s: audited ruleset: %v", n, err)}, 0, 0
		}
		at := ir.NewTracer(audit)
		et := ir.NewTracer(CompileWith(enforced, Options{Node: n, PodRanges: ranges[n], Log: ir.DefaultLog}))
		ev := &policy.Evaluator{Snapshot: s, Node: n, PodRanges: ranges[n], Mode: mode}
		for _, f := range flows {
			p := packetFor(s, f, n)
			want := ev.Decide(f)
			got, enf := at.Trace(p), et.Trace(p)
			var gotDirs []policy.Direction
			for _, a := range got.Audits {
				gotDirs = append(gotDirs, policy.Direction(a.Direction))
			}
			hit, unknown, drops := got.WouldDrop()
			switch {
			case got.Accepted != want.Passes() || !slices.Equal(gotDirs, want.Audits()):
				bad = append(bad, fmt.Sprintf("node %s: %s %s -> %s:%d: evaluator passes=%v audits=%v (egress %+v, ingress %+v), trace %+v",
					n, f.Protocol, f.Src, f.Dst, f.Port, want.Passes(), want.Audits(), want.Egress, want.Ingress, got))
			case drops == enf.Accepted || drops && (hit.Direction != enf.Direction || hit.Rule != enf.Rule || unknown != enf.Unknown):
				bad = append(bad, fmt.Sprintf("node %s: %s %s -> %s:%d: audited ruleset would drop=%v at %+v (unknown %v), enforcing ruleset %+v",
					n, f.Protocol, f.Src, f.Dst, f.Port, drops, hit, unknown, enf))
			case drops != !want.Allowed:
				bad = append(bad, fmt.Sprintf("node %s: %s %s -> %s:%d: would drop=%v, evaluator allowed=%v", n, f.Protocol, f.Src, f.Dst, f.Port, drops, want.Allowed))
			}
			audits += len(got.Audits)
			for _, a := range got.Audits {
				if a.Rule != "" {
					byRule++ // a ClusterNetworkPolicy Deny rule, audited
				}
			}
		}
	}
	return bad, audits, byRule
}

// TestCompileAgreesWithEvaluatorAudit is the differential test of audit
// mode: random clusters with ClusterNetworkPolicies (Deny rules become
// Audit rules) in two of three, pod ranges in every other, nodes in
// enforce or audit mode, namespaces annotated at random.
func TestCompileAgreesWithEvaluatorAudit(t *testing.T) {
	const clusters, flowsPer = 200, 400
	rng := rand.New(rand.NewPCG(7, 8))
	total, audits, byRule, blocked := 0, 0, 0, 0
	for i := 0; i < clusters; i++ {
		cfg := clustergen.RandomConfig{Namespaces: 1 + rng.IntN(4), Pods: 4 + rng.IntN(20), Policies: 1 + rng.IntN(6), Nodes: 1 + rng.IntN(3), ClusterPolicies: i % 3}
		c := clustergen.Random(rng, cfg)
		clustergen.AnnotateEnforcement(rng, c)
		ranges := map[string][]netip.Prefix{}
		if i%2 == 1 {
			for _, n := range nodesOf(c) {
				ranges[n] = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
			}
		}
		mode := policy.Enforcement(rng.IntN(2))
		flows := clustergen.RandomFlows(rng, c, flowsPer)
		total += len(flows)
		for _, f := range flows {
			if !(&policy.Evaluator{Snapshot: c.Snapshot}).Decide(f).Allowed {
				blocked++
			}
		}
		bad, n, r := auditMismatches(c, nodesOf(c), flows, mode, ranges)
		if len(bad) > 0 {
			t.Fatalf("cluster %d (%+v, mode %s): %d mismatches, first:\n%s", i, cfg, mode, len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
		}
		audits += n
		byRule += r
	}
	if audits < blocked/4 || byRule < audits/20 {
		t.Fatalf("%d audited directions (%d by a Deny rule) for %d flows (%d blocked): the test proves little", audits, byRule, total, blocked)
	}
	t.Logf("%d flows, %d blocked by policy, %d directions audited (%d by a Deny rule): 0 mismatches", total, blocked, audits, byRule)
}

// TestAuditLeavesEnforcedGroupsAlone: auditing some namespaces changes
// nothing for the pods of the others — their groups, the chains those
// reach and so the rules each of their packets walks are identical, which
// is why audit costs enforced pods nothing per packet.
func TestAuditLeavesEnforcedGroupsAlone(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	checked, auditedGroups := 0, 0
	for i := 0; i < 100; i++ {
		c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 3, Pods: 20, Policies: 5, Nodes: 1, ClusterPolicies: 2})
		opts := Options{Node: "node-1", Log: ir.DefaultLog}
		enforced := CompileWith(c.Snapshot, opts)
		clustergen.AnnotateEnforcement(rng, c)
		audited := CompileWith(c.Snapshot, opts)
		chains := func(rs *ir.Ruleset) map[string]*ir.Chain {
			m := map[string]*ir.Chain{}
			for i := range rs.Chains {
				m[rs.Chains[i].Name] = &rs.Chains[i]
			}
			return m
		}
		ec, ac := chains(enforced), chains(audited)
		groups := map[string]*ir.Group{}
		for i := range enforced.Groups {
			groups[enforced.Groups[i].Name] = &enforced.Groups[i]
		}
		for _, g := range audited.Groups {
			if g.Audit {
				auditedGroups++
				continue
			}
			e := groups[g.Name]
			if e == nil || !slices.Equal(e.Chains, g.Chains) {
				t.Fatalf("cluster %d: enforced group %s (%v) is not as without audit (%+v)", i, g.Name, g.Chains, e)
			}
			for _, m := range g.Members {
				if !slices.Contains(e.Members, m) {
					t.Fatalf("cluster %d: member %v of enforced group %s is not in it without audit", i, m, g.Name)
				}
			}
			for _, name := range g.Chains {
				if fmt.Sprint(ec[name]) != fmt.Sprint(ac[name]) {
					t.Fatalf("cluster %d: chain %s of enforced group %s differs with audit", i, name, g.Name)
				}
			}
			checked++
		}
	}
	if checked < 100 || auditedGroups < 50 {
		t.Fatalf("only %d enforced groups beside %d audited ones checked", checked, auditedGroups)
	}
}

// TestEndpointsReadInParts: a large cluster's named ports are read in parts
// on all cores; together they are what one pass over every pod finds.
func TestEndpointsReadInParts(t *testing.T) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 25000, Namespaces: 500, Policies: 10, LocalPods: 60, Nodes: 20, Seed: 3})
	comp := newCompiler(c.Snapshot, Options{Node: "node-1"})
	parts, whole := comp.allEndpoints(), comp.endpointsOf(c.Snapshot.Pods, "")
	if len(parts) != len(whole) || len(whole) == 0 {
		t.Fatalf("%d named ports read in parts, %d in one pass", len(parts), len(whole))
	}
	for k, eps := range whole {
		for fi := range eps {
			a, b := slices.Clone(parts[k][fi]), slices.Clone(eps[fi])
			slices.SortFunc(a, ir.CompareEndpoints)
			slices.SortFunc(b, ir.CompareEndpoints)
			if !slices.Equal(a, b) {
				t.Errorf("port %v family %d: %d endpoints read in parts, %d in one pass", k, fi, len(a), len(b))
			}
		}
	}
}

// TestIngressNamedPortsHoldOnlyLocalPods: an ingress rule's named port is
// looked up in a set of the node's own pods' endpoints (its destination is
// always one of them), not of every pod in the cluster; so a pod starting
// on another node, named port and all, leaves the node's ruleset as it is.
func TestIngressNamedPortsHoldOnlyLocalPods(t *testing.T) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 3000, Namespaces: 100, Policies: 300, LocalPods: 60, Nodes: 10, Seed: 5})
	rs := Compile(c.Snapshot, "node-1")
	local := map[netip.Addr]bool{}
	for _, p := range c.Snapshot.PodsOn("node-1") {
		for _, ip := range p.IPs {
			local[ip] = true
		}
	}
	byName := map[string]*ir.Set{}
	for i := range rs.Sets {
		byName[rs.Sets[i].Name] = &rs.Sets[i]
	}
	looked := 0
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.EndpointSet == "" {
				continue
			}
			if ch.Direction != ir.Ingress {
				t.Fatalf("chain %s (%v) looks up named ports: the scale cluster has ingress policies only", ch.Name, ch.Direction)
			}
			s := byName[r.EndpointSet]
			if len(s.Endpoints) == 0 && s.Family == ir.IPv4 {
				t.Fatalf("set %s (%s) is empty: node-1's pods all have a metrics port", s.Name, s.Comment)
			}
			for _, ep := range s.Endpoints {
				if !local[ep.Addr] {
					t.Fatalf("set %s (%s), looked up by an ingress rule of %s, holds %v of a pod on another node", s.Name, s.Comment, ch.Policy, ep)
				}
			}
			looked++
		}
	}
	if looked == 0 {
		t.Fatal("no rule looks up a named port: the test proves nothing")
	}
	// A pod with a metrics port starts on node-2.
	p := c.Pods[len(c.Pods)-1].DeepCopy()
	p.Name, p.Spec.NodeName, p.Status.PodIPs = "newcomer", "node-2", []corev1.PodIP{{IP: "10.63.200.1"}}
	if len(p.Spec.Containers) == 0 || len(p.Spec.Containers[0].Ports) == 0 {
		t.Fatal("the scale cluster's pods have no named ports")
	}
	after := Compile(policy.NewSnapshot(c.Namespaces, append(slices.Clone(c.Pods), p), c.Policies), "node-1")
	if diff := cmp.Diff(rs, after, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Fatalf("a pod on node-2 changed node-1's ruleset (-before +after):\n%s", diff)
	}
}
