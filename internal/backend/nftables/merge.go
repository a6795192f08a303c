package nftables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// DefaultMergeBudget is the most elements the merged sets of one group may
// hold when Config.MergeBudget is 0: ir.DefaultMergeBudget.
const DefaultMergeBudget = ir.DefaultMergeBudget

// mergeOptions are the planner's parameters for this backend's sets:
// interval sets, which hold port ranges of any width and refuse
// overlapping elements, so the plan's elements come disjoint.
func mergeOptions(budget int) ir.MergeOptions {
	return ir.MergeOptions{Budget: budget, Sets: ir.IntervalSets}
}

// Kinds of the sets this backend derives from a group's rules.
const (
	// anyNets holds disjoint prefixes (bare addresses for single hosts): the
	// peers a group accepts on every protocol and port.
	anyNets ir.SetKind = 101
	// allowBoxes holds disjoint (prefix . protocol . port range) elements:
	// what a group accepts on given protocols and ports.
	allowBoxes ir.SetKind = 102
)

func boxKey(b ir.Box) []string {
	ports := strconv.Itoa(int(b.Lo))
	if b.Hi != b.Lo {
		ports += "-" + strconv.Itoa(int(b.Hi))
	}
	return []string{netKey(b.Peer), protoName(b.Protocol), ports}
}

// netKey writes a prefix as nft lists it: a single address bare.
func netKey(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func netKeys(p netip.Prefix) []string { return []string{netKey(p)} }

// mergedSetName names a merged set of group g: run k (0 for the first),
// family f; any for the any-port set.
func mergedSetName(g string, k int, any bool, f ir.Family) string {
	name := "allow-"
	if any {
		name = "allow-any-"
	}
	name += g
	if k > 0 {
		name += "-r" + strconv.Itoa(k)
	}
	return name + "-" + strconv.Itoa(int(f))
}

// emitRun adds the sets of a planned run to d and returns the group chain's
// rules that look them up, then its kept rules (irRules holds the rendered
// rules of the ir's chains). accept is the lookups' verdict.
func (d *desired) emitRun(run *ir.Run, g *ir.Group, irRules map[string]*chainObj, accept string) []ruleText {
	field := "saddr"
	if g.Direction == ir.Egress {
		field = "daddr"
	}
	policies := make([]string, 0, len(run.Chains))
	for _, c := range run.Chains {
		policies = append(policies, c.Policy)
	}
	what := strings.Join(policies, ",")
	var rules []ruleText
	for _, fam := range []ir.Family{ir.IPv4, ir.IPv6} {
		rf := run.Family(fam)
		kw, addrType := "ip", "ipv4_addr"
		if fam == ir.IPv6 {
			kw, addrType = "ip6", "ipv6_addr"
		}
		if rf.AnyUsed {
			name := mergedSetName(g.Name, run.N, true, fam)
			d.sets[name] = &setObj{kind: anyNets, prefixes: rf.Any, def: knftables.Set{
				Name: name, Type: addrType, Flags: []knftables.SetFlag{knftables.IntervalFlag},
				Comment: comment(fmt.Sprintf("%s %s: peers accepted on every port", g.Direction, g.Name))}}
			rules = append(rules, ruleText{rule: kw + " " + field + " @" + name + " " + accept, comment: commentText(what)})
		}
		// One set for every protocol: the key holds the protocol, and
		// every port is the range 0-65535.
		if len(rf.AllPorts) > 0 || rf.Ranges {
			name := mergedSetName(g.Name, run.N, false, fam)
			d.sets[name] = &setObj{kind: allowBoxes, boxes: rf.Boxes, def: knftables.Set{
				Name: name, Type: addrType + " . inet_proto . inet_service", Flags: []knftables.SetFlag{knftables.IntervalFlag},
				Comment: comment(fmt.Sprintf("%s %s: peer . protocol . port accepted", g.Direction, g.Name))}}
			rules = append(rules, ruleText{rule: kw + " " + field + " . meta l4proto . th dport @" + name + " " + accept, comment: commentText(what)})
		}
	}
	for _, ref := range run.Kept {
		rules = append(rules, irRules[ref.Chain.Name].rules[ref.Index])
	}
	return rules
}
