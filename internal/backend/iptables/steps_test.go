package iptables

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// TestApplyNeverOpensBetweenSteps applies, on the fake kernel, a random
// cluster's ruleset and then that of a randomly changed copy (ports
// narrowed and widened, peers added and removed, pods relabelled, added and
// deleted, selectors changed; on a third of the seeds also rules turned into
// Drop and Pass, as ClusterNetworkPolicy tiers will write them). After every
// change the kernel makes on the way (each ipset line, each restore), it
// runs the flows through the kernel's rules: no state in between may accept
// a flow that both the old and the new ruleset drop. Every fourth seed the
// backend forgets its view before the change, so the adoption path (reading
// the kernel) is checked too. The end state must be the new ruleset exactly.
func TestApplyNeverOpensBetweenSteps(t *testing.T) {
	rounds := 400
	if testing.Short() {
		rounds = 60
	}
	var states, checked, staged int
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 13))
		c := clustergen.Random(rng, clustergen.RandomConfig{Pods: 16})
		c2 := mutateCluster(rng, c)
		node := clustergen.NodeName(rng.IntN(2))
		opts := compile.Options{Node: node}
		if seed%2 == 1 {
			opts.PodRanges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
		}
		oldRS, newRS := compile.CompileWith(c.Snapshot, opts), compile.CompileWith(c2.Snapshot, opts)
		if seed%3 == 2 {
			salt := uint32(seed)
			tierVerdicts(oldRS, salt, 0)
			tierVerdicts(newRS, salt, uint32(rng.IntN(3))) // 0: the same verdicts, else some rules change verdict
		}
		budget := []int{DefaultMergeBudget, 8, 40, -1}[seed%4]
		var flows []ir.Packet
		for _, f := range append(clustergen.RandomFlows(rng, c, 150), clustergen.RandomFlows(rng, c2, 150)...) {
			p := ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: uint8(f.Protocol), Port: f.Port}
			if c.Snapshot.IsNodeAddress(f.Src, node) || c.Snapshot.IsNodeAddress(f.Dst, node) {
				continue // never reaches FORWARD
			}
			flows = append(flows, p)
		}
		r := applyStepByStep(t, seed, oldRS, newRS, flows, budget, seed%4 == 3)
		states, checked = states+r.states, checked+r.states*len(flows)
		if r.staged {
			staged++
		}
	}
	t.Logf("%d rounds, %d intermediate states, %d flow checks; %d applies staged sets through the rules", rounds, states, checked, staged)
}

// stepResult is what applyStepByStep saw.
type stepResult struct {
	states int  // intermediate kernel states checked
	staged bool // the apply staged a set through the rules
}

// applyStepByStep applies oldRS, then (after Forget, if forget) newRS to a
// fake kernel with the merge budget (negative: merging off), and runs flows through the kernel's rules after every change
// on the way (each ipset line, each restore): no state may accept a flow
// that both rulesets drop, and the end state must be newRS's exactly.
func applyStepByStep(t *testing.T, seed int, oldRS, newRS *ir.Ruleset, flows []ir.Packet, budget int, forget bool) stepResult {
	t.Helper()
	oldSt, err := renderBudget(oldRS, budget, nil)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	newSt, err := renderBudget(newRS, budget, nil)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	before, after := acceptedFlows(t, oldSt, flows), acceptedFlows(t, newSt, flows)
	k := newFakeKernel(t)
	b := newFakeBackend(k, budget)
	if err := b.Apply(context.Background(), oldRS); err != nil {
		t.Fatalf("seed %d: first apply: %v", seed, err)
	}
	if forget {
		b.Forget()
	}
	var res stepResult
	failed := false
	k.observe = func(what string) {
		res.states++
		if failed {
			return
		}
		mid := acceptedFlows(t, k.state(), flows)
		for i, p := range flows {
			if mid[i] && !before[i] && !after[i] {
				t.Errorf("seed %d, step %d (%s): accepts %s → %s %s/%d, which both the old and the new ruleset drop",
					seed, res.states, firstLine(what), p.Src, p.Dst, protoName(p.Protocol), p.Port)
				failed = true
				return
			}
		}
	}
	if err := b.Apply(context.Background(), newRS); err != nil {
		t.Fatalf("seed %d: apply the change: %v", seed, err)
	}
	k.observe = nil
	res.staged = b.LastStats().SetsStaged > 0
	if diff := k.sameAs(newSt); diff != "" {
		t.Errorf("seed %d: after the change the kernel differs from the new ruleset:\n%s", seed, diff)
	}
	return res
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// acceptedFlows runs each flow through FORWARD of st.
func acceptedFlows(t *testing.T, st *state, flows []ir.Packet) []bool {
	in := newInterp(t, st)
	out := make([]bool, len(flows))
	for i, p := range flows {
		out[i] = !in.run("FORWARD", p).dropped
	}
	return out
}

// tierVerdicts turns some rules into Drop and Pass, by a hash of the chain,
// the rule's index and salt; flip, when not 0, changes the verdicts of the
// chains whose hash it picks.
func tierVerdicts(rs *ir.Ruleset, salt, flip uint32) {
	for ci := range rs.Chains {
		c := &rs.Chains[ci]
		s := salt
		if flip != 0 && hashOf(c.Name, 0, salt)%3 == 0 {
			s += flip
		}
		for ri := range c.Rules {
			switch hashOf(c.Name, ri, s) % 10 {
			case 7, 8:
				c.Rules[ri].Verdict = ir.Drop
			case 9:
				c.Rules[ri].Verdict = ir.Pass
			}
		}
	}
}

func hashOf(name string, i int, salt uint32) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s|%d|%d", name, i, salt)
	return h.Sum32()
}

var (
	mutLabelKeys   = []string{"app", "tier", "env"}
	mutLabelValues = []string{"a", "b", "c"}
)

func mutLabels(rng *rand.Rand) map[string]string {
	l := map[string]string{}
	for _, k := range mutLabelKeys {
		if rng.IntN(3) > 0 {
			l[k] = mutLabelValues[rng.IntN(len(mutLabelValues))]
		}
	}
	return l
}

// mutateCluster returns a copy of c with one to four random changes of the
// kinds that make one apply both narrow and widen what is allowed.
func mutateCluster(rng *rand.Rand, c *clustergen.Cluster) *clustergen.Cluster {
	pods := make([]*corev1.Pod, len(c.Pods))
	for i, p := range c.Pods {
		pods[i] = p.DeepCopy()
	}
	pols := make([]*networkingv1.NetworkPolicy, len(c.Policies))
	for i, p := range c.Policies {
		pols[i] = p.DeepCopy()
	}
	// ports returns the port lists of a random policy's rules.
	ports := func() []*[]networkingv1.NetworkPolicyPort {
		np := pols[rng.IntN(len(pols))]
		var out []*[]networkingv1.NetworkPolicyPort
		for i := range np.Spec.Ingress {
			out = append(out, &np.Spec.Ingress[i].Ports)
		}
		for i := range np.Spec.Egress {
			out = append(out, &np.Spec.Egress[i].Ports)
		}
		return out
	}
	for n := 1 + rng.IntN(4); n > 0; n-- {
		switch rng.IntN(8) {
		case 0, 1: // narrow ports: a range to its first port, a port to another, a rule on every port to one
			for _, pp := range ports() {
				if len(*pp) == 0 {
					v := intstr.FromInt32(80)
					*pp = []networkingv1.NetworkPolicyPort{{Port: &v}}
					continue
				}
				p := &(*pp)[rng.IntN(len(*pp))]
				switch {
				case p.EndPort != nil:
					p.EndPort = nil
				case p.Port != nil && p.Port.Type == intstr.Int:
					v := intstr.FromInt32([]int32{80, 81, 53, 8080}[rng.IntN(4)])
					p.Port = &v
				default:
					*pp = (*pp)[:0]
					v := intstr.FromInt32(81)
					*pp = append(*pp, networkingv1.NetworkPolicyPort{Port: &v})
				}
			}
		case 2: // widen ports
			for _, pp := range ports() {
				if rng.IntN(2) == 0 {
					*pp = nil
				} else if len(*pp) > 0 && (*pp)[0].Port != nil && (*pp)[0].Port.Type == intstr.Int {
					end := (*pp)[0].Port.IntVal + 10
					(*pp)[0].EndPort = &end
				}
			}
		case 3, 4: // relabel a pod: peer sets grow and shrink, pods change groups
			p := pods[rng.IntN(len(pods))]
			p.Labels = mutLabels(rng)
		case 5: // a new pod
			i := 100 + len(pods)
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespaces[rng.IntN(len(c.Namespaces))].Name, Name: fmt.Sprintf("new%d", i), Labels: mutLabels(rng)},
				Spec:       corev1.PodSpec{NodeName: clustergen.NodeName(rng.IntN(2)), Containers: []corev1.Container{{Name: "main"}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{
					{IP: netip.AddrFrom4([4]byte{10, 32, 0, byte(i)}).String()},
					{IP: fmt.Sprintf("fd00:32::%x", i+1)},
				}},
			}
			pods = append(pods, p)
		case 6: // a pod goes
			i := rng.IntN(len(pods))
			pods = append(pods[:i], pods[i+1:]...)
		case 7: // a policy selects other pods
			np := pols[rng.IntN(len(pols))]
			np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{mutLabelKeys[rng.IntN(3)]: mutLabelValues[rng.IntN(3)]}}
		}
	}
	return &clustergen.Cluster{
		Namespaces: c.Namespaces, Pods: pods, Policies: pols, NodeIPs: c.NodeIPs, External: c.External,
		Snapshot: policy.NewSnapshot(c.Namespaces, pods, pols),
	}
}

// TestApplyNeverOpensBetweenStepsIR is TestApplyNeverOpensBetweenSteps on
// small random rulesets written directly in the ir, denser than compiled
// clusters: a handful of addresses in a few sets, chains of Accept, Drop
// and Pass rules, addresses moving between groups, unknown ranges coming
// and going, and every flow between the addresses checked at every step.
func TestApplyNeverOpensBetweenStepsIR(t *testing.T) {
	rounds := 500
	if testing.Short() {
		rounds = 100
	}
	var states, staged, audited int
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 17))
		oldRS := randomIRRuleset(rng)
		newRS := mutateIRRuleset(rng, oldRS)
		if seed%4 == 1 {
			// Audit: group 2 audited before, after or both; the change
			// may switch it (enforce to audit opens, audit to enforce
			// narrows) besides the other changes.
			was, is := rng.IntN(2) == 0, rng.IntN(2) == 0
			if !was && !is {
				was = true
			}
			setAudit(oldRS, 2, was)
			setAudit(newRS, 2, is)
			audited++
		}
		budget := []int{DefaultMergeBudget, 3, -1}[seed%3]
		var flows []ir.Packet
		for _, src := range irUniverse {
			for _, dst := range irUniverse {
				for _, pp := range []struct {
					proto uint8
					port  uint16
				}{{protoTCP, 80}, {protoTCP, 85}, {protoTCP, 22}, {protoUDP, 53}} {
					flows = append(flows, ir.Packet{Src: src, Dst: dst, Protocol: pp.proto, Port: pp.port})
				}
			}
		}
		r := applyStepByStep(t, seed, oldRS, newRS, flows, budget, seed%5 == 4)
		states += r.states
		if r.staged {
			staged++
		}
	}
	t.Logf("%d rounds (%d with an audited group), %d intermediate states; %d applies staged sets through the rules", rounds, audited, states, staged)
	if staged == 0 {
		t.Error("no apply staged a set: the test should exercise staging")
	}
}

// irUniverse: the first eight are local pods, the rest remote.
var irUniverse = func() []netip.Addr {
	var out []netip.Addr
	for i := 1; i <= 8; i++ {
		out = append(out, netip.AddrFrom4([4]byte{10, 32, 0, byte(i)}))
	}
	for i := 1; i <= 3; i++ {
		out = append(out, netip.AddrFrom4([4]byte{10, 33, 0, byte(i)}))
	}
	return out
}()

func randomIRRuleset(rng *rand.Rand) *ir.Ruleset {
	rs := &ir.Ruleset{Node: "node-1"}
	for i := range 4 {
		s := ir.Set{Name: fmt.Sprintf("weft-s%d", i), Family: ir.IPv4, Kind: ir.AddrSet}
		for _, a := range irUniverse {
			if rng.IntN(3) == 0 {
				s.Addrs = append(s.Addrs, a)
			}
		}
		rs.Sets = append(rs.Sets, s)
	}
	rs.Sets = append(rs.Sets, ir.Set{Name: "weft-n0", Family: ir.IPv4, Kind: ir.NetSet, Prefixes: randomPrefixes(rng)})
	for i := range 5 {
		c := ir.Chain{Name: fmt.Sprintf("weft-p-%d", i), Policy: fmt.Sprintf("x/p%d", i), Direction: ir.Direction(i % 2)}
		for n := 1 + rng.IntN(4); n > 0; n-- {
			c.Rules = append(c.Rules, randomIRRule(rng))
		}
		rs.Chains = append(rs.Chains, c)
	}
	for i := range 4 {
		dir := ir.Direction(i % 2)
		g := ir.Group{Name: fmt.Sprintf("weft-g-%d", i), Direction: dir}
		for _, c := range rs.Chains {
			if c.Direction == dir && rng.IntN(2) == 0 {
				g.Chains = append(g.Chains, c.Name)
				g.Policies = append(g.Policies, c.Policy)
			}
		}
		rs.Groups = append(rs.Groups, g)
	}
	for _, a := range irUniverse[:8] {
		for dir := range 2 {
			if gi := rng.IntN(3); gi < 2 {
				g := &rs.Groups[2*gi+dir]
				g.Members = append(g.Members, ir.Member{Addr: a, Pod: "x/" + a.String()})
			}
		}
	}
	if rng.IntN(2) == 0 {
		rs.UnknownRanges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/28")}
	}
	return rs
}

// setAudit makes group gi of rs audited (or enforcing) as compile does:
// the flag, and chains whose Drop rules audit, copies named weft-p-a<n>
// (the group's own: the enforcing groups keep the originals). The log is
// on either way, so that only the mode differs between two rulesets.
func setAudit(rs *ir.Ruleset, gi int, audit bool) {
	rs.Log = ir.DefaultLog
	g := &rs.Groups[gi]
	g.Audit = audit
	for i, name := range g.Chains {
		orig := strings.Replace(name, "weft-p-a", "weft-p-", 1)
		if !audit {
			g.Chains[i] = orig
			continue
		}
		copyName := strings.Replace(orig, "weft-p-", "weft-p-a", 1)
		g.Chains[i] = copyName
		if slices.ContainsFunc(rs.Chains, func(c ir.Chain) bool { return c.Name == copyName }) {
			continue
		}
		for _, c := range rs.Chains {
			if c.Name == orig {
				c.Name, c.Rules = copyName, slices.Clone(c.Rules)
				rs.Chains = append(rs.Chains, c)
			}
		}
	}
	// A mutation may have given an audit copy a Drop rule.
	for i := range rs.Chains {
		if strings.HasPrefix(rs.Chains[i].Name, "weft-p-a") {
			for j := range rs.Chains[i].Rules {
				if rs.Chains[i].Rules[j].Verdict == ir.Drop {
					rs.Chains[i].Rules[j].Verdict = ir.Audit
				}
			}
		}
	}
}

func randomPrefixes(rng *rand.Rand) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{"10.32.0.0/30", "10.32.0.4/30", "10.33.0.0/30", "10.32.0.7/32", "10.33.0.2/32"} {
		if rng.IntN(3) == 0 {
			out = append(out, netip.MustParsePrefix(p))
		}
	}
	return out
}

func randomIRRule(rng *rand.Rand) ir.Rule {
	r := ir.Rule{Family: ir.IPv4, Comment: "r"}
	switch rng.IntN(6) {
	case 0: // every peer
	case 1:
		r.PeerSet = "weft-n0"
	default:
		r.PeerSet = fmt.Sprintf("weft-s%d", rng.IntN(4))
	}
	switch rng.IntN(4) {
	case 0: // every protocol
	case 1:
		r.Protocol, r.PortMin, r.PortMax = protoTCP, 80, 90
	case 2:
		r.Protocol, r.PortMin, r.PortMax = protoTCP, 80, 80
	case 3:
		r.Protocol = protoUDP
	}
	switch rng.IntN(5) {
	case 0:
		r.Verdict = ir.Drop
	case 1:
		r.Verdict = ir.Pass
	}
	return r
}

// mutateIRRuleset returns a copy of rs with one to four random changes.
func mutateIRRuleset(rng *rand.Rand, rs *ir.Ruleset) *ir.Ruleset {
	out := &ir.Ruleset{Node: rs.Node, UnknownRanges: slices.Clone(rs.UnknownRanges)}
	for _, s := range rs.Sets {
		s.Addrs, s.Prefixes = slices.Clone(s.Addrs), slices.Clone(s.Prefixes)
		out.Sets = append(out.Sets, s)
	}
	for _, c := range rs.Chains {
		c.Rules = slices.Clone(c.Rules)
		out.Chains = append(out.Chains, c)
	}
	for _, g := range rs.Groups {
		g.Chains, g.Policies, g.Members = slices.Clone(g.Chains), slices.Clone(g.Policies), slices.Clone(g.Members)
		out.Groups = append(out.Groups, g)
	}
	for n := 1 + rng.IntN(4); n > 0; n-- {
		switch rng.IntN(7) {
		case 0, 1: // a set gains or loses addresses
			s := &out.Sets[rng.IntN(4)]
			a := irUniverse[rng.IntN(len(irUniverse))]
			if i := slices.Index(s.Addrs, a); i >= 0 {
				s.Addrs = slices.Delete(s.Addrs, i, i+1)
			} else {
				s.Addrs = append(s.Addrs, a)
				slices.SortFunc(s.Addrs, netip.Addr.Compare)
			}
		case 2:
			out.Sets[4].Prefixes = randomPrefixes(rng)
		case 3: // a rule changes: ports, peer or verdict
			c := &out.Chains[rng.IntN(len(out.Chains))]
			c.Rules[rng.IntN(len(c.Rules))] = randomIRRule(rng)
		case 4, 5: // an address moves to another group, or to none
			a := irUniverse[rng.IntN(8)]
			dir := rng.IntN(2)
			for gi := dir; gi < len(out.Groups); gi += 2 {
				g := &out.Groups[gi]
				g.Members = slices.DeleteFunc(g.Members, func(m ir.Member) bool { return m.Addr == a })
			}
			if gi := rng.IntN(3); gi < 2 {
				g := &out.Groups[2*gi+dir]
				g.Members = append(g.Members, ir.Member{Addr: a, Pod: "x/" + a.String()})
				slices.SortFunc(g.Members, func(x, y ir.Member) int { return x.Addr.Compare(y.Addr) })
			}
		case 6: // the unknown ranges come or go
			if len(out.UnknownRanges) > 0 {
				out.UnknownRanges = nil
			} else {
				out.UnknownRanges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/28")}
			}
		}
	}
	return out
}

// narrowAndGrow is the example of issue 13 on a ruleset: the first rule of
// the ingress policy x/one (or x/allow-c) narrows from a port range to its
// first port while its peer set gains pod d.
func narrowAndGrow(rs *ir.Ruleset) *ir.Ruleset {
	for i := range rs.Chains {
		if c := &rs.Chains[i]; c.Name == chainIngA {
			c.Rules[0].PortMax = c.Rules[0].PortMin
		}
	}
	rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, podD)
	return rs
}

// TestApplyNarrowsBeforeItGrows: a rule's ports narrow (80-90 to 80, or
// 80-82 to 80 in a merged group) while its peer set gains pod d. Had the
// set grown before the rule narrowed, d would have reached a on 85 (81)
// for a moment, which neither ruleset allows. Walking the policy chain, the
// peer set gains d after the restore of the narrowed rule; merged, the
// group's port set loses c's other ports (here by a swap with a copy that
// holds what both rulesets allow) before it gains d's port 80.
func TestApplyNarrowsBeforeItGrows(t *testing.T) {
	for _, tc := range []struct {
		name        string
		budget      int
		old         func() *ir.Ruleset
		closedPort  uint16
		first, then string // commands, the first before the then
	}{
		{"walking", -1, sampleRuleset, 85, "iptables-nft-restore", "swap weft-tmp-1 " + setPeers}, // the set gains d by a swap
		{"merged", 0, mergedRuleset, 81,
			"swap weft-tmp-1 " + mergedSetName(groupIngA, 0, "p", ir.IPv4),
			"add " + mergedSetName(groupIngA, 0, "p", ir.IPv4) + " " + podD.String() + ",tcp:80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			b := newFakeBackend(k, tc.budget)
			if err := b.Apply(context.Background(), tc.old()); err != nil {
				t.Fatal(err)
			}
			closed := ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: tc.closedPort}
			open := ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: 80}
			steps := 0
			k.observe = func(what string) {
				steps++
				if acceptedFlows(t, k.state(), []ir.Packet{closed})[0] {
					t.Errorf("after %s: d reaches a:%d, which neither ruleset allows", firstLine(what), tc.closedPort)
				}
			}
			k.commands = nil
			if err := b.Apply(context.Background(), narrowAndGrow(tc.old())); err != nil {
				t.Fatal(err)
			}
			k.observe = nil
			if got := acceptedFlows(t, k.state(), []ir.Packet{closed, open}); got[0] || !got[1] {
				t.Errorf("after the apply d→a:%d accepted=%v, d→a:80 accepted=%v; want false, true", tc.closedPort, got[0], got[1])
			}
			first, then := -1, -1
			for i, c := range k.commands {
				if first < 0 && strings.Contains(c, tc.first) {
					first = i
				}
				if strings.Contains(c, tc.then) {
					then = i
				}
			}
			if first < 0 || then < 0 || first > then || (first == then && strings.Index(k.commands[first], tc.first) > strings.Index(k.commands[then], tc.then)) {
				t.Errorf("want %q before %q; commands:\n%s", tc.first, tc.then, strings.Join(k.commands, "\n---\n"))
			}
			t.Logf("%d states in between, commands:\n%s", steps, strings.Join(k.commands, "\n---\n"))
		})
	}
}

// TestApplyRollsBackAtEveryStep makes each command of an apply fail in turn
// (an ipset restore at its first, middle or last line; an iptables-restore
// as a whole) on random ir changes: the apply must fail, leave the kernel
// exactly as it was, pass through no state that accepts what both rulesets
// drop, and the same apply must then succeed. Only the last step, destroying
// sets no rule uses any more, may fail without failing the apply.
func TestApplyRollsBackAtEveryStep(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	ctx := context.Background()
	var failures int
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 19))
		oldRS := randomIRRuleset(rng)
		newRS := mutateIRRuleset(rng, oldRS)
		oldSt, _ := render(oldRS)
		newSt, _ := render(newRS)
		var flows []ir.Packet
		for _, src := range irUniverse {
			for _, dst := range irUniverse {
				flows = append(flows, ir.Packet{Src: src, Dst: dst, Protocol: protoTCP, Port: 85})
			}
		}
		before, after := acceptedFlows(t, oldSt, flows), acceptedFlows(t, newSt, flows)
		forward := func(name string, args []string, input string) bool {
			if !(strings.HasSuffix(name, "-restore") || name == "ipset" && slices.Equal(args, []string{"restore"})) {
				return false // reads, and the undo of a rollback (ipset -exist restore)
			}
			for _, l := range strings.Split(strings.TrimSpace(input), "\n") {
				if !strings.HasPrefix(l, "destroy ") {
					return true
				}
			}
			return false // the last step: destroy what no rule uses
		}
		for target := 0; ; target++ {
			k := newFakeKernel(t)
			b := newFakeBackend(k, DefaultMergeBudget)
			if err := b.Apply(ctx, oldRS); err != nil {
				t.Fatal(err)
			}
			was := k.dump()
			count, refused := 0, ""
			k.failAt = func(name string, args []string, input string) int {
				if !forward(name, args, input) {
					return 0
				}
				count++
				if count-1 != target {
					return 0
				}
				lines := strings.Count(strings.TrimSpace(input), "\n") + 1
				line := []int{1, (lines + 1) / 2, lines}[(seed+target)%3]
				refused = name + " line " + fmt.Sprint(line) + " of " + fmt.Sprint(lines)
				return line
			}
			k.observe = func(what string) {
				mid := acceptedFlows(t, k.state(), flows)
				for i, p := range flows {
					if mid[i] && !before[i] && !after[i] {
						t.Errorf("seed %d, refusing %s: after %s the kernel accepts %s → %s, which both rulesets drop", seed, refused, firstLine(what), p.Src, p.Dst)
					}
				}
			}
			err := b.Apply(ctx, newRS)
			k.failAt, k.observe = nil, nil
			if refused == "" {
				if err != nil {
					t.Fatalf("seed %d: the apply failed without a refusal: %v", seed, err)
				}
				break // every command has been refused once
			}
			failures++
			if err == nil {
				t.Errorf("seed %d: refusing %s, the apply succeeded", seed, refused)
			} else if !strings.Contains(err.Error(), "previous ruleset is in place") {
				t.Errorf("seed %d: refusing %s: %v", seed, refused, err)
			}
			if now := k.dump(); now != was {
				t.Errorf("seed %d: refusing %s left the kernel changed:\n%s", seed, refused, cmp.Diff(was, now))
			}
			if err := b.Apply(ctx, newRS); err != nil {
				t.Fatalf("seed %d: the apply after the refusal of %s: %v", seed, refused, err)
			}
			if diff := k.sameAs(newSt); diff != "" {
				t.Errorf("seed %d: after the refusal of %s and a new apply, the kernel differs:\n%s", seed, refused, diff)
			}
		}
	}
	t.Logf("%d refused commands rolled back", failures)
}
