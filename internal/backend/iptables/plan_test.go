package iptables

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/weftnet/weft/internal/ir"
)

// TestPlanOrdersChangesByUse: the plan narrows before the rules change and
// widens after: deny sets (the unknown ranges) gain members first and lose
// them last, allow sets (the peers) lose first and gain last, a pod joining
// an isolating group from an unknown address joins after the rules; a set
// that a Drop and a Pass rule use (mixed) is staged: the rules name a copy
// with its new members, the set is settled afterwards and named again.
func TestPlanOrdersChangesByUse(t *testing.T) {
	peers := func(rs *ir.Ruleset, from, to int) {
		for i := from; i < to; i++ {
			rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, netip.AddrFrom4([4]byte{10, 32, 3, byte(i)}))
		}
	}
	ranges := func(rs *ir.Ruleset, extra string) {
		for i := range 8 {
			rs.UnknownRanges = append(rs.UnknownRanges, netip.MustParsePrefix(fmt.Sprintf("10.32.%d.0/24", 10+i)))
		}
		rs.UnknownRanges = append(rs.UnknownRanges, netip.MustParsePrefix("10.32.1.0/24"), netip.MustParsePrefix(extra))
	}
	old, next := sampleRuleset(), sampleRuleset()
	peers(old, 0, 12)
	ranges(old, "10.41.0.0/16")
	peers(next, 1, 12)
	next.Sets[2].Addrs = append(next.Sets[2].Addrs, podD) // a peer leaves, another comes
	ranges(next, "10.40.0.0/16")                          // an unknown range goes, another comes
	next.Groups[1].Members = append(next.Groups[1].Members, ir.Member{Addr: netip.MustParseAddr("10.32.1.9"), Pod: "x/a2"})
	next.Sets[0].Prefixes = append(next.Sets[0].Prefixes, netip.MustParsePrefix("10.33.8.0/24")) // Drop for egress, Pass for ingress
	from, err := renderBudget(old, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	to, err := renderBudget(next, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	temps := 0
	p, err := planApply(from, to, func() string { temps++; return fmt.Sprintf("weft-tmp-%d", temps) })
	if err != nil {
		t.Fatal(err)
	}
	ingress := groupSetName(groupIngA, ir.IPv4)
	for _, c := range []struct {
		step string
		ops  []setOp
		want []string
	}{
		{"narrow", p.narrow, []string{"add weft-unknown-v4 10.40.0.0/16", "del " + setPeers + " 10.32.3.0"}},
		{"widen", p.widen, []string{"add " + setPeers + " " + podD.String(), "add " + ingress + " 10.32.1.9", "del weft-unknown-v4 10.41.0.0/16"}},
		{"settle", p.settle, []string{"add " + setBlock + " 10.33.8.0/24"}},
	} {
		if diff := cmp.Diff(c.want, doLines(c.ops)); diff != "" {
			t.Errorf("%s step (-want +got):\n%s", c.step, diff)
		}
	}
	if p.staged != 1 || !strings.Contains(joinLines(doLines(p.create)), "create weft-tmp-1 hash:net") {
		t.Errorf("want %s staged through weft-tmp-1; staged %d, create step:\n%s", setBlock, p.staged, joinLines(doLines(p.create)))
	}
	if !strings.Contains(p.rules[0], "--match-set weft-tmp-1 dst") || strings.Contains(p.rules[0], "--match-set "+setBlock) {
		t.Errorf("the rules of step 3 should name the staged copy, not %s:\n%s", setBlock, p.rules[0])
	}
	if !strings.Contains(p.settleRules[0], "--match-set "+setBlock+" dst") || strings.Contains(p.settleRules[0], "weft-tmp-1") {
		t.Errorf("the settling rules should name %s again:\n%s", setBlock, p.settleRules[0])
	}
	if p.settleRules[1] != "" {
		t.Errorf("IPv6 names no staged set, yet its rules are rewritten:\n%s", p.settleRules[1])
	}
	if diff := cmp.Diff([]string{"weft-tmp-1"}, p.destroy); diff != "" {
		t.Errorf("destroy step (-want +got):\n%s", diff)
	}
	// The rules of IPv4 change only to name the copy (in the three policy
	// chains that use it); everything else is membership.
	if strings.Count(p.rules[0], "\n:") != 3 {
		t.Errorf("want the three policy chains that use %s rewritten, got:\n%s", setBlock, p.rules[0])
	}

	// A set of another type under a name weft needs is refused, clearly.
	from.sets[setPeers] = &ipset{Name: setPeers, Type: "hash:net", Family: ir.IPv4}
	if _, err := planApply(from, to, func() string { return "weft-tmp-9" }); err == nil || !strings.Contains(err.Error(), "ipset destroy "+setPeers) {
		t.Errorf("planApply with a foreign set in the way: %v", err)
	}
}

// TestPlanStagesAGroupMoveItCannotOrder: pod a moving from group g1 to g2,
// both of which stay, is in both for a moment whatever the order of the
// lines, and the dispatch chain sends it to the one that comes first (g1):
// the group sets are staged, so that the move happens with the rules, at
// once. When a's new group is new and comes first, or its old group goes,
// the lines can be ordered: no staging.
func TestPlanStagesAGroupMoveItCannotOrder(t *testing.T) {
	group := func(i int, members ...netip.Addr) ir.Group {
		g := ir.Group{Name: fmt.Sprintf("weft-g-%d", i), Direction: ir.Ingress, Chains: []string{chainIngA2}, Policies: []string{"x/allow-sctp"}}
		for _, m := range members {
			g.Members = append(g.Members, ir.Member{Addr: m, Pod: "x/" + m.String()})
		}
		return g
	}
	ruleset := func(groups ...ir.Group) *ir.Ruleset {
		rs := sampleRuleset()
		rs.Groups = groups
		return rs
	}
	a, b, c := podA, podB, podC
	set := func(i int) string { return groupSetName(fmt.Sprintf("weft-g-%d", i), ir.IPv4) }
	for _, tc := range []struct {
		name          string
		old, new      *ir.Ruleset
		staged        int
		widen, settle []string
	}{
		{"both groups stay, the old one first", ruleset(group(1, a, c), group(2, b)), ruleset(group(1, c), group(2, a, b)), 2,
			nil, []string{"del " + set(1) + " " + a.String(), "add " + set(2) + " " + a.String()}},
		{"into a new group that comes first", ruleset(group(1, a, c)), ruleset(group(0, a), group(1, c)), 0,
			[]string{"del " + set(1) + " " + a.String()}, nil},
		{"the old group goes", ruleset(group(1, a)), ruleset(group(2, a)), 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, err := renderBudget(tc.old, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			to, err := renderBudget(tc.new, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			temps := 0
			p, err := planApply(from, to, func() string { temps++; return fmt.Sprintf("weft-tmp-%d", temps) })
			if err != nil {
				t.Fatal(err)
			}
			if p.staged != tc.staged {
				t.Errorf("staged %d sets, want %d", p.staged, tc.staged)
			}
			if len(p.narrow) != 0 {
				t.Errorf("narrow step %q, want none", doLines(p.narrow))
			}
			if diff := cmp.Diff(tc.widen, doLines(p.widen), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("widen step (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.settle, doLines(p.settle), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("settle step (-want +got):\n%s", diff)
			}
		})
	}
}
