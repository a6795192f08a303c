package nftables

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// DefaultMergeBudget is the most elements the merged sets of one group may
// hold (Config.MergeBudget); a group that would need more walks its policy
// chains instead, so that memory stays bounded by the ir's own sets.
const DefaultMergeBudget = 50000

// Kinds of the sets this backend derives from a group's rules.
const (
	// anyNets holds disjoint prefixes (bare addresses for single hosts): the
	// peers a group accepts on every protocol and port.
	anyNets ir.SetKind = 101
	// allowBoxes holds disjoint (prefix . protocol . port range) elements:
	// what a group accepts on given protocols and ports.
	allowBoxes ir.SetKind = 102
)

// box is an element of an allowBoxes set.
type box struct {
	net    netip.Prefix
	proto  uint8
	lo, hi uint16
}

func compareBox(a, b box) int {
	if c := comparePrefix(a.net, b.net); c != 0 {
		return c
	}
	if a.proto != b.proto {
		return int(a.proto) - int(b.proto)
	}
	if a.lo != b.lo {
		return int(a.lo) - int(b.lo)
	}
	return int(a.hi) - int(b.hi)
}

func boxKey(b box) []string {
	ports := strconv.Itoa(int(b.lo))
	if b.hi != b.lo {
		ports += "-" + strconv.Itoa(int(b.hi))
	}
	return []string{netKey(b.net), protoName(b.proto), ports}
}

// netKey writes a prefix as nft lists it: a single address bare.
func netKey(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func netKeys(p netip.Prefix) []string { return []string{netKey(p)} }

// portRange is an inclusive range of destination ports.
type portRange struct{ lo, hi uint16 }

// hasPorts reports whether th dport reads a port for protocol p.
func hasPorts(p uint8) bool { return p == 6 || p == 17 || p == 132 }

// mergeable reports whether every rule of c accepts: such chains, tried in
// a row, accept exactly the union of what their rules match, in any order.
func mergeable(c *ir.Chain) bool {
	for i := range c.Rules {
		if c.Rules[i].Verdict != ir.Accept {
			return false
		}
	}
	return true
}

// groupRun is a run of consecutive mergeable chains of one group, merged
// into at most four sets (any-port and per-port, by family), plus the rules
// the sets cannot hold (named ports), kept as rules.
type groupRun struct {
	chains   []*ir.Chain
	any      [2][]netip.Prefix
	hasAny   [2]bool
	ports    [2]map[uint8]map[netip.Prefix][]portRange
	hasPorts [2]bool
	residual []ruleText
	resRefs  []string
	// elements, once built
	anyElems [2][]netip.Prefix
	boxElems [2][]box
}

func famIndex(f ir.Family) int {
	if f == ir.IPv6 {
		return 1
	}
	return 0
}

// add takes in the rules of chain c, whose rendered rules are texts.
func (run *groupRun) add(c *ir.Chain, texts []ruleText, sets map[string]*setObj) {
	run.chains = append(run.chains, c)
	for j := range c.Rules {
		r := &c.Rules[j]
		if r.EndpointSet != "" || (r.Protocol != 0 && r.PortMin != 0 && !hasPorts(r.Protocol)) {
			// A named port resolves on the destination; for ingress that is
			// the group member, which the sets do not key on. Keep the rule.
			run.residual = append(run.residual, texts[j])
			run.resRefs = append(run.resRefs, r.PeerSet, r.EndpointSet)
			continue
		}
		f := famIndex(r.Family)
		peers := peerPrefixes(r, sets)
		if r.Protocol == 0 {
			run.hasAny[f] = true
			run.any[f] = append(run.any[f], peers...)
			continue
		}
		run.hasPorts[f] = true
		pr := portRange{0, 65535}
		if r.PortMin != 0 {
			pr = portRange{r.PortMin, r.PortMax}
		}
		if run.ports[f] == nil {
			run.ports[f] = map[uint8]map[netip.Prefix][]portRange{}
		}
		byNet := run.ports[f][r.Protocol]
		if byNet == nil {
			byNet = map[netip.Prefix][]portRange{}
			run.ports[f][r.Protocol] = byNet
		}
		for _, p := range peers {
			byNet[p] = append(byNet[p], pr)
		}
	}
}

// peerPrefixes is the peer of r as prefixes: the members of its peer set, or
// the whole family for any peer.
func peerPrefixes(r *ir.Rule, sets map[string]*setObj) []netip.Prefix {
	if r.PeerSet == "" {
		if r.Family == ir.IPv6 {
			return []netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
		}
		return []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}
	}
	s := sets[r.PeerSet]
	if s.kind == ir.NetSet {
		return s.prefixes
	}
	out := make([]netip.Prefix, len(s.addrs))
	for i, a := range s.addrs {
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

// build computes the disjoint elements of the run's sets and returns how
// many there are.
func (run *groupRun) build() int {
	n := 0
	for f := range 2 {
		run.anyElems[f] = outermost(run.any[f])
		n += len(run.anyElems[f])
		run.boxElems[f] = disjointBoxes(run.ports[f])
		n += len(run.boxElems[f])
	}
	return n
}

// outermost returns the union of ps as disjoint prefixes: those not inside
// another (two prefixes are either nested or disjoint).
func outermost(ps []netip.Prefix) []netip.Prefix {
	ps = sortedUnique(ps, comparePrefix)
	out := ps[:0]
	for _, p := range ps {
		// Sorted by address then length, a prefix follows the prefix that
		// holds it, and whatever lies in between is inside that one too.
		if len(out) > 0 && out[len(out)-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// disjointBoxes turns (protocol → prefix → port ranges) into elements no two
// of which overlap (the kernel refuses overlapping elements of a concatenated
// interval set) and that together cover exactly the same: a prefix inside
// another gets only the ports its ancestors do not already allow.
func disjointBoxes(byProto map[uint8]map[netip.Prefix][]portRange) []box {
	var out []box
	for proto, byNet := range byProto {
		nets := make([]netip.Prefix, 0, len(byNet))
		for p := range byNet {
			nets = append(nets, p)
		}
		slices.SortFunc(nets, comparePrefix)
		type level struct {
			net     netip.Prefix
			covered []portRange // ports of this prefix and its ancestors
		}
		var stack []level
		for _, p := range nets {
			for len(stack) > 0 && !stack[len(stack)-1].net.Contains(p.Addr()) {
				stack = stack[:len(stack)-1]
			}
			own := mergeRanges(byNet[p])
			var above []portRange
			if len(stack) > 0 {
				above = stack[len(stack)-1].covered
			}
			for _, r := range subtractRanges(own, above) {
				out = append(out, box{net: p, proto: proto, lo: r.lo, hi: r.hi})
			}
			stack = append(stack, level{net: p, covered: mergeRanges(append(slices.Clone(above), own...))})
		}
	}
	slices.SortFunc(out, compareBox)
	return out
}

// mergeRanges returns rs sorted, with overlapping and adjacent ranges joined.
func mergeRanges(rs []portRange) []portRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	var out []portRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.lo) <= int(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtractRanges returns a minus b; both sorted and disjoint.
func subtractRanges(a, b []portRange) []portRange {
	var out []portRange
	for _, r := range a {
		lo := int(r.lo)
		for _, s := range b {
			if int(s.hi) < lo || s.lo > r.hi {
				continue
			}
			if int(s.lo) > lo {
				out = append(out, portRange{uint16(lo), s.lo - 1})
			}
			lo = int(s.hi) + 1
		}
		if lo <= int(r.hi) {
			out = append(out, portRange{uint16(lo), r.hi})
		}
	}
	return out
}

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

// emit adds the run's sets to d and returns the group chain's rules that
// look them up, then its kept rules. accept is the lookups' verdict.
func (run *groupRun) emit(d *desired, g *ir.Group, k int, accept string) []ruleText {
	field := "saddr"
	if g.Direction == ir.Egress {
		field = "daddr"
	}
	var policies []string
	for _, c := range run.chains {
		policies = append(policies, c.Policy)
	}
	what := strings.Join(policies, ",")
	var rules []ruleText
	for f, fam := range []ir.Family{ir.IPv4, ir.IPv6} {
		kw, addrType := "ip", "ipv4_addr"
		if fam == ir.IPv6 {
			kw, addrType = "ip6", "ipv6_addr"
		}
		if run.hasAny[f] {
			name := mergedSetName(g.Name, k, true, fam)
			d.sets[name] = &setObj{kind: anyNets, prefixes: run.anyElems[f], def: knftables.Set{
				Name: name, Type: addrType, Flags: []knftables.SetFlag{knftables.IntervalFlag},
				Comment: comment(fmt.Sprintf("%s %s: peers accepted on every port", g.Direction, g.Name))}}
			rules = append(rules, ruleText{rule: kw + " " + field + " @" + name + " " + accept, comment: commentText(what)})
		}
		if run.hasPorts[f] {
			name := mergedSetName(g.Name, k, false, fam)
			d.sets[name] = &setObj{kind: allowBoxes, boxes: run.boxElems[f], def: knftables.Set{
				Name: name, Type: addrType + " . inet_proto . inet_service", Flags: []knftables.SetFlag{knftables.IntervalFlag},
				Comment: comment(fmt.Sprintf("%s %s: peer . protocol . port accepted", g.Direction, g.Name))}}
			rules = append(rules, ruleText{rule: kw + " " + field + " . meta l4proto . th dport @" + name + " " + accept, comment: commentText(what)})
		}
	}
	return append(rules, run.residual...)
}
