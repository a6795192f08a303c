package nftables

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/ir"
)

// orderRuleset has a group whose chains are accept-only, then with Drop and
// Pass, then accept-only again: two merged runs around one jump.
func orderRuleset() *ir.Ruleset {
	return &ir.Ruleset{
		Sets: []ir.Set{
			{Name: "weft-bad", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{addr("10.32.0.66")}},
			{Name: "weft-pass", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{addr("10.32.0.55")}},
			{Name: "weft-net", Family: ir.IPv4, Kind: ir.NetSet, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/26")}},
		},
		Chains: []ir.Chain{
			{Name: "weft-p-first", Direction: ir.Ingress, Policy: "ns/first", Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: "weft-bad", Protocol: 6, PortMin: 80, PortMax: 80, Verdict: ir.Accept},
				{Family: ir.IPv4, PeerSet: "weft-net", Protocol: 6, PortMin: 70, PortMax: 85, Verdict: ir.Accept},
			}},
			{Name: "weft-p-admin", Direction: ir.Ingress, Policy: "admin", Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: "weft-bad", Verdict: ir.Drop, Comment: "admin deny"},
				{Family: ir.IPv4, PeerSet: "weft-pass", Verdict: ir.Pass, Comment: "admin pass"},
				{Family: ir.IPv4, Protocol: 6, Verdict: ir.Accept, Comment: "admin accept tcp"},
			}},
			{Name: "weft-p-np", Direction: ir.Ingress, Policy: "ns/np", Rules: []ir.Rule{
				{Family: ir.IPv4, Protocol: 17, Verdict: ir.Accept, Comment: "np udp"},
				{Family: ir.IPv4, PeerSet: "weft-bad", Verdict: ir.Accept, Comment: "np all from bad"},
			}},
		},
		Groups: []ir.Group{{Name: "weft-g-x", Direction: ir.Ingress, Chains: []string{"weft-p-first", "weft-p-admin", "weft-p-np"}, Policies: []string{"ns/first", "admin", "ns/np"},
			Members: []ir.Member{{Addr: addr("10.32.0.7"), Pod: "ns/x"}}}},
	}
}

// TestMergedRunsKeepOrder: accept-only chains before and after a chain with
// Drop and Pass are merged into sets of their own, and the group still
// decides in the chains' order, whatever the budget (0 is the default,
// -1 never merges).
func TestMergedRunsKeepOrder(t *testing.T) {
	rs := orderRuleset()
	tracer := ir.NewTracer(rs)
	for _, budget := range []int{0, 2, -1} {
		b, fake := newFakeBackendBudget(budget)
		in := applyAndParse(t, b, fake, rs)
		dump := fake.Dump()
		st := b.LastSync()
		if budget == 0 {
			for _, want := range []string{
				"add rule inet weft weft-g-x ip saddr . meta l4proto . th dport @allow-weft-g-x-4 accept",
				"add rule inet weft weft-g-x jump weft-p-admin",
				"add rule inet weft weft-g-x ip saddr @allow-any-weft-g-x-r1-4 accept",
				"add rule inet weft weft-g-x ip saddr . meta l4proto . th dport @allow-weft-g-x-r1-4 accept",
				"add element inet weft allow-weft-g-x-4 { 10.32.0.0/26 . tcp . 70-85 }",
				"add element inet weft allow-weft-g-x-r1-4 { 0.0.0.0/0 . udp . 0-65535 }",
			} {
				if !strings.Contains(dump, want) {
					t.Errorf("dump lacks %q:\n%s", want, dump)
				}
			}
			if st.GroupsMerged != 1 || strings.Contains(dump, "weft-p-first") || strings.Contains(dump, "weft-p-np") {
				t.Errorf("merged chains still rendered or group not merged (%+v):\n%s", st, dump)
			}
		} else if st.GroupsWalked != 1 || strings.Contains(dump, "allow-") || !strings.Contains(dump, "jump weft-p-first") {
			t.Errorf("budget %d: want the group walking its chains (%+v):\n%s", budget, st, dump)
		}
		for _, src := range []string{"10.32.0.66", "10.32.0.55", "10.32.0.44", "10.32.0.99"} {
			for _, proto := range []uint8{6, 17, 1} {
				for _, port := range []uint16{0, 69, 70, 80, 85, 86} {
					if proto == 1 && port != 0 {
						continue
					}
					p := nftPacket{src: addr(src), dst: addr("10.32.0.7"), proto: proto, port: port}
					res, err := in.run("forward", p)
					if err != nil {
						t.Fatal(err)
					}
					tr := tracer.Trace(ir.Packet{Src: p.src, Dst: p.dst, Protocol: p.proto, Port: p.port})
					if res.accepted != tr.Accepted {
						t.Errorf("budget %d: %s proto %d port %d: rendered accepted=%v (path %v), tracer %v", budget, src, proto, port, res.accepted, res.path, tr.Accepted)
					}
				}
			}
		}
	}
}

// TestMergeBudgetFallsBack: a group over budget walks its chains and says so
// in a debug line; a membership change that brings it back under budget
// merges it again, and both tables equal a full sync.
func TestMergeBudgetFallsBack(t *testing.T) {
	var logs bytes.Buffer
	fake := newFakeBackendFake()
	b := newBackend(Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), MergeBudget: 3}, fake)
	rs := exampleRuleset() // group a merges 3 elements in v4 and 1 in v6
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(); st.GroupsWalked != 1 || st.GroupsMerged != 1 {
		t.Errorf("want group a walking, b merged: %+v", b.LastSync())
	}
	if !strings.Contains(logs.String(), "exceed the budget") || !strings.Contains(logs.String(), "group=weft-g-a elements=4 budget=3") {
		t.Errorf("no debug line about the budget:\n%s", logs.String())
	}
	rs.Sets[3].Addrs = nil // weft-web6 empties: 3 elements
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(); st.GroupsMerged != 2 || st.Full {
		t.Errorf("want both groups merged after an incremental sync: %+v", st)
	}
	fb, ff := newFakeBackendBudget(3)
	if err := fb.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(normalizeDump(ff.Dump()), normalizeDump(fake.Dump())); diff != "" {
		t.Errorf("incremental differs from full (-full +incremental):\n%s", diff)
	}
}
