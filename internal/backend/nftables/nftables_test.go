package nftables

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFakeBackend() (*Backend, *knftables.Fake) {
	return newFakeBackendBudget(0)
}

// newFakeBackendBudget is a backend on the fake with merge budget budget
// (0: the default).
func newFakeBackendBudget(budget int) (*Backend, *knftables.Fake) {
	fake := newFakeBackendFake()
	return newBackend(Config{Logger: quietLogger(), MergeBudget: budget}, fake), fake
}

func newFakeBackendFake() *knftables.Fake { return knftables.NewFake(knftables.InetFamily, tableName) }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// exampleRuleset is a small hand-made ruleset: pod y/a (10.32.0.7,
// fd00::7) isolated for ingress by two policies, pod y/b (10.32.0.8) isolated
// for egress.
func exampleRuleset() *ir.Ruleset {
	return &ir.Ruleset{
		Node: "node-1",
		Sets: []ir.Set{
			{Name: "weft-app-a4", Family: ir.IPv4, Kind: ir.AddrSet, Comment: "pods app=a in namespace y", Addrs: []netip.Addr{addr("10.32.0.7")}},
			{Name: "weft-ext", Family: ir.IPv4, Kind: ir.NetSet, Comment: "ipBlock 10.40.0.0/16 except 10.40.1.0/24",
				Prefixes: []netip.Prefix{netip.MustParsePrefix("10.40.0.0/24"), netip.MustParsePrefix("10.40.2.0/23"), netip.MustParsePrefix("10.40.4.0/22"), netip.MustParsePrefix("10.40.8.0/21"), netip.MustParsePrefix("10.40.16.0/20"), netip.MustParsePrefix("10.40.32.0/19"), netip.MustParsePrefix("10.40.64.0/18"), netip.MustParsePrefix("10.40.128.0/17")}},
			{Name: "weft-web4", Family: ir.IPv4, Kind: ir.AddrSet, Comment: "pods app=web in namespace y", Addrs: []netip.Addr{addr("10.32.0.8"), addr("10.32.0.9")}},
			{Name: "weft-web6", Family: ir.IPv6, Kind: ir.AddrSet, Comment: "pods app=web in namespace y", Addrs: []netip.Addr{addr("fd00::9")}},
			{Name: "weft-http4", Family: ir.IPv4, Kind: ir.EndpointSet, Comment: "named port http/TCP", Endpoints: []ir.Endpoint{{Addr: addr("10.32.0.7"), Protocol: 6, Port: 8080}}},
		},
		Chains: []ir.Chain{
			{Name: "weft-p-allow-web", Policy: "y/allow-web", Direction: ir.Ingress, Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: "weft-web4", Protocol: 6, PortMin: 80, PortMax: 80, Verdict: ir.Accept, Comment: "y/allow-web ingress[0]"},
				{Family: ir.IPv6, PeerSet: "weft-web6", Protocol: 6, PortMin: 80, PortMax: 80, Verdict: ir.Accept, Comment: "y/allow-web ingress[0]"},
			}},
			{Name: "weft-p-allow-ext", Policy: "y/allow-ext", Direction: ir.Ingress, Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: "weft-ext", Protocol: 6, EndpointSet: "weft-http4", Verdict: ir.Accept, Comment: "y/allow-ext ingress[0]"},
				{Family: ir.IPv4, Protocol: 17, PortMin: 5000, PortMax: 5010, Verdict: ir.Accept, Comment: "y/allow-ext ingress[1]"},
			}},
			{Name: "weft-p-egress-dns", Policy: "y/egress-dns", Direction: ir.Egress, Rules: []ir.Rule{
				{Family: ir.IPv4, Protocol: 17, PortMin: 53, PortMax: 53, Verdict: ir.Accept, Comment: "y/egress-dns egress[0]"},
				{Family: ir.IPv4, PeerSet: "weft-app-a4", Verdict: ir.Accept, Comment: "y/egress-dns egress[1]"},
			}},
		},
		Groups: []ir.Group{
			{Name: "weft-g-a", Direction: ir.Ingress, Chains: []string{"weft-p-allow-web", "weft-p-allow-ext"}, Policies: []string{"y/allow-web", "y/allow-ext"},
				Members: []ir.Member{{Addr: addr("10.32.0.7"), Pod: "y/a"}, {Addr: addr("fd00::7"), Pod: "y/a"}}},
			{Name: "weft-g-b", Direction: ir.Egress, Chains: []string{"weft-p-egress-dns"}, Policies: []string{"y/egress-dns"},
				Members: []ir.Member{{Addr: addr("10.32.0.8"), Pod: "y/b"}, {Addr: addr("fd00::8"), Pod: "y/b"}}},
		},
	}
}

func applyAndParse(t *testing.T, b *Backend, fake *knftables.Fake, rs *ir.Ruleset) *nftInterp {
	t.Helper()
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	in, err := parseDump(fake.Dump())
	if err != nil {
		t.Fatalf("interpret the dump: %v\n%s", err, fake.Dump())
	}
	return in
}

// TestGoldenExample pins the rendered layout of the example ruleset (the one
// doc.go describes); run with -update after an intended change.
func TestGoldenExample(t *testing.T) {
	b, fake := newFakeBackend()
	applyAndParse(t, b, fake, exampleRuleset())
	got := fake.Dump()
	path := filepath.Join("testdata", "example.nft")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("rendered table differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestTraceExample traces chosen packets through the rendered example and
// checks each against the expected verdict and against ir.Tracer.
func TestTraceExample(t *testing.T) {
	b, fake := newFakeBackend()
	rs := exampleRuleset()
	in := applyAndParse(t, b, fake, rs)
	tracer := ir.NewTracer(rs)
	tcp, udp := uint8(6), uint8(17)
	for _, tc := range []struct {
		name      string
		hook      string
		p         nftPacket
		accepted  bool
		dropChain string
		dropBase  string
	}{
		{"web pod to a:80", "forward", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: tcp, port: 80}, true, "", ""},
		{"web pod to a:81", "forward", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: tcp, port: 81}, false, "weft-g-a", chainForwardIngress},
		{"web pod to a:80 over v6", "forward", nftPacket{src: addr("fd00::9"), dst: addr("fd00::7"), proto: tcp, port: 80}, true, "", ""},
		{"other v6 pod to a:80", "forward", nftPacket{src: addr("fd00::10"), dst: addr("fd00::7"), proto: tcp, port: 80}, false, "weft-g-a", chainForwardIngress},
		{"udp to a from anywhere, in range", "forward", nftPacket{src: addr("10.99.0.1"), dst: addr("10.32.0.7"), proto: udp, port: 5010}, true, "", ""},
		{"udp to a, out of range", "forward", nftPacket{src: addr("10.99.0.1"), dst: addr("10.32.0.7"), proto: udp, port: 5011}, false, "weft-g-a", chainForwardIngress},
		{"ipBlock peer to named port", "forward", nftPacket{src: addr("10.40.0.1"), dst: addr("10.32.0.7"), proto: tcp, port: 8080}, true, "", ""},
		{"excepted peer to named port", "forward", nftPacket{src: addr("10.40.1.1"), dst: addr("10.32.0.7"), proto: tcp, port: 8080}, false, "weft-g-a", chainForwardIngress},
		{"ipBlock peer, udp on the named port number", "forward", nftPacket{src: addr("10.40.0.1"), dst: addr("10.32.0.7"), proto: udp, port: 8080}, false, "weft-g-a", chainForwardIngress},
		{"icmp to isolated a", "forward", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: 1}, false, "weft-g-a", chainForwardIngress},
		{"established reply to a", "forward", nftPacket{src: addr("10.99.0.1"), dst: addr("10.32.0.7"), proto: tcp, port: 81, established: true}, true, "", ""},
		{"b egress dns", "forward", nftPacket{src: addr("10.32.0.8"), dst: addr("10.99.0.53"), proto: udp, port: 53}, true, "", ""},
		{"b egress http outside", "forward", nftPacket{src: addr("10.32.0.8"), dst: addr("10.99.0.80"), proto: tcp, port: 80}, false, "weft-g-b", chainForwardEgress},
		{"b egress to its node (input: not filtered)", "input", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.1"), proto: tcp, port: 10250}, true, "", ""},
		{"a to itself (through a service)", "forward", nftPacket{src: addr("10.32.0.7"), dst: addr("10.32.0.7"), proto: tcp, port: 22}, true, "", ""},
		{"a to itself over v6", "forward", nftPacket{src: addr("fd00::7"), dst: addr("fd00::7"), proto: udp, port: 22}, true, "", ""},
		{"b to itself", "forward", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.8"), proto: tcp, port: 22}, true, "", ""},
		{"b to a:80: egress allows, ingress allows", "forward", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.7"), proto: tcp, port: 80}, true, "", ""},
		// An egress accept must not skip the ingress check.
		{"b to a:22: egress allows, ingress drops", "forward", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.7"), proto: tcp, port: 22}, false, "weft-g-a", chainForwardIngress},
		{"unisolated pod to unisolated pod", "forward", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.10"), proto: tcp, port: 22}, true, "", ""},
		{"neighbour solicitation from egress-isolated b over a bridge", "forward", nftPacket{src: addr("fd00::8"), dst: addr("ff02::1:ff00:9"), proto: 58, icmpType: 135, hopLimit: 255}, true, "", ""},
		{"neighbour advertisement to ingress-isolated a over a bridge", "forward", nftPacket{src: addr("fe80::9"), dst: addr("fd00::7"), proto: 58, icmpType: 136, hopLimit: 255}, true, "", ""},
		{"a routed (hop limit < 255) neighbour advertisement to a", "forward", nftPacket{src: addr("fd00::99"), dst: addr("fd00::7"), proto: 58, icmpType: 136, hopLimit: 254}, false, "weft-g-a", chainForwardIngress},
		{"b's v6 egress, not neighbour discovery", "forward", nftPacket{src: addr("fd00::8"), dst: addr("fd00::99"), proto: 58, icmpType: 128, hopLimit: 64}, false, "weft-g-b", chainForwardEgress},
		{"icmpv6 echo to a", "forward", nftPacket{src: addr("fd00::9"), dst: addr("fd00::7"), proto: 58, icmpType: 128, hopLimit: 64}, false, "weft-g-a", chainForwardIngress},
		{"node to a (output: not filtered)", "output", nftPacket{src: addr("10.32.0.1"), dst: addr("10.32.0.7"), proto: tcp, port: 22}, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := in.run(tc.hook, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if res.accepted != tc.accepted || res.chain != tc.dropChain || res.base != tc.dropBase {
				t.Errorf("got accepted=%v dropped in %s/%s (path %v), want accepted=%v dropped in %s/%s",
					res.accepted, res.base, res.chain, res.path, tc.accepted, tc.dropBase, tc.dropChain)
			}
			if tc.p.established || tc.p.hopLimit == 255 {
				return // the ir speaks of first packets of connections only
			}
			tr := tracer.Trace(ir.Packet{Src: tc.p.src, Dst: tc.p.dst, Protocol: tc.p.proto, Port: tc.p.port, FromHost: tc.hook == "output", ToHost: tc.hook == "input"})
			if tr.Accepted != res.accepted || (!tr.Accepted && tr.Group != res.chain) {
				t.Errorf("ir.Tracer says %+v, the rendered rules accepted=%v in %s", tr, res.accepted, res.chain)
			}
		})
	}
}

// TestPassAndDropVerdicts covers the verdicts NetworkPolicy does not use
// (reserved for ClusterNetworkPolicy): Pass goes on with the group's next
// chain, Drop ends the direction.
func TestPassAndDropVerdicts(t *testing.T) {
	rs := &ir.Ruleset{
		Sets: []ir.Set{{Name: "weft-bad", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{addr("10.32.0.66")}},
			{Name: "weft-pass", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{addr("10.32.0.55")}}},
		Chains: []ir.Chain{
			{Name: "weft-p-admin", Direction: ir.Ingress, Policy: "admin", Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: "weft-bad", Verdict: ir.Drop, Comment: "admin deny"},
				{Family: ir.IPv4, PeerSet: "weft-pass", Verdict: ir.Pass, Comment: "admin pass"},
				{Family: ir.IPv4, Protocol: 6, Verdict: ir.Accept, Comment: "admin accept tcp"},
			}},
			{Name: "weft-p-np", Direction: ir.Ingress, Policy: "ns/np", Rules: []ir.Rule{
				{Family: ir.IPv4, Protocol: 17, Verdict: ir.Accept, Comment: "np udp"},
			}},
		},
		Groups: []ir.Group{{Name: "weft-g-x", Direction: ir.Ingress, Chains: []string{"weft-p-admin", "weft-p-np"}, Policies: []string{"admin", "ns/np"},
			Members: []ir.Member{{Addr: addr("10.32.0.7"), Pod: "ns/x"}}}},
	}
	b, fake := newFakeBackend()
	in := applyAndParse(t, b, fake, rs)
	tracer := ir.NewTracer(rs)
	for _, tc := range []struct {
		src   string
		proto uint8
		want  bool
	}{
		{"10.32.0.66", 6, false},  // admin deny beats the accept below it
		{"10.32.0.66", 17, false}, // and the next chain
		{"10.32.0.55", 6, false},  // pass skips admin's accept; np has no tcp
		{"10.32.0.55", 17, true},  // pass, then np accepts udp
		{"10.32.0.44", 6, true},   // admin accepts tcp
		{"10.32.0.44", 17, true},
	} {
		p := nftPacket{src: addr(tc.src), dst: addr("10.32.0.7"), proto: tc.proto, port: 80}
		res, err := in.run("forward", p)
		if err != nil {
			t.Fatal(err)
		}
		tr := tracer.Trace(ir.Packet{Src: p.src, Dst: p.dst, Protocol: p.proto, Port: p.port})
		if res.accepted != tc.want || tr.Accepted != tc.want {
			t.Errorf("%s proto %d: rendered accepted=%v (path %v), tracer %v, want %v", tc.src, tc.proto, res.accepted, res.path, tr.Accepted, tc.want)
		}
	}
}

// hookFor is the netfilter hook at which node first sees the flow's packet.
func hookFor(s *policy.Snapshot, f policy.Flow, node string) string {
	switch {
	case s.IsNodeAddress(f.Src, node):
		return "output" // weft has no chain there: the node may reach its pods
	case s.IsNodeAddress(f.Dst, node):
		return "input" // nor here: a pod may reach its node
	}
	return "forward"
}

// normalizeDump sorts element lines (whose order in a set means nothing) and
// keeps every other line where it is (rule order does mean something).
func normalizeDump(d string) string {
	var other, elems []string
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			other = append(other, l)
		}
	}
	slices.Sort(elems)
	return strings.Join(append(other, elems...), "\n")
}

// TestDifferential is the randomized differential test: random clusters,
// compiled for each node, applied (incrementally, one backend per node across
// all clusters) on the fake; random flows traced through the rendered rules
// must agree with ir.Tracer and with policy.Evaluator, flow by flow, and an
// incremental sync must leave exactly what a full sync of the same ruleset
// leaves. Node-1's backend has the default merge budget, node-2's a budget
// of 8 elements and node-3's of 40, so that groups take both the merged path
// and the chain walk, and some change from one to the other between syncs.
func TestDifferential(t *testing.T) {
	budgets := map[string]int{"node-2": 8, "node-3": 40}
	merged, walked := 0, 0
	const clusters, flowsPer = 300, 400
	rng := rand.New(rand.NewPCG(11, 12))
	backends := map[string]*Backend{}
	fakes := map[string]*knftables.Fake{}
	total, allowed, checks, incremental, unknownDrops, audits := 0, 0, 0, 0, 0, 0
	var bad []string
	for i := 0; i < clusters && len(bad) == 0; i++ {
		cfg := clustergen.RandomConfig{Namespaces: 1 + rng.IntN(4), Pods: 4 + rng.IntN(24), Policies: 1 + rng.IntN(7), Nodes: 1 + rng.IntN(3),
			ClusterPolicies: i % 3} // ClusterNetworkPolicies (Deny and Pass rules, tier chains) in two of three
		c := clustergen.Random(rng, cfg)
		s := c.Snapshot
		flows := clustergen.RandomFlows(rng, c, flowsPer)
		var nodes []string
		for n := range c.NodeIPs {
			nodes = append(nodes, n)
		}
		slices.Sort(nodes)
		allNodes := make([]bool, len(flows))
		for j := range allNodes {
			allNodes[j] = true
		}
		// Every other cluster gives its nodes pod ranges: unknown local
		// addresses are then dropped, known ones are in open groups.
		withRanges := i%2 == 1
		var ranges []netip.Prefix
		if withRanges {
			ranges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
		}
		// Every third cluster logs, some of them accepts too: logging
		// changes no verdict, and syncs add and remove its objects. Half of
		// those audit: the nodes' mode and the namespaces' annotations are
		// drawn at random (clustergen.AnnotateEnforcement).
		var mode policy.Enforcement
		audit := i%6 == 5
		if audit {
			mode = policy.Enforcement(rng.IntN(2))
			clustergen.AnnotateEnforcement(rng, c)
		}
		for _, node := range nodes {
			opts := compile.Options{Node: node, PodRanges: ranges, Mode: mode}
			if i%3 == 2 {
				opts.Log = ir.DefaultLog
				opts.Log.Allowed = i%2 == 0
				// Interpreted packets never refill a source's budget.
				opts.Log.Burst = 100000
			}
			rs := compile.CompileWith(s, opts)
			if backends[node] == nil {
				backends[node], fakes[node] = newFakeBackendBudget(budgets[node])
			}
			b, fake := backends[node], fakes[node]
			in := applyAndParse(t, b, fake, rs)
			if !b.LastSync().Full {
				incremental++
			}
			merged += b.LastSync().GroupsMerged
			walked += b.LastSync().GroupsWalked
			// The incremental result equals a fresh full sync.
			fb, ff := newFakeBackendBudget(budgets[node])
			if err := fb.Apply(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalizeDump(ff.Dump()), normalizeDump(fake.Dump())); diff != "" {
				t.Fatalf("cluster %d node %s: incremental sync left a table that differs from a full sync (-full +incremental):\n%s", i, node, diff)
			}
			tracer := ir.NewTracer(rs)
			ev := &policy.Evaluator{Snapshot: s, Node: node, PodRanges: ranges, Mode: mode}
			for j, f := range flows {
				want := ev.Decide(f)
				hook := hookFor(s, f, node)
				tr := tracer.Trace(ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: uint8(f.Protocol), Port: f.Port, FromHost: hook == "output", ToHost: hook == "input"})
				p := nftPacket{src: f.Src, dst: f.Dst, proto: uint8(f.Protocol), port: f.Port, hopLimit: 64}
				switch f.Protocol {
				case policy.ICMP:
					p.icmpType = 8 // echo request
				case policy.ICMPv6:
					p.icmpType = 128
				}
				got, err := in.run(hook, p)
				if err != nil {
					t.Fatalf("cluster %d node %s flow %v: %v", i, node, f, err)
				}
				checks++
				allNodes[j] = allNodes[j] && got.accepted
				var loggedAudits, tracedAudits []string
				for _, l := range got.logged {
					if strings.HasPrefix(l, "weft audit ") {
						loggedAudits = append(loggedAudits, strings.TrimPrefix(l, "weft audit "))
					}
				}
				for _, a := range tr.Audits {
					tracedAudits = append(tracedAudits, a.Direction.String())
				}
				audits += len(loggedAudits)
				switch {
				case !slices.Equal(loggedAudits, tracedAudits) || !slices.Equal(tracedAudits, directionNames(want.Audits())):
					bad = append(bad, fmt.Sprintf("cluster %d node %s: %s %s -> %s:%d at %s: audits logged %v, traced %v, evaluator %v (path %v)",
						i, node, f.Protocol, f.Src, f.Dst, f.Port, hook, loggedAudits, tracedAudits, want.Audits(), got.path))
				case got.accepted != want.Passes() || got.accepted != tr.Accepted:
					bad = append(bad, fmt.Sprintf("cluster %d node %s: %s %s -> %s:%d at %s: evaluator passes=%v, tracer %+v, rendered %v (path %v, dropped in %s)",
						i, node, f.Protocol, f.Src, f.Dst, f.Port, hook, want.Passes(), tr, got.accepted, got.path, got.chain))
				case !got.accepted && tr.Unknown:
					if (got.chain != got.base && got.chain != unknownChain(tr.Direction)) || directionOf(got.base) != tr.Direction || !want.Ingress.Unknown && !want.Egress.Unknown {
						bad = append(bad, fmt.Sprintf("cluster %d node %s: %s %s -> %s:%d: dropped by %s in %s, tracer says unknown address in %s, evaluator %+v %+v",
							i, node, f.Protocol, f.Src, f.Dst, f.Port, got.chain, got.base, tr.Direction, want.Egress, want.Ingress))
					}
					unknownDrops++
				// A Drop rule (a cluster policy's Deny) drops where it is, or
				// in the chain that logs such drops; the group's end drops the
				// rest.
				case !got.accepted && ((tr.Rule == "" && tr.Group != got.chain) || (tr.Rule != "" && got.chain != dropChain(tr.Direction) && !strings.HasPrefix(got.chain, "weft-p-")) ||
					directionOf(got.base) != tr.Direction || policy.Direction(directionOf(got.base)) != firstDrop(&want)):
					bad = append(bad, fmt.Sprintf("cluster %d node %s: %s %s -> %s:%d: dropped by %s in %s, tracer says %s %s, evaluator blocks %v",
						i, node, f.Protocol, f.Src, f.Dst, f.Port, got.chain, got.base, tr.Direction, tr.Group, want.Blocked()))
				}
			}
		}
		whole := &policy.Evaluator{Snapshot: s, Mode: mode}
		for j, f := range flows {
			w := whole.Decide(f)
			if w.Allowed {
				allowed++
			}
			if !withRanges && w.Passes() != allNodes[j] {
				bad = append(bad, fmt.Sprintf("cluster %d: %s %s -> %s:%d: evaluator (whole cluster) %v, all nodes' rules together %v", i, f.Protocol, f.Src, f.Dst, f.Port, w.Allowed, allNodes[j]))
			}
		}
		total += len(flows)
	}
	if len(bad) > 0 {
		t.Fatalf("%d mismatches, first:\n%s", len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
	}
	if total < 100000 {
		t.Fatalf("only %d flows checked, want at least 100,000", total)
	}
	if allowed < total/10 || allowed > total*9/10 {
		t.Fatalf("%d of %d flows allowed: too lopsided to test anything", allowed, total)
	}
	if incremental < clusters {
		t.Fatalf("only %d incremental syncs: the test should exercise them", incremental)
	}
	if merged < 100 || walked < 100 {
		t.Fatalf("%d groups merged, %d walking their chains: the test should exercise both", merged, walked)
	}
	if unknownDrops < total/50 {
		t.Fatalf("only %d drops of unknown local addresses: the test should exercise them", unknownDrops)
	}
	if audits < total/100 {
		t.Fatalf("only %d would-be drops logged by audited groups: the test should exercise them", audits)
	}
	t.Logf("%d flows (%d allowed), %d per-node checks (%d dropped as unknown local addresses, %d would-be drops audited), %d incremental syncs, groups %d merged and %d walking: 0 mismatches", total, allowed, checks, unknownDrops, audits, incremental, merged, walked)
}

// firstDrop is the direction that drops a flow the evaluator does not let
// pass: the first that blocks and is not audited.
func firstDrop(d *policy.Decision) policy.Direction {
	if !d.Egress.Allowed && !d.Egress.Audited {
		return policy.Egress
	}
	return policy.Ingress
}

func directionNames(ds []policy.Direction) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func directionOf(base string) ir.Direction {
	if base == chainForwardIngress {
		return ir.Ingress
	}
	return ir.Egress
}
