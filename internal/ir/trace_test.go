package ir

import (
	"net/netip"
	"slices"
	"testing"
)

func TestTracerVerdictsAndOrder(t *testing.T) {
	a, b, c, d := netip.MustParseAddr("10.32.0.1"), netip.MustParseAddr("10.32.0.2"), netip.MustParseAddr("10.32.0.3"), netip.MustParseAddr("10.32.0.4")
	rs := &Ruleset{
		Sets: []Set{
			{Name: "peers", Family: IPv4, Kind: AddrSet, Addrs: []netip.Addr{b}},
			{Name: "nets", Family: IPv4, Kind: NetSet, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/31")}},
			{Name: "named", Family: IPv4, Kind: EndpointSet, Endpoints: []Endpoint{{Addr: c, Protocol: 6, Port: 8080}}},
		},
		Chains: []Chain{
			{Name: "deny-b", Rules: []Rule{{Family: IPv4, PeerSet: "peers", Protocol: 6, PortMin: 22, PortMax: 22, Verdict: Drop, Comment: "deny b ssh"}}},
			{Name: "pass-b", Rules: []Rule{{Family: IPv4, PeerSet: "peers", Verdict: Pass, Comment: "pass b"}, {Family: IPv4, Verdict: Accept, Comment: "unreached for b"}}},
			{Name: "allow-web", Rules: []Rule{{Family: IPv4, Protocol: 6, PortMin: 80, PortMax: 81, Verdict: Accept, Comment: "web"}}},
			{Name: "allow-nets", Rules: []Rule{{Family: IPv4, PeerSet: "nets", Verdict: Accept, Comment: "nets"}}},
			{Name: "allow-named", Rules: []Rule{{Family: IPv4, EndpointSet: "named", Protocol: 6, Verdict: Accept, Comment: "named"}}},
		},
		Groups: []Group{
			{Name: "g-c", Direction: Ingress, Chains: []string{"deny-b", "pass-b", "allow-web", "allow-named"}, Members: []Member{{Addr: c}}},
			{Name: "g-d", Direction: Egress, Chains: []string{"allow-nets"}, Members: []Member{{Addr: d}}},
		},
	}
	tr := NewTracer(rs)
	cases := []struct {
		name     string
		p        Packet
		accepted bool
		dir      Direction
		rule     string
	}{
		{"drop verdict ends the direction", Packet{Src: b, Dst: c, Protocol: 6, Port: 22}, false, Ingress, "deny b ssh"},
		{"pass leaves the chain, later chains still decide", Packet{Src: b, Dst: c, Protocol: 6, Port: 80}, true, Ingress, ""},
		{"pass skips the rest of its own chain", Packet{Src: b, Dst: c, Protocol: 17, Port: 80}, false, Ingress, ""},
		{"other peers reach the accept-all rule", Packet{Src: a, Dst: c, Protocol: 17, Port: 53}, true, Ingress, ""},
		{"named port endpoint", Packet{Src: b, Dst: c, Protocol: 6, Port: 8080}, true, Ingress, ""},
		{"egress checked before ingress", Packet{Src: d, Dst: c, Protocol: 6, Port: 80}, false, Egress, ""},
		{"egress allowed by prefix", Packet{Src: d, Dst: a, Protocol: 6, Port: 80}, true, Ingress, ""},
		{"from the host always passes", Packet{Src: a, Dst: c, Protocol: 6, Port: 22, FromHost: true}, true, Ingress, ""},
		{"to the host always passes", Packet{Src: b, Dst: a, Protocol: 6, Port: 22, ToHost: true}, true, Ingress, ""},
		{"self always passes", Packet{Src: c, Dst: c, Protocol: 6, Port: 22}, true, Ingress, ""},
		{"IPv6 packet matches no IPv4 rule", Packet{Src: netip.MustParseAddr("fd00::1"), Dst: c, Protocol: 6, Port: 80}, true, Ingress, ""},
	}
	for _, tc := range cases {
		got := tr.Trace(tc.p)
		if got.Accepted != tc.accepted || (!tc.accepted && got.Direction != tc.dir) || (tc.rule != "" && got.Rule != tc.rule) {
			t.Errorf("%s: got %+v, want accepted=%v direction=%v rule=%q", tc.name, got, tc.accepted, tc.dir, tc.rule)
		}
	}
}

// TestTracerAudit: an audited group lets pass what it would drop, by a Drop
// (Audit) rule or at its end, and says so; WouldDrop is what enforcing
// would have done: the first would-be drop, egress before ingress.
func TestTracerAudit(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.32.0.1"), netip.MustParseAddr("10.32.0.2"), netip.MustParseAddr("10.32.0.3")
	rs := &Ruleset{
		Sets: []Set{{Name: "peers", Family: IPv4, Kind: AddrSet, Addrs: []netip.Addr{b}}},
		Chains: []Chain{
			{Name: "audit-b", Direction: Ingress, Rules: []Rule{{Family: IPv4, PeerSet: "peers", Protocol: 6, PortMin: 22, PortMax: 22, Verdict: Audit, Comment: "deny b ssh"}}},
			{Name: "web", Direction: Ingress, Rules: []Rule{{Family: IPv4, Protocol: 6, PortMin: 80, PortMax: 80, Verdict: Accept, Comment: "web"}}},
			{Name: "none", Direction: Egress},
		},
		Groups: []Group{
			{Name: "g-c", Direction: Ingress, Audit: true, Chains: []string{"audit-b", "web"}, Members: []Member{{Addr: c}}},
			{Name: "g-a", Direction: Egress, Audit: true, Chains: []string{"none"}, Members: []Member{{Addr: a}}},
		},
		UnknownRanges: []netip.Prefix{netip.MustParsePrefix("10.32.1.0/24")},
		Log:           DefaultLog,
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	tr := NewTracer(rs)
	for _, tc := range []struct {
		name      string
		p         Packet
		accepted  bool
		audits    []AuditHit
		wouldDrop AuditHit
		drops     bool
	}{
		{"allowed: no audit", Packet{Src: b, Dst: c, Protocol: 6, Port: 80}, true, nil, AuditHit{}, false},
		{"audit rule", Packet{Src: b, Dst: c, Protocol: 6, Port: 22}, true, []AuditHit{{Ingress, "g-c", "deny b ssh"}}, AuditHit{Ingress, "g-c", "deny b ssh"}, true},
		{"group end", Packet{Src: b, Dst: c, Protocol: 17, Port: 53}, true, []AuditHit{{Ingress, "g-c", ""}}, AuditHit{Ingress, "g-c", ""}, true},
		{"both directions, egress first", Packet{Src: a, Dst: c, Protocol: 17, Port: 53}, true,
			[]AuditHit{{Egress, "g-a", ""}, {Ingress, "g-c", ""}}, AuditHit{Egress, "g-a", ""}, true},
		{"unknown address still drops", Packet{Src: a, Dst: netip.MustParseAddr("10.32.1.9"), Protocol: 6, Port: 80}, false,
			[]AuditHit{{Egress, "g-a", ""}}, AuditHit{Egress, "g-a", ""}, true},
	} {
		got := tr.Trace(tc.p)
		hit, _, drops := got.WouldDrop()
		if got.Accepted != tc.accepted || !slices.Equal(got.Audits, tc.audits) || drops != tc.drops || hit != tc.wouldDrop {
			t.Errorf("%s: got %+v (would drop %v at %+v), want accepted=%v audits=%+v, would drop %v at %+v", tc.name, got, drops, hit, tc.accepted, tc.audits, tc.drops, tc.wouldDrop)
		}
	}
	// Unknown drops are drops, not audits.
	got := tr.Trace(Packet{Src: b, Dst: netip.MustParseAddr("10.32.1.9"), Protocol: 6, Port: 80})
	if _, unknown, drops := got.WouldDrop(); got.Accepted || !unknown || !drops {
		t.Errorf("unknown destination: %+v", got)
	}
}
