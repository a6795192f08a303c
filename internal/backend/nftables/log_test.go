package nftables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/ir"
)

// logRuleset is the example with logging: pod ranges 10.33.0.0/16 and
// fd00:33::/64 hold no known pod, pod y/o (10.32.0.20) is in an open group
// (no policy isolates it), and an admin chain drops 10.32.0.66 into a.
func logRuleset(l ir.Log) *ir.Ruleset {
	rs := exampleRuleset()
	rs.Log = l
	rs.UnknownRanges = []netip.Prefix{netip.MustParsePrefix("10.33.0.0/16"), netip.MustParsePrefix("fd00:33::/64")}
	rs.Sets = append(rs.Sets, ir.Set{Name: "weft-bad", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{addr("10.32.0.66")}})
	rs.Chains = append(rs.Chains,
		ir.Chain{Name: "weft-p-admin", Direction: ir.Ingress, Policy: "admin", Rules: []ir.Rule{
			{Family: ir.IPv4, PeerSet: "weft-bad", Verdict: ir.Drop, Comment: "admin deny"},
		}},
		ir.Chain{Name: "weft-p-open", Direction: ir.Ingress, Policy: "(none: not isolated)", Rules: []ir.Rule{
			{Family: ir.IPv4, Verdict: ir.Accept}, {Family: ir.IPv6, Verdict: ir.Accept},
		}})
	rs.Groups[0].Chains = append([]string{"weft-p-admin"}, rs.Groups[0].Chains...)
	rs.Groups[0].Policies = append([]string{"admin"}, rs.Groups[0].Policies...)
	rs.Groups = append(rs.Groups, ir.Group{Name: "weft-g-open", Direction: ir.Ingress, Chains: []string{"weft-p-open"},
		Members: []ir.Member{{Addr: addr("10.32.0.20"), Pod: "y/o"}}})
	return rs
}

// TestLog traces packets through the example rendered with ir.DefaultLog,
// with and without Allowed, and checks which of them are logged, with what
// prefix, and that logging changes no verdict.
func TestLog(t *testing.T) {
	tcp, udp := uint8(6), uint8(17)
	const (
		dropIn     = "weft drop ingress"
		dropEg     = "weft drop egress"
		unknownIn  = "weft unknown ingress"
		unknownEg  = "weft unknown egress"
		acceptedIn = "weft accept ingress"
	)
	for _, tc := range []struct {
		name string
		p    nftPacket
		// logged and loggedAllowed are the prefixes logged without and
		// with Log.Allowed.
		logged, loggedAllowed []string
	}{
		{"allowed peer to a:80", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: tcp, port: 80}, nil, []string{acceptedIn}},
		{"allowed peer to a:80 over v6", nftPacket{src: addr("fd00::9"), dst: addr("fd00::7"), proto: tcp, port: 80}, nil, []string{acceptedIn}},
		{"ipBlock peer to a's named port (a kept rule)", nftPacket{src: addr("10.40.0.1"), dst: addr("10.32.0.7"), proto: tcp, port: 8080}, nil, []string{acceptedIn}},
		{"no policy allows a:81", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: tcp, port: 81}, []string{dropIn}, []string{dropIn}},
		{"no policy allows a:80 over v6", nftPacket{src: addr("fd00::10"), dst: addr("fd00::7"), proto: tcp, port: 80}, []string{dropIn}, []string{dropIn}},
		{"a stray TCP packet to a, no SYN", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: tcp, port: 81, notSYN: true}, nil, nil},
		{"an established reply to a", nftPacket{src: addr("10.99.0.1"), dst: addr("10.32.0.7"), proto: tcp, port: 81, established: true}, nil, nil},
		{"admin drops 10.32.0.66 into a", nftPacket{src: addr("10.32.0.66"), dst: addr("10.32.0.7"), proto: tcp, port: 80}, []string{dropIn}, []string{dropIn}},
		{"b's egress allowed (egress accepts are not logged)", nftPacket{src: addr("10.32.0.8"), dst: addr("10.99.0.53"), proto: udp, port: 53}, nil, nil},
		{"b's egress dropped", nftPacket{src: addr("10.32.0.8"), dst: addr("10.99.0.80"), proto: tcp, port: 80}, []string{dropEg}, []string{dropEg}},
		{"b to a:80: egress allows, ingress allows", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.7"), proto: tcp, port: 80}, nil, []string{acceptedIn}},
		{"b to a:81: egress allows, ingress drops", nftPacket{src: addr("10.32.0.8"), dst: addr("10.32.0.7"), proto: tcp, port: 81}, []string{dropIn}, []string{dropIn}},
		{"to the open pod (not isolated: not logged)", nftPacket{src: addr("10.99.0.1"), dst: addr("10.32.0.20"), proto: tcp, port: 80}, nil, nil},
		{"to an unknown address", nftPacket{src: addr("10.99.0.1"), dst: addr("10.33.0.5"), proto: tcp, port: 80}, []string{unknownIn}, []string{unknownIn}},
		{"from an unknown address", nftPacket{src: addr("10.33.0.5"), dst: addr("10.99.0.1"), proto: udp, port: 53}, []string{unknownEg}, []string{unknownEg}},
		{"from an unknown v6 address", nftPacket{src: addr("fd00:33::5"), dst: addr("fd00::99"), proto: tcp, port: 80}, []string{unknownEg}, []string{unknownEg}},
		{"between unisolated pods outside the pod ranges", nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.10"), proto: tcp, port: 80}, nil, nil},
	} {
		for _, v := range []struct {
			allowed bool
			budget  int
		}{{false, 0}, {true, 0}, {false, 1}, {true, 1}} {
			// Budget 1 makes every group walk its chains.
			allowed := v.allowed
			l := ir.DefaultLog
			l.Allowed = allowed
			rs := logRuleset(l)
			b, fake := newFakeBackendBudget(v.budget)
			in := applyAndParse(t, b, fake, rs)
			if walked := b.LastSync().GroupsWalked; (v.budget == 1) != (walked == 3) {
				t.Fatalf("budget %d: %d groups walk their chains", v.budget, walked)
			}
			plainRS := logRuleset(ir.Log{})
			pb, pfake := newFakeBackend()
			plain := applyAndParse(t, pb, pfake, plainRS)

			got, err := in.run("forward", tc.p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := plain.run("forward", tc.p)
			if err != nil {
				t.Fatal(err)
			}
			wantLogged := tc.logged
			if allowed {
				wantLogged = tc.loggedAllowed
			}
			if diff := cmp.Diff(wantLogged, got.logged); diff != "" {
				t.Errorf("%s (Allowed=%v, budget %d): logged (-want +got):\n%s\npath %v", tc.name, allowed, v.budget, diff, got.path)
			}
			if len(want.logged) > 0 {
				t.Errorf("%s: logged %v without logging", tc.name, want.logged)
			}
			if got.accepted != want.accepted || got.base != want.base {
				t.Errorf("%s (Allowed=%v): with logging accepted=%v in %s, without accepted=%v in %s", tc.name, allowed, got.accepted, got.base, want.accepted, want.base)
			}
			if !got.accepted && strings.HasPrefix(got.chain, "weft-g-") && got.chain != want.chain {
				t.Errorf("%s: with logging dropped in %s, without in %s", tc.name, got.chain, want.chain)
			}
		}
	}
}

// TestLogRateLimitPerSource checks that each source has its own budget at
// each log point: one source past its burst is no longer logged, while
// another still is, and so is the first at another log point.
func TestLogRateLimitPerSource(t *testing.T) {
	l := ir.DefaultLog
	l.Burst = 3
	b, fake := newFakeBackend()
	in := applyAndParse(t, b, fake, logRuleset(l))
	count := func(p nftPacket) int {
		t.Helper()
		res, err := in.run("forward", p)
		if err != nil {
			t.Fatal(err)
		}
		if res.accepted {
			t.Fatalf("%v accepted, want dropped", p)
		}
		return len(res.logged)
	}
	noisy := nftPacket{src: addr("10.32.0.9"), dst: addr("10.32.0.7"), proto: 6, port: 81}
	var got []int
	for range 5 {
		got = append(got, count(noisy))
	}
	if diff := cmp.Diff([]int{1, 1, 1, 0, 0}, got); diff != "" {
		t.Errorf("logs of 5 drops from one source with burst 3 (-want +got):\n%s", diff)
	}
	if n := count(nftPacket{src: addr("10.32.0.10"), dst: addr("10.32.0.7"), proto: 6, port: 81}); n != 1 {
		t.Errorf("another source: logged %d times, want 1", n)
	}
	if n := count(nftPacket{src: addr("10.32.0.9"), dst: addr("10.33.0.1"), proto: 6, port: 81}); n != 1 {
		t.Errorf("the noisy source at the unknown-address log point: logged %d times, want 1", n)
	}
}

// TestLogOffRendersNothingNew checks that the zero Log renders no log
// object, and that Rate or Burst 0 is refused.
func TestLogOffRendersNothingNew(t *testing.T) {
	d, err := render(logRuleset(ir.Log{}))
	if err != nil {
		t.Fatal(err)
	}
	for name := range d.sets {
		if strings.HasPrefix(name, "log-") {
			t.Errorf("set %s rendered without logging", name)
		}
	}
	for name, c := range d.chains {
		for _, r := range c.rules {
			if strings.Contains(r.rule, "log") || strings.Contains(r.rule, "goto") {
				t.Errorf("chain %s: rule %q without logging", name, r.rule)
			}
		}
	}
	for _, l := range []ir.Log{{Enabled: true, Rate: 0, Burst: 5}, {Enabled: true, Rate: 5, Burst: 0}} {
		if _, err := render(logRuleset(l)); err == nil {
			t.Errorf("%+v rendered, want an error", l)
		}
	}
}
