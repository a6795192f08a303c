package nftables

import (
	"net/netip"

	"github.com/weftnet/weft/internal/ir"
)

// probeRuleset uses every kind of set, match and verdict the backend renders,
// in both families, so that a dry run of it shows whether the kernel and nft
// support them all. Its addresses are documentation ranges; it is never
// committed.
var probeRuleset = &ir.Ruleset{
	Node: "probe",
	Sets: []ir.Set{
		{Name: "weft-probe-a4", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		{Name: "weft-probe-a6", Family: ir.IPv6, Kind: ir.AddrSet, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		{Name: "weft-probe-e4", Family: ir.IPv4, Kind: ir.EndpointSet, Endpoints: []ir.Endpoint{{Addr: netip.MustParseAddr("192.0.2.2"), Protocol: 6, Port: 80}}},
		{Name: "weft-probe-n4", Family: ir.IPv4, Kind: ir.NetSet, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{Name: "weft-probe-n6", Family: ir.IPv6, Kind: ir.NetSet, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/48")}},
	},
	Chains: []ir.Chain{
		{Name: "weft-probe-p", Policy: "probe/probe", Direction: ir.Ingress, Rules: []ir.Rule{
			{Family: ir.IPv4, PeerSet: "weft-probe-a4", Protocol: 6, PortMin: 80, PortMax: 90, Verdict: ir.Accept, Comment: "probe"},
			{Family: ir.IPv4, PeerSet: "weft-probe-n4", Protocol: 17, EndpointSet: "weft-probe-e4", Verdict: ir.Pass},
			{Family: ir.IPv6, PeerSet: "weft-probe-n6", Verdict: ir.Drop},
			{Family: ir.IPv6, PeerSet: "weft-probe-a6", Protocol: 132, PortMin: 7, PortMax: 7, Verdict: ir.Accept},
			{Family: ir.IPv4, Verdict: ir.Accept},
		}},
	},
	Groups: []ir.Group{
		{Name: "weft-probe-g", Direction: ir.Ingress, Chains: []string{"weft-probe-p"}, Policies: []string{"probe/probe"},
			Members: []ir.Member{{Addr: netip.MustParseAddr("192.0.2.3"), Pod: "probe/a"}, {Addr: netip.MustParseAddr("2001:db8::3"), Pod: "probe/a"}}},
	},
}
