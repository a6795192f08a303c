package ir

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/weftnet/weft/internal/ipproto"
)

// Merge planning: chains whose rules all accept (every NetworkPolicy chain)
// accept, tried in a row, exactly the union of what their rules match, in
// any order. So a backend may replace each run of such chains in a group by
// a few set lookups: the peers accepted on every protocol and port, and the
// (peer prefix, protocol, port range) boxes accepted. PlanGroup says, for
// one group, which chains form runs, what their sets hold, which rules the
// sets cannot hold, and whether the group stays within the budget; the
// backends only write the plan in their syntax.

// DefaultMergeBudget is the budget that MergeOptions.Budget 0 (and a
// backend's Config.MergeBudget 0) stands for.
const DefaultMergeBudget = 50000

// MergeLimit returns the most elements the merged sets of one group may hold
// under budget (see MergeOptions.Budget): budget itself, DefaultMergeBudget
// for 0, and -1 for a negative budget, which never merges.
func MergeLimit(budget int) int {
	switch {
	case budget == 0:
		return DefaultMergeBudget
	case budget < 0:
		return -1
	}
	return budget
}

// SetModel says how a backend's sets store what a run accepts. It decides
// the form of RunFamily's elements and how they are counted.
type SetModel uint8

const (
	// IntervalSets hold disjoint ranges, one element each (nftables
	// interval sets, concatenated ones too, refuse overlapping elements).
	// A run's peers are reduced to the outermost prefixes and its boxes
	// made disjoint: a prefix inside another keeps only the ports the outer
	// one does not accept.
	IntervalSets SetModel = iota
	// PortSets hold single ports (ipset's hash:net,port): a box of n ports
	// is n elements. Elements are the union as the rules give it, overlaps
	// kept, so a peer joining a set only ever adds elements; only ranges of
	// one peer and protocol are joined.
	PortSets
)

// MergeOptions are a backend's parameters of PlanGroup.
type MergeOptions struct {
	// Budget is the most elements the merged sets of one group may hold,
	// counted over both families together and as Sets says. A group whose
	// runs would need more walks all its chains, in both families, so memory
	// stays bounded by the ir's own sets. 0 means DefaultMergeBudget; a
	// negative budget never merges.
	Budget int
	// Sets is how the backend's sets store elements.
	Sets SetModel
	// MaxPortRange is the widest port range the sets take; a rule with a
	// wider one stays a rule. 0: any width.
	MaxPortRange int
}

// Box is a peer prefix with a protocol and an inclusive destination port
// range. Lo 0 (Hi 65535) is every port, on protocols without ports too.
type Box struct {
	Peer     netip.Prefix
	Protocol uint8
	Lo, Hi   uint16
}

// AllPorts reports whether b accepts every port of its protocol.
func (b Box) AllPorts() bool { return b.Lo == 0 }

// ComparePrefixes orders prefixes by address, then length: a prefix comes
// right before those inside it.
func ComparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// CompareBoxes orders boxes by peer (ComparePrefixes), protocol and ports.
func CompareBoxes(a, b Box) int {
	if c := ComparePrefixes(a.Peer, b.Peer); c != 0 {
		return c
	}
	if a.Protocol != b.Protocol {
		return int(a.Protocol) - int(b.Protocol)
	}
	if a.Lo != b.Lo {
		return int(a.Lo) - int(b.Lo)
	}
	return int(a.Hi) - int(b.Hi)
}

// GroupPlan is what a group's chain does, step by step.
type GroupPlan struct {
	// Steps are in the group's order. When Walk is set, each is a chain.
	Steps []PlanStep
	// Walk says the group walks all its chains: over budget, or merging is
	// off (a negative budget).
	Walk bool
	// OverBudget says Walk is due to the budget; Elements is then what the
	// merged sets would have held, else what they hold (both families).
	OverBudget bool
	Elements   int
}

// PlanStep is a chain the group walks (jumps to) or a run of merged chains.
type PlanStep struct {
	// Chain is the walked chain (nil for a run); Index is its place in
	// Group.Chains, hence in Group.Policies (for a run, its first chain's).
	Chain *Chain
	Index int
	Run   *Run
}

// Run is a run of consecutive Accept-only chains of a group, as set lookups
// followed by the rules the sets cannot hold.
type Run struct {
	// N is the run's place among the group's runs, from 0; backends name
	// its sets by it.
	N      int
	Chains []*Chain
	// IPv4 and IPv6 hold what the run's sets hold per family.
	IPv4, IPv6 RunFamily
	// Kept are the rules the sets cannot hold, of both families, in the
	// chains' order: a named port (it resolves on the destination, which
	// for ingress is the group member, no key of the sets), a port on a
	// protocol without ports, a range wider than MaxPortRange. They stay
	// rules, after the lookups, and accept as the lookups do.
	Kept []RuleRef
}

// Family returns what the run's sets hold in family f.
func (r *Run) Family(f Family) *RunFamily {
	if f == IPv6 {
		return &r.IPv6
	}
	return &r.IPv4
}

// RuleRef is a rule of a chain.
type RuleRef struct {
	Chain *Chain
	Index int
}

// Rule returns the rule referred to.
func (r RuleRef) Rule() *Rule { return &r.Chain.Rules[r.Index] }

// RunFamily is what a run accepts in one family, as set elements in the
// form of the SetModel. Which lookups exist depends only on the rules, not
// on the members of their peer sets (an empty set still gets its lookup),
// so a pod joining or leaving a peer set changes set elements only.
type RunFamily struct {
	// Any are the peers accepted on every protocol and port; AnyUsed says
	// some rule accepts so.
	Any     []netip.Prefix
	AnyUsed bool
	// Boxes are the peers accepted on a protocol and port range, sorted
	// (CompareBoxes). AllPorts lists, sorted, the protocols some rule
	// accepts on every port (boxes with Lo 0); Ranges says some rule
	// accepts a port range.
	Boxes    []Box
	AllPorts []uint8
	Ranges   bool
}

// portRange is an inclusive range of destination ports.
type portRange struct{ lo, hi uint16 }

// runAcc collects a run's rules of one family before the elements are built.
type runAcc struct {
	any     []netip.Prefix
	anyUsed bool
	// every holds the peers accepted on every port, per protocol; ranges
	// the port ranges per protocol and peer.
	every  map[uint8][]netip.Prefix
	ranges map[uint8]map[netip.Prefix][]portRange
}

// PlanGroup plans group g of a ruleset whose chains and sets are indexed by
// name. The ruleset must be valid (Ruleset.Validate); a group that names a
// chain the index lacks is an error. The plan refers to the ruleset's chains
// and keeps none of its slices otherwise.
func PlanGroup(g *Group, chains map[string]*Chain, sets map[string]*Set, opts MergeOptions) (*GroupPlan, error) {
	plan := &GroupPlan{Steps: make([]PlanStep, 0, len(g.Chains))}
	limit := MergeLimit(opts.Budget)
	var accs [][2]runAcc
	for j, name := range g.Chains {
		c := chains[name]
		if c == nil {
			return nil, fmt.Errorf("group %s refers to chain %s, which the ruleset does not define", g.Name, name)
		}
		if limit < 0 || !mergeable(c) {
			plan.Steps = append(plan.Steps, PlanStep{Chain: c, Index: j})
			continue
		}
		if n := len(plan.Steps); n == 0 || plan.Steps[n-1].Run == nil {
			plan.Steps = append(plan.Steps, PlanStep{Index: j, Run: &Run{N: len(accs)}})
			accs = append(accs, [2]runAcc{})
		}
		run := plan.Steps[len(plan.Steps)-1].Run
		if err := run.add(c, &accs[run.N], sets, opts); err != nil {
			return nil, fmt.Errorf("group %s: %w", g.Name, err)
		}
	}
	if limit < 0 {
		plan.Walk = true
		return plan, nil
	}
	for _, st := range plan.Steps {
		if st.Run != nil {
			plan.Elements += st.Run.build(&accs[st.Run.N], opts.Sets)
		}
	}
	if plan.Elements > limit {
		plan.Walk, plan.OverBudget = true, true
		plan.Steps = plan.Steps[:0]
		for j, name := range g.Chains {
			plan.Steps = append(plan.Steps, PlanStep{Chain: chains[name], Index: j})
		}
	}
	return plan, nil
}

// mergeable reports whether every rule of c accepts.
func mergeable(c *Chain) bool {
	for i := range c.Rules {
		if c.Rules[i].Verdict != Accept {
			return false
		}
	}
	return true
}

// add takes in the rules of chain c.
func (run *Run) add(c *Chain, acc *[2]runAcc, sets map[string]*Set, opts MergeOptions) error {
	run.Chains = append(run.Chains, c)
	for j := range c.Rules {
		r := &c.Rules[j]
		if kept(r, opts.MaxPortRange) {
			run.Kept = append(run.Kept, RuleRef{Chain: c, Index: j})
			continue
		}
		a := &acc[famIndex(r.Family)]
		peers, err := peerPrefixes(r, sets)
		if err != nil {
			return fmt.Errorf("chain %s rule %d: %w", c.Name, j, err)
		}
		switch {
		case r.Protocol == 0:
			a.anyUsed = true
			a.any = append(a.any, peers...)
		case r.PortMin == 0:
			if a.every == nil {
				a.every = map[uint8][]netip.Prefix{}
			}
			a.every[r.Protocol] = append(a.every[r.Protocol], peers...)
		default:
			if a.ranges == nil {
				a.ranges = map[uint8]map[netip.Prefix][]portRange{}
			}
			byPeer := a.ranges[r.Protocol]
			if byPeer == nil {
				byPeer = map[netip.Prefix][]portRange{}
				a.ranges[r.Protocol] = byPeer
			}
			for _, p := range peers {
				byPeer[p] = append(byPeer[p], portRange{r.PortMin, r.PortMax})
			}
		}
	}
	return nil
}

// kept reports whether rule r stays a rule rather than set elements.
func kept(r *Rule, maxPortRange int) bool {
	if r.EndpointSet != "" {
		return true
	}
	if r.PortMin == 0 {
		return false
	}
	return !ipproto.HasPorts(r.Protocol) || maxPortRange > 0 && int(r.PortMax)-int(r.PortMin)+1 > maxPortRange
}

func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// peerPrefixes is the peer of r as prefixes: the members of its peer set,
// or the whole family for any peer.
func peerPrefixes(r *Rule, sets map[string]*Set) ([]netip.Prefix, error) {
	if r.PeerSet == "" {
		if r.Family == IPv6 {
			return []netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 0)}, nil
		}
		return []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}, nil
	}
	s := sets[r.PeerSet]
	if s == nil {
		return nil, fmt.Errorf("peer set %s is not defined in the ruleset", r.PeerSet)
	}
	out := make([]netip.Prefix, 0, len(s.Addrs)+len(s.Prefixes))
	for _, a := range s.Addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, p := range s.Prefixes {
		out = append(out, p.Masked())
	}
	return out, nil
}

// build turns the collected rules into the run's elements and returns how
// many there are.
func (run *Run) build(acc *[2]runAcc, model SetModel) int {
	n := 0
	for f, rf := range []*RunFamily{&run.IPv4, &run.IPv6} {
		a := &acc[f]
		rf.AnyUsed = a.anyUsed
		rf.Ranges = len(a.ranges) > 0
		for proto := range a.every {
			rf.AllPorts = append(rf.AllPorts, proto)
		}
		slices.Sort(rf.AllPorts)
		if model == IntervalSets {
			rf.Any = outermost(a.any)
			// Every port is the range 0-65535 here, so that a peer's
			// ranges inside it vanish.
			for proto, peers := range a.every {
				byPeer := a.ranges[proto]
				if byPeer == nil {
					if a.ranges == nil {
						a.ranges = map[uint8]map[netip.Prefix][]portRange{}
					}
					byPeer = map[netip.Prefix][]portRange{}
					a.ranges[proto] = byPeer
				}
				for _, p := range peers {
					byPeer[p] = append(byPeer[p], portRange{0, 65535})
				}
			}
			rf.Boxes = disjointBoxes(a.ranges)
			n += len(rf.Any) + len(rf.Boxes)
			continue
		}
		rf.Any = sortedUnique(a.any, ComparePrefixes)
		n += len(rf.Any)
		for proto, peers := range a.every {
			for _, p := range sortedUnique(peers, ComparePrefixes) {
				rf.Boxes = append(rf.Boxes, Box{Peer: p, Protocol: proto, Lo: 0, Hi: 65535})
				n++
			}
		}
		for proto, byPeer := range a.ranges {
			for p, rs := range byPeer {
				for _, r := range mergeRanges(rs) {
					rf.Boxes = append(rf.Boxes, Box{Peer: p, Protocol: proto, Lo: r.lo, Hi: r.hi})
					n += int(r.hi) - int(r.lo) + 1
				}
			}
		}
		slices.SortFunc(rf.Boxes, CompareBoxes)
	}
	return n
}

// outermost returns the union of ps as disjoint prefixes: those not inside
// another (two prefixes are either nested or disjoint).
func outermost(ps []netip.Prefix) []netip.Prefix {
	ps = sortedUnique(ps, ComparePrefixes)
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

// disjointBoxes turns (protocol → prefix → port ranges) into boxes no two of
// which overlap and that together cover exactly the same: a prefix inside
// another gets only the ports its ancestors do not already accept.
func disjointBoxes(byProto map[uint8]map[netip.Prefix][]portRange) []Box {
	var out []Box
	for proto, byPeer := range byProto {
		peers := make([]netip.Prefix, 0, len(byPeer))
		for p := range byPeer {
			peers = append(peers, p)
		}
		slices.SortFunc(peers, ComparePrefixes)
		type level struct {
			peer    netip.Prefix
			covered []portRange // ports of this prefix and its ancestors
		}
		var stack []level
		for _, p := range peers {
			for len(stack) > 0 && !stack[len(stack)-1].peer.Contains(p.Addr()) {
				stack = stack[:len(stack)-1]
			}
			own := mergeRanges(byPeer[p])
			var above []portRange
			if len(stack) > 0 {
				above = stack[len(stack)-1].covered
			}
			for _, r := range subtractRanges(own, above) {
				out = append(out, Box{Peer: p, Protocol: proto, Lo: r.lo, Hi: r.hi})
			}
			stack = append(stack, level{peer: p, covered: mergeRanges(append(slices.Clone(above), own...))})
		}
	}
	slices.SortFunc(out, CompareBoxes)
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

// sortedUnique returns a sorted copy of xs without duplicates.
func sortedUnique[T any](xs []T, cmp func(a, b T) int) []T {
	out := slices.Clone(xs)
	if !slices.IsSortedFunc(out, cmp) {
		slices.SortFunc(out, cmp)
	}
	return slices.CompactFunc(out, func(a, b T) bool { return cmp(a, b) == 0 })
}
