package iptables

import (
	"net/netip"

	"github.com/weftnet/weft/internal/ir"
)

// Addresses used by the tests, all in 10.32.0.0/12 and fd00::/8.
var (
	podA  = netip.MustParseAddr("10.32.1.2") // isolated for ingress
	podB  = netip.MustParseAddr("10.32.1.3") // isolated for egress
	podC  = netip.MustParseAddr("10.32.2.2") // allowed peer
	podD  = netip.MustParseAddr("10.32.2.3") // not allowed
	podA6 = netip.MustParseAddr("fd00::1:2")
	podB6 = netip.MustParseAddr("fd00::1:3")
	podC6 = netip.MustParseAddr("fd00::2:2")
)

const (
	setPeers    = "weft-peersaaaaaaaaaaaaaa"
	setPeers6   = "weft-peers6aaaaaaaaaaaaa"
	setBlock    = "weft-blockaaaaaaaaaaaaaa"
	setWorld    = "weft-worldaaaaaaaaaaaaaa"
	setNamed    = "weft-namedaaaaaaaaaaaaaa"
	chainIngA   = "weft-p-ingressaaaaaaaaaa"
	chainIngA2  = "weft-p-ingress2aaaaaaaaa"
	chainEgB    = "weft-p-egressaaaaaaaaaaa"
	groupIngA   = "weft-g-ingressaaaaaaaaaa"
	groupEgB    = "weft-g-egressaaaaaaaaaaa"
	protoTCP    = 6
	protoUDP    = 17
	protoSCTP   = 132
	commentIngA = "x/allow-c ingress[0]"
)

// sampleRuleset is a small ruleset that uses every feature the renderer
// knows: both directions, both families, every set kind, port ranges,
// named ports, and all three verdicts.
func sampleRuleset() *ir.Ruleset {
	return &ir.Ruleset{
		Node: "node-1",
		Sets: []ir.Set{
			{Name: setBlock, Family: ir.IPv4, Kind: ir.NetSet, Comment: "ipBlock 10.33.0.0/16 except 10.33.1.0/24",
				Prefixes: []netip.Prefix{netip.MustParsePrefix("10.33.0.0/24"), netip.MustParsePrefix("10.33.2.0/23")}},
			{Name: setNamed, Family: ir.IPv4, Kind: ir.EndpointSet, Comment: "named port http/TCP",
				Endpoints: []ir.Endpoint{{Addr: podA, Protocol: protoTCP, Port: 8080}}},
			{Name: setPeers, Family: ir.IPv4, Kind: ir.AddrSet, Comment: "pods app=c in namespace x", Addrs: []netip.Addr{podC}},
			{Name: setPeers6, Family: ir.IPv6, Kind: ir.AddrSet, Comment: "pods app=c in namespace x", Addrs: []netip.Addr{podC6}},
			{Name: setWorld, Family: ir.IPv4, Kind: ir.NetSet, Comment: "ipBlock 0.0.0.0/0", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
		},
		Chains: []ir.Chain{
			{Name: chainEgB, Policy: "x/egress-b", Direction: ir.Egress, Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: setPeers, Protocol: protoUDP, PortMin: 53, PortMax: 53, Verdict: ir.Accept, Comment: "x/egress-b egress[0]"},
				{Family: ir.IPv4, PeerSet: setBlock, Verdict: ir.Drop, Comment: "x/egress-b egress[1]"},
				{Family: ir.IPv4, PeerSet: setWorld, Protocol: protoTCP, PortMin: 443, PortMax: 443, Verdict: ir.Accept, Comment: "x/egress-b egress[2]"},
				{Family: ir.IPv6, PeerSet: setPeers6, Protocol: protoTCP, PortMin: 80, PortMax: 80, Verdict: ir.Accept, Comment: "x/egress-b egress[3]"},
			}},
			{Name: chainIngA, Policy: "x/allow-c", Direction: ir.Ingress, Rules: []ir.Rule{
				{Family: ir.IPv4, PeerSet: setPeers, Protocol: protoTCP, PortMin: 80, PortMax: 90, Verdict: ir.Accept, Comment: commentIngA},
				{Family: ir.IPv6, PeerSet: setPeers6, Protocol: protoTCP, PortMin: 80, PortMax: 90, Verdict: ir.Accept, Comment: commentIngA},
				{Family: ir.IPv4, Protocol: protoTCP, EndpointSet: setNamed, Verdict: ir.Accept, Comment: "x/allow-c ingress[1]"},
				{Family: ir.IPv4, PeerSet: setBlock, Verdict: ir.Pass, Comment: "x/allow-c ingress[2]"},
			}},
			{Name: chainIngA2, Policy: "x/allow-sctp", Direction: ir.Ingress, Rules: []ir.Rule{
				{Family: ir.IPv4, Protocol: protoSCTP, PortMin: 9000, PortMax: 9000, Verdict: ir.Accept, Comment: "x/allow-sctp ingress[0]"},
				{Family: ir.IPv4, PeerSet: setBlock, Verdict: ir.Accept, Comment: "x/allow-sctp ingress[1]"},
			}},
		},
		Groups: []ir.Group{
			{Name: groupEgB, Direction: ir.Egress, Chains: []string{chainEgB}, Policies: []string{"x/egress-b"},
				Members: []ir.Member{{Addr: podB, Pod: "x/b"}, {Addr: podB6, Pod: "x/b"}}},
			{Name: groupIngA, Direction: ir.Ingress, Chains: []string{chainIngA, chainIngA2}, Policies: []string{"x/allow-c", "x/allow-sctp"},
				Members: []ir.Member{{Addr: podA, Pod: "x/a"}, {Addr: podA6, Pod: "x/a"}}},
		},
	}
}
