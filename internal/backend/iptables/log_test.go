package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/ir"
)

var (
	podOpen  = netip.MustParseAddr("10.32.5.5") // in the open group: no policy isolates it
	unknown  = netip.MustParseAddr("10.40.0.5") // in the pod ranges, no known pod
	outside  = netip.MustParseAddr("10.99.0.1") // not a pod of this node
	podE     = netip.MustParseAddr("10.33.0.5") // in the ipBlock set
	unknown6 = netip.MustParseAddr("fd00:40::5")
)

// logRuleset is sampleRuleset with logging, pod ranges 10.40.0.0/16 and
// fd00:40::/64 that hold no known pod, and an open group (no policies) for
// ingress to podOpen.
func logRuleset(l ir.Log) *ir.Ruleset {
	rs := sampleRuleset()
	rs.Log = l
	rs.UnknownRanges = []netip.Prefix{netip.MustParsePrefix("10.40.0.0/16"), netip.MustParsePrefix("fd00:40::/64")}
	rs.Chains = append(rs.Chains, ir.Chain{Name: "weft-p-openaaaaaaaaaaaaa", Policy: "(none: not isolated)", Direction: ir.Ingress, Rules: []ir.Rule{
		{Family: ir.IPv4, Verdict: ir.Accept}, {Family: ir.IPv6, Verdict: ir.Accept},
	}})
	rs.Groups = append(rs.Groups, ir.Group{Name: "weft-g-openaaaaaaaaaaaaa", Direction: ir.Ingress, Chains: []string{"weft-p-openaaaaaaaaaaaaa"},
		Members: []ir.Member{{Addr: podOpen, Pod: "x/open"}}})
	return rs
}

// TestLog runs packets through the rules rendered with ir.DefaultLog, with
// and without Allowed, merged and walking, and checks which are logged,
// with what prefix, and that logging changes no verdict.
func TestLog(t *testing.T) {
	const (
		dropIn     = "weft drop ingress"
		dropEg     = "weft drop egress"
		unknownIn  = "weft unknown ingress"
		unknownEg  = "weft unknown egress"
		acceptedIn = "weft accept ingress"
	)
	for _, tc := range []struct {
		name string
		p    ir.Packet
		// logged and loggedAllowed are the prefixes logged without and
		// with Log.Allowed.
		logged, loggedAllowed []string
	}{
		{"allowed peer to a (a walked chain accepts)", ir.Packet{Src: podC, Dst: podA, Protocol: protoTCP, Port: 80}, nil, []string{acceptedIn}},
		{"allowed peer to a over v6", ir.Packet{Src: podC6, Dst: podA6, Protocol: protoTCP, Port: 85}, nil, []string{acceptedIn}},
		{"any peer to a's named port", ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: 8080}, nil, []string{acceptedIn}},
		{"ipBlock peer to a (Pass, then a merged run accepts)", ir.Packet{Src: podE, Dst: podA, Protocol: protoTCP, Port: 22}, nil, []string{acceptedIn}},
		{"any peer to a's sctp port (merged)", ir.Packet{Src: podD, Dst: podA, Protocol: protoSCTP, Port: 9000}, nil, []string{acceptedIn}},
		{"no policy allows d into a", ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: 80}, []string{dropIn}, []string{dropIn}},
		{"no policy allows into a over v6", ir.Packet{Src: netip.MustParseAddr("fd00::2:3"), Dst: podA6, Protocol: protoTCP, Port: 85}, []string{dropIn}, []string{dropIn}},
		{"b's egress dropped", ir.Packet{Src: podB, Dst: podC, Protocol: protoTCP, Port: 80}, []string{dropEg}, []string{dropEg}},
		{"b's egress to the ipBlock: a Drop rule", ir.Packet{Src: podB, Dst: podE, Protocol: protoTCP, Port: 443}, []string{dropEg}, []string{dropEg}},
		{"b's egress allowed (egress accepts are not logged)", ir.Packet{Src: podB, Dst: podC, Protocol: protoUDP, Port: 53}, nil, nil},
		{"b to a: egress allows, ingress drops", ir.Packet{Src: podB, Dst: podA, Protocol: protoTCP, Port: 443}, []string{dropIn}, []string{dropIn}},
		{"to the open pod (not isolated: not logged)", ir.Packet{Src: podD, Dst: podOpen, Protocol: protoTCP, Port: 80}, nil, nil},
		{"to an unknown address", ir.Packet{Src: outside, Dst: unknown, Protocol: protoTCP, Port: 80}, []string{unknownIn}, []string{unknownIn}},
		{"from an unknown address", ir.Packet{Src: unknown, Dst: outside, Protocol: protoUDP, Port: 53}, []string{unknownEg}, []string{unknownEg}},
		{"from an unknown v6 address", ir.Packet{Src: unknown6, Dst: podC6, Protocol: protoTCP, Port: 80}, []string{unknownEg}, []string{unknownEg}},
		{"between pods nobody isolates", ir.Packet{Src: podC, Dst: podD, Protocol: protoTCP, Port: 80}, nil, nil},
	} {
		for _, v := range []struct {
			allowed bool
			budget  int
		}{{false, DefaultMergeBudget}, {true, DefaultMergeBudget}, {false, -1}, {true, -1}} {
			l := ir.DefaultLog
			l.Allowed = v.allowed
			rs := logRuleset(l)
			st, err := renderBudget(rs, v.budget, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := newInterp(t, st).run("FORWARD", tc.p)
			tr := ir.NewTracer(rs).Trace(tc.p)
			want := tc.logged
			if v.allowed {
				want = tc.loggedAllowed
			}
			if diff := cmp.Diff(want, got.logged); diff != "" {
				t.Errorf("%s (Allowed=%v, budget %d): logged (-want +got):\n%s", tc.name, v.allowed, v.budget, diff)
			}
			if got.dropped == tr.Accepted {
				t.Errorf("%s (Allowed=%v, budget %d): rules drop=%v, tracer %+v", tc.name, v.allowed, v.budget, got.dropped, tr)
			}
			if got.dropped && got.by != dropChain(tr.Direction) && got.by != unknownChain(tr.Direction) {
				t.Errorf("%s: dropped in %s, tracer says %+v", tc.name, got.by, tr)
			}
		}
	}
}

// TestLogRules pins the log rules' text, checks that the "not a SYN" drop
// does not reach the logging drop chain, and that the zero Log renders
// what it did before logging existed.
func TestLogRules(t *testing.T) {
	l := ir.DefaultLog
	l.Allowed = true
	st, err := render(logRuleset(l))
	if err != nil {
		t.Fatal(err)
	}
	v4 := st.tables[0]
	want := []string{
		`-A WEFT-INGRESS-DROP -m conntrack --ctstate NEW -m hashlimit --hashlimit-upto 20/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name weft-di-20-100 -j NFLOG --nflog-prefix "weft drop ingress" --nflog-group 86 --nflog-size 128 --nflog-threshold 1`,
		`-A WEFT-INGRESS-DROP -j DROP`,
	}
	if diff := cmp.Diff(want, v4.chains[chainIngressDrop]); diff != "" {
		t.Errorf("WEFT-INGRESS-DROP (-want +got):\n%s", diff)
	}
	if got := v4.chains[chainEgressUnknown]; len(got) != 2 || !strings.Contains(got[0], `--hashlimit-name weft-ue-20-100 -j NFLOG --nflog-prefix "weft unknown egress"`) {
		t.Errorf("WEFT-EGRESS-UNKNOWN: %q", got)
	}
	if got := v4.chains[chainIngressAllow]; len(got) != 2 || !strings.Contains(got[0], "weft-ai-20-100") || !strings.HasSuffix(got[1], markSet) {
		t.Errorf("WEFT-INGRESS-ALLOW: %q", got)
	}
	for _, g := range []string{groupIngA, groupEgB} {
		for _, line := range v4.chains[g] {
			if strings.Contains(line, "--tcp-flags") && !strings.HasSuffix(line, "-j DROP") {
				t.Errorf("group %s: the not-a-SYN rule %q does not drop in place", g, line)
			}
		}
	}

	plain, err := render(sampleRuleset())
	if err != nil {
		t.Fatal(err)
	}
	off := sampleRuleset()
	off.Log = ir.Log{Rate: 20, Burst: 100, Group: 86, Allowed: true} // not Enabled
	got, err := render(off)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plain.tables[0].chains, got.tables[0].chains); diff != "" {
		t.Errorf("a disabled Log changed the rules (-plain +got):\n%s", diff)
	}
	for _, bad := range []ir.Log{{Enabled: true, Rate: 0, Burst: 5}, {Enabled: true, Rate: 5}, {Enabled: true, Rate: 2000000, Burst: 5}} {
		if _, err := render(logRuleset(bad)); err == nil {
			t.Errorf("%+v rendered, want an error", bad)
		}
	}
	long := &logger{log: ir.Log{Rate: 999999, Burst: 4000000000}}
	if name := long.hashlimitName(ir.Dropped, ir.Ingress); len(name) > 15 || !strings.HasPrefix(name, "weft-di-") {
		t.Errorf("hashlimit name %q: want weft-di-... of at most 15 characters", name)
	}
}

// TestLogRateLimitPerSource checks that each source has its own budget at
// each log point: a source past its burst is no longer logged, another
// still is, and so is the first at another log point.
func TestLogRateLimitPerSource(t *testing.T) {
	l := ir.DefaultLog
	l.Burst = 3
	st, err := render(logRuleset(l))
	if err != nil {
		t.Fatal(err)
	}
	in := newInterp(t, st)
	count := func(p ir.Packet) int {
		t.Helper()
		res := in.run("FORWARD", p)
		if !res.dropped {
			t.Fatalf("%+v passed, want dropped", p)
		}
		return len(res.logged)
	}
	noisy := ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: 80}
	var got []int
	for range 5 {
		got = append(got, count(noisy))
	}
	if diff := cmp.Diff([]int{1, 1, 1, 0, 0}, got); diff != "" {
		t.Errorf("logs of 5 drops from one source with burst 3 (-want +got):\n%s", diff)
	}
	if n := count(ir.Packet{Src: podC, Dst: podA, Protocol: protoTCP, Port: 22}); n != 1 {
		t.Errorf("another source: logged %d times, want 1", n)
	}
	if n := count(ir.Packet{Src: podD, Dst: unknown, Protocol: protoTCP, Port: 80}); n != 1 {
		t.Errorf("the noisy source at the unknown-address log point: logged %d times, want 1", n)
	}
}
