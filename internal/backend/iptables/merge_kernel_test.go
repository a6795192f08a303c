package iptables

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/ir"
)

// mergedRuleset has one ingress and one egress group whose chains all
// accept, with every kind of rule the merged sets hold or leave as rules:
// pod peers on a port range, an ipBlock on every protocol, any peer on
// every UDP port, any peer on one port, a wide port range and a named port.
func mergedRuleset() *ir.Ruleset {
	rs := sampleRuleset()
	rs.Chains = []ir.Chain{
		{Name: chainIngA, Policy: "x/one", Direction: ir.Ingress, Rules: []ir.Rule{
			{Family: ir.IPv4, PeerSet: setPeers, Protocol: protoTCP, PortMin: 80, PortMax: 82, Verdict: ir.Accept, Comment: "x/one ingress[0]"},
			{Family: ir.IPv6, PeerSet: setPeers6, Protocol: protoTCP, PortMin: 80, PortMax: 80, Verdict: ir.Accept, Comment: "x/one ingress[0]"},
			{Family: ir.IPv4, PeerSet: setBlock, Verdict: ir.Accept, Comment: "x/one ingress[1]"},
			{Family: ir.IPv4, Protocol: protoUDP, Verdict: ir.Accept, Comment: "x/one ingress[2]"},
		}},
		{Name: chainIngA2, Policy: "x/two", Direction: ir.Ingress, Rules: []ir.Rule{
			{Family: ir.IPv4, Protocol: protoTCP, PortMin: 443, PortMax: 443, Verdict: ir.Accept, Comment: "x/two ingress[0]"},
			{Family: ir.IPv4, PeerSet: setPeers, Protocol: protoTCP, PortMin: 2000, PortMax: 4000, Verdict: ir.Accept, Comment: "x/two ingress[1]"},
			{Family: ir.IPv4, Protocol: protoTCP, EndpointSet: setNamed, Verdict: ir.Accept, Comment: "x/two ingress[2]"},
		}},
		{Name: chainEgB, Policy: "x/egress-b", Direction: ir.Egress, Rules: []ir.Rule{
			{Family: ir.IPv4, PeerSet: setPeers, Protocol: protoUDP, PortMin: 53, PortMax: 53, Verdict: ir.Accept, Comment: "x/egress-b egress[0]"},
			{Family: ir.IPv4, PeerSet: setWorld, Protocol: protoTCP, PortMin: 443, PortMax: 443, Verdict: ir.Accept, Comment: "x/egress-b egress[1]"},
		}},
	}
	return rs
}

func TestKernelMergedSetsNFT(t *testing.T)    { inNamespace(t, ModeNFT, testMergedSets) }
func TestKernelMergedSetsLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testMergedSets) }

func testMergedSets(t *testing.T, mode Mode) {
	b := newTestBackend(t, mode)
	rs := mergedRuleset()
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	// The kernel took every element and lists it as rendered.
	checkKernelHolds(t, mode, rs)
	ports := mergedSetName(groupIngA, 0, "p", ir.IPv4)
	anyNet := mergedSetName(groupIngA, 0, "any", ir.IPv4)
	udp := mergedSetName(groupIngA, 0, "n17", ir.IPv4)
	egress := mergedSetName(groupEgB, 0, "p", ir.IPv4)
	for _, tc := range []struct {
		set, elem string
		in        bool
	}{
		{ports, "10.32.2.2,tcp:81", true},
		{ports, "10.32.2.2,tcp:83", false},
		{ports, "10.32.2.3,tcp:80", false},
		{ports, "10.40.0.1,tcp:443", true}, // any peer, as two halves
		{ports, "200.1.1.1,tcp:443", true},
		{ports, "10.32.2.2,udp:81", false},
		{ports, "10.32.2.2,tcp:3000", false}, // the wide range stayed a rule
		{anyNet, "10.33.2.7", true},
		{anyNet, "10.33.1.7", false},
		{udp, "10.99.0.1", true},
		{egress, "10.32.2.2,udp:53", true},
		{egress, "10.32.2.2,tcp:53", false},
	} {
		err := exec.Command("ipset", "test", tc.set, tc.elem).Run()
		if got := err == nil; got != tc.in {
			t.Errorf("ipset test %s %s: in=%v, want %v", tc.set, tc.elem, got, tc.in)
		}
	}
	rules := filterTable(t, mode, ir.IPv4)
	for _, want := range []string{"--dport 2000:4000", "dst,dst", "--match-set " + ports + " src,dst", "--match-set " + egress + " dst,dst"} {
		if !strings.Contains(rules, want) {
			t.Errorf("IPv4 rules lack %q:\n%s", want, rules)
		}
	}
	if strings.Contains(rules, "-j "+chainIngA) || strings.Contains(rules, "-j "+chainEgB) {
		t.Errorf("merged groups still jump to policy chains:\n%s", rules)
	}

	// A pod joins the peer set: only set elements change, in place.
	rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, netip.MustParseAddr("10.32.2.9"))
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStats(); s.Restores != 0 || s.SetsCreated != 0 || s.SetsPatched == 0 {
		t.Errorf("a peer joining: stats %+v, want sets patched and no iptables-restore", s)
	}
	checkKernelHolds(t, mode, rs)

	// Over budget the groups walk their chains, and the merged sets go; back
	// under it they return.
	b.budget = 4
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	checkKernelHoldsBudget(t, mode, rs, 4)
	if rules := filterTable(t, mode, ir.IPv4); !strings.Contains(rules, "-j "+chainIngA) {
		t.Errorf("over budget, the ingress group does not walk its chains:\n%s", rules)
	}
	b.budget = DefaultMergeBudget
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	checkKernelHolds(t, mode, rs)
}
