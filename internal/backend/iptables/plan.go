package iptables

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// How an apply never opens what both rulesets close
//
// The kernel goes from the state `from` (rules R_old, set members S_old) to
// `to` (R_new, S_new) through several commands: ipset restore applies its
// lines one by one, and iptables-restore swaps the rules of one family at
// once. A packet may meet any state in between. None of them may accept a
// packet that both `from` and `to` drop. The plan reaches this by going
// first down to a state at most as open as `from`, then switching the rules
// at once to a state at most as open as `to`, then up to `to`:
//
//  1. create: new sets and temporary sets, whole; no rule uses them yet.
//  2. narrow (rules R_old): allow sets lose what they lose (S_old ∩ S_new),
//     deny sets gain what they gain (S_old ∪ S_new), and group sets take the
//     changes that keep each address's groups as R_old had them (see below).
//  3. rules: one iptables-restore per family installs R_new.
//  4. widen (rules R_new): allow sets gain, group sets take their other
//     changes, deny sets lose; now every set holds S_new.
//  5. settle: sets that were staged (below) get their new members, and a
//     second restore per family points the rules back at them.
//  6. destroy temporary and stale sets.
//
// Why no state accepts more than `from` or `to`: a set is an allow set when
// every rule naming it accepts (a policy rule going to WEFT-ALLOW, a merged
// lookup returning from a group chain), a deny set when every rule naming it
// drops (a Drop rule, the unknown-address check). A group chain's verdict
// only grows when an allow set grows (matching an accepting rule is the best
// a packet can do: after WEFT-ALLOW, WEFT-INGRESS-ALLOW, WEFT-INGRESS-ACCEPT
// or a RETURN nothing can drop it) and only
// shrinks when a deny set grows (a matching drop is final). A packet is
// accepted when its egress and its ingress check both accept it, each of
// them decided by the first group set in the dispatch chain holding its
// address (no group: the unknown-address check, then accept). So during
// step 2, under R_old, every allow set holds at most S_old and every deny
// set at least S_old, and every address is dispatched to the group it had
// or dropped as unknown (an address that was open, in no group, may already
// be in its new group): every check accepts at most what it accepted
// before, and so does the conjunction. After step
// 3, under R_new, allow sets hold at most S_new, deny sets at least S_new,
// every address is dispatched to its new group or dropped: at most `to`;
// step 4 only grows allow sets and shrinks deny sets towards S_new, and
// moves addresses into their new group. Both halves of a packet's check are
// on the same side of step 3 (one restore switches a whole family), so a
// packet never meets an old egress check and a new ingress check.
//
// Group sets are neither allow nor deny sets: an address moving from group
// G1 to G2 is dispatched to whichever of the two comes first while it is in
// both, and to no group while it is in neither. For each address the plan
// looks for a split of its group set changes between steps 2 and 4 that
// keeps it, at every line, in its old group under R_old and in its new
// group under R_new (anywhere, where it was or will be open; dropped as
// unknown only where it was or will be dropped so, so that a moving pod is
// not cut off for a moment). When
// there is none (say G1 and G2 both stay, and G1 comes first), or a set is
// used in other ways (a Pass rule, accepting and dropping rules alike), the
// set is staged: a temporary copy with the new members is made in step 1,
// the rules of step 3 name the copy instead, so that its members change
// with the rules at once; step 5 then fills the set itself, which no rule
// names at that moment, and one more restore per family names it again
// (same members: nothing changes for packets).

// setUse says how a ruleset's rules use a set.
type setUse uint8

const (
	useAllow    setUse = 1 << iota // in rules that accept
	useDeny                        // in rules that drop
	useDispatch                    // in a dispatch chain, sending its members to their group
	useOther                       // any other way (Pass, negated)
)

// setUses returns how the rules of both families use each set they name.
func setUses(tables [2]*table) map[string]setUse {
	uses := map[string]setUse{}
	for _, t := range tables {
		groups := map[string]bool{}
		for _, d := range []string{chainEgress, chainIngress} {
			for _, line := range t.chains[d] {
				if f, err := splitRule(line); err == nil && slices.Contains(f, "-g") {
					groups[ruleTarget(f)] = true
				}
			}
		}
		for chain, lines := range t.chains {
			for _, line := range lines {
				f, err := splitRule(line)
				if err != nil {
					continue
				}
				target := ruleTarget(f)
				var u setUse
				switch {
				case (chain == chainEgress || chain == chainIngress) && groups[target]:
					u = useDispatch
				case target == chainAllow, target == chainIngressAllow, target == chainIngressAccept, target == "RETURN" && groups[chain],
					target == chainEgressAudit, target == chainIngressAudit: // an audited drop lets pass
					u = useAllow
				case target == chainEgressDrop, target == chainIngressDrop, target == chainEgressUnknown, target == chainIngressUnknown, target == "DROP":
					u = useDeny
				default:
					u = useOther
				}
				for i := 0; i+1 < len(f); i++ {
					if f[i] != "--match-set" {
						continue
					}
					if i > 0 && f[i-1] == "!" {
						uses[f[i+1]] |= useOther
					} else {
						uses[f[i+1]] |= u
					}
				}
			}
		}
	}
	return uses
}

// plan is how an apply takes the kernel from one state to another (see the
// comment at the top of this file). Every set operation carries the line
// that undoes it ("" when nothing needs undoing, e.g. an element added to a
// set that the undo of its creation destroys).
type plan struct {
	create, narrow, widen, settle []setOp
	// rules are the iptables-restore payloads of step 3 per family, and
	// ruleTables what they install: `to` with staged sets renamed.
	rules      [2]string
	ruleTables [2]*table
	// settleRules name the staged sets again (step 5).
	settleRules [2]string
	destroy     []string
	// counts for Stats
	newSets, swapped, patched, staged int
}

// liveSet follows a set through the plan: its members and capacity, and
// whether it was patched in place or swapped (for Stats).
type liveSet struct {
	members           []string
	maxElem, hashSize int
	patched, swapped  bool
}

// planApply compares two states and returns the plan from one to the
// other. nextTemp names temporary sets. It carries the capacity the sets
// will have into `to`, so that `to` describes the kernel once the plan ran.
func planApply(from, to *state, nextTemp func() string) (*plan, error) {
	p := &plan{}
	usesFrom, usesTo := setUses(from.tables), setUses(to.tables)
	var (
		denyAdds, allowDels, otherChanges []setOp // narrow
		allowAdds, denyDels               []setOp // widen
		dispatch                          []string
		staged                            = map[string]bool{}
	)
	names := make([]string, 0, len(to.sets))
	for name := range to.sets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := to.sets[name]
		have, exists := from.sets[name]
		if !exists {
			p.addCreate(name, want, want.Members)
			p.newSets++
			continue
		}
		if have.Type != want.Type || have.Family != want.Family {
			return nil, fmt.Errorf("ipset %s exists with type %s family %s, but weft needs type %s family %s: it is not a set this weft made; remove it (ipset destroy %s) or run `weft cleanup`",
				name, have.Type, have.familyName(), want.Type, want.familyName(), name)
		}
		live := &liveSet{members: have.Members, maxElem: have.MaxElem, hashSize: have.HashSize}
		adds, dels := memberDiff(have.Members, want.Members)
		if len(adds) == 0 && len(dels) == 0 {
			want.MaxElem, want.HashSize = have.MaxElem, have.HashSize
			continue
		}
		switch u := usesFrom[name] | usesTo[name]; u {
		case 0: // no rule uses it: change it at any time
			p.transition(name, want, live, want.Members, &otherChanges, nextTemp)
		case useAllow:
			p.transition(name, want, live, without(have.Members, dels), &allowDels, nextTemp)
			p.transition(name, want, live, want.Members, &allowAdds, nextTemp)
		case useDeny:
			p.transition(name, want, live, append(slices.Clone(have.Members), adds...), &denyAdds, nextTemp)
			p.transition(name, want, live, want.Members, &denyDels, nextTemp)
		case useDispatch:
			if len(have.Members)+len(adds) > have.MaxElem {
				staged[name] = true // too big to patch in place
			}
			dispatch = append(dispatch, name)
			continue
		default:
			staged[name] = true
			continue
		}
		want.MaxElem, want.HashSize = live.maxElem, live.hashSize
		if live.patched {
			p.patched++
		}
		if live.swapped {
			p.swapped++
		}
	}
	dispatchNarrow, dispatchWiden := planDispatch(from, to, dispatch, staged)
	for _, name := range dispatch {
		if !staged[name] {
			want, have := to.sets[name], from.sets[name]
			want.MaxElem, want.HashSize = have.MaxElem, have.HashSize
			p.patched++
		}
	}
	// Staged sets: a copy with the new members for the rules of step 3,
	// the set itself settled once no rule names it.
	rename := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(staged)) {
		want, have := to.sets[name], from.sets[name]
		tmp := nextTemp()
		rename[name] = tmp
		p.addCreate(tmp, want, want.Members)
		p.destroy = append(p.destroy, tmp)
		p.settle = append(p.settle, settleOps(name, have, want)...)
		if len(want.Members) <= have.MaxElem { // else settleOps makes it anew, as want says
			want.MaxElem, want.HashSize = have.MaxElem, have.HashSize
		}
		p.staged++
	}
	var stale []string
	for name := range from.sets {
		if _, ok := to.sets[name]; !ok {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	p.destroy = append(p.destroy, stale...)

	for _, ops := range [][]setOp{denyAdds, allowDels, dispatchNarrow, otherChanges} {
		p.narrow = append(p.narrow, ops...)
	}
	for _, ops := range [][]setOp{allowAdds, dispatchWiden, denyDels} {
		p.widen = append(p.widen, ops...)
	}
	for fi := range families {
		p.ruleTables[fi] = renameSets(to.tables[fi], rename)
		p.rules[fi] = tableDiff(from.tables[fi], p.ruleTables[fi])
		p.settleRules[fi] = tableDiff(p.ruleTables[fi], to.tables[fi])
	}
	return p, nil
}

// transition adds to ops what takes the live set name to the members
// target: lines that add and delete in place when the change is small and
// fits, else a swap with a temporary set filled in step 1.
func (p *plan) transition(name string, want *ipset, live *liveSet, target []string, ops *[]setOp, nextTemp func() string) {
	adds, dels := memberDiff(live.members, target)
	if len(adds) == 0 && len(dels) == 0 {
		return
	}
	if len(target) <= live.maxElem && (len(adds)+len(dels))*4 <= len(target) {
		addOps, delOps := patchOps(name, adds, dels)
		*ops = append(*ops, delOps...)
		*ops = append(*ops, addOps...)
		live.patched = true
	} else {
		// A temporary set big enough for the target and for the final
		// members, which a later step may add in place.
		n := max(len(target), len(want.Members))
		tmp := nextTemp()
		sized := &ipset{Type: want.Type, Family: want.Family, MaxElem: maxElemFor(n), HashSize: hashSizeFor(n)}
		p.addCreate(tmp, sized, target)
		swap := "swap " + tmp + " " + name
		*ops = append(*ops, setOp{do: swap, undo: swap})
		p.destroy = append(p.destroy, tmp)
		live.swapped = true
		live.maxElem, live.hashSize = sized.MaxElem, sized.HashSize
	}
	live.members = target
}

// settleOps brings a staged set, which no rule names at that moment, to its
// new members: in place when they fit, else made anew.
func settleOps(name string, have, want *ipset) []setOp {
	if len(want.Members) <= have.MaxElem {
		adds, dels := memberDiff(have.Members, want.Members)
		addOps, delOps := patchOps(name, adds, dels)
		return append(delOps, addOps...)
	}
	recreate := []string{createLine(name, have)}
	recreate = appendAdds(recreate, name, have.Members)
	ops := []setOp{
		{do: "destroy " + name, undo: strings.Join(recreate, "\n")},
		{do: createLine(name, want), undo: "destroy " + name},
	}
	for _, m := range want.Members {
		ops = append(ops, setOp{do: "add " + name + " " + m})
	}
	return ops
}

func (p *plan) addCreate(name string, s *ipset, members []string) {
	p.create = append(p.create, setOp{do: createLine(name, s), undo: "destroy " + name})
	for _, m := range members {
		p.create = append(p.create, setOp{do: "add " + name + " " + m})
	}
}

// without returns members less those in drop, in order.
func without(members, drop []string) []string {
	gone := make(map[string]bool, len(drop))
	for _, m := range drop {
		gone[m] = true
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		if !gone[m] {
			out = append(out, m)
		}
	}
	return out
}

// renameSets returns t with the rules naming a set of rename naming its
// stand-in instead.
func renameSets(t *table, rename map[string]string) *table {
	if len(rename) == 0 {
		return t
	}
	out := &table{chains: make(map[string][]string, len(t.chains)), hooks: t.hooks, hookFirst: t.hookFirst}
	for chain, lines := range t.chains {
		renamed := lines
		for i, line := range lines {
			for from, to := range rename {
				if strings.Contains(line, "--match-set "+from+" ") {
					if &renamed[0] == &lines[0] {
						renamed = slices.Clone(lines)
					}
					line = strings.ReplaceAll(line, "--match-set "+from+" ", "--match-set "+to+" ")
					renamed[i] = line
				}
			}
		}
		out.chains[chain] = renamed
	}
	return out
}

// dispatchEntry is one rule of a dispatch chain: its set, and the group it
// sends matching addresses to ("" for the unknown-address drop).
type dispatchEntry struct{ set, group string }

func dispatchEntries(t *table, chain string) []dispatchEntry {
	var out []dispatchEntry
	for _, line := range t.chains[chain] {
		f, err := splitRule(line)
		if err != nil {
			continue
		}
		set := ""
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--match-set" {
				set = f[i+1]
			}
		}
		switch target := ruleTarget(f); {
		case set == "":
		case target == chainEgressUnknown || target == chainIngressUnknown:
			out = append(out, dispatchEntry{set: set})
		case slices.Contains(f, "-g"):
			out = append(out, dispatchEntry{set: set, group: target})
		}
	}
	return out
}

// Where an address is sent: a group, dropped as unknown, or let through.
const (
	sentDrop = "\x00drop"
	sentOpen = "\x00open"
)

// groupOp is one change of an address's group sets.
type groupOp struct {
	set string
	add bool
}

// planDispatch splits the changes of the group sets in dispatch between the
// narrow and the widen step, address by address (see the comment at the top
// of this file), and adds to staged the sets whose changes cannot be split
// so. Staged sets' changes are left out of the returned operations.
func planDispatch(from, to *state, dispatch []string, staged map[string]bool) (narrow, widen []setOp) {
	if len(dispatch) == 0 {
		return nil, nil
	}
	changing := map[string]bool{}
	for _, n := range dispatch {
		changing[n] = true
	}
	// One view per dispatch chain (family and direction): its entries under
	// the old and the new rules, and the addresses whose groups change.
	type view struct {
		old, new []dispatchEntry
		ops      map[string][]groupOp // address → its changes, additions first
	}
	var views []*view
	for fi := range families {
		for _, chain := range []string{chainEgress, chainIngress} {
			v := &view{old: dispatchEntries(from.tables[fi], chain), new: dispatchEntries(to.tables[fi], chain), ops: map[string][]groupOp{}}
			seen := map[string]bool{}
			for _, e := range slices.Concat(v.old, v.new) {
				if !changing[e.set] || seen[e.set] {
					continue
				}
				seen[e.set] = true
				adds, dels := memberDiff(from.sets[e.set].Members, to.sets[e.set].Members)
				for _, a := range adds {
					v.ops[a] = append(v.ops[a], groupOp{set: e.set, add: true})
				}
				for _, a := range dels {
					v.ops[a] = append(v.ops[a], groupOp{set: e.set})
				}
			}
			for _, ops := range v.ops {
				sort.Slice(ops, func(i, j int) bool {
					if ops[i].add != ops[j].add {
						return ops[i].add
					}
					return ops[i].set < ops[j].set
				})
			}
			views = append(views, v)
		}
	}
	// Members as the dispatch chains meet them while group sets change:
	// a set's members (old for sets that go, new for those that come or
	// stay unchanged); an unknown-address set's old and new members, since
	// deny sets grow before and shrink after the group sets change.
	members := map[string]map[string]bool{}
	memberOf := func(e dispatchEntry, addr string) bool {
		m, ok := members[e.set]
		if !ok {
			m = map[string]bool{}
			var lists [][]string
			switch old, now := from.sets[e.set], to.sets[e.set]; {
			case changing[e.set]:
				lists = [][]string{old.Members} // sentTo applies the changes
			case e.group == "":
				lists = [][]string{members0(old), members0(now)}
			case now != nil:
				lists = [][]string{now.Members}
			default:
				lists = [][]string{members0(old)}
			}
			for _, l := range lists {
				for _, x := range l {
					m[x] = true
				}
			}
			members[e.set] = m
		}
		if m[addr] {
			return true
		}
		if e.group == "" {
			for x := range m {
				if p, err := netip.ParsePrefix(x); err == nil && p.Contains(netip.MustParseAddr(addr)) {
					return true
				}
			}
		}
		return false
	}
	// sentTo says where the dispatch entries send addr, with the changes in
	// done made to the changing group sets.
	sentTo := func(entries []dispatchEntry, addr string, ops []groupOp, done map[groupOp]bool) string {
		for _, e := range entries {
			in := memberOf(e, addr)
			for _, op := range ops {
				if op.set == e.set && done[op] {
					in = op.add
				}
			}
			if !in {
				continue
			}
			if e.group == "" {
				return sentDrop
			}
			return e.group
		}
		return sentOpen
	}
	// valid reports whether doing the ops of addr in the phases given (0:
	// narrow, 1: with the rules, 2: widen) keeps addr, after every line,
	// where it may be: in its old group (or anywhere if it was open) under
	// R_old, in its new one (likewise) under R_new. Dropped as unknown is
	// closed enough, but it is allowed only where the old or the new state
	// drops the address too: a pod moving between groups is not cut off
	// for a moment (its sets are staged instead).
	valid := func(v *view, addr string, phase map[groupOp]int) bool {
		ops := v.ops[addr]
		done, all := map[groupOp]bool{}, map[groupOp]bool{}
		for _, op := range ops {
			all[op] = true
		}
		before, after := sentTo(v.old, addr, ops, done), sentTo(v.new, addr, ops, all)
		dropped := before == sentDrop || after == sentDrop
		ok := func(got, want string) bool { return got == want || want == sentOpen || got == sentDrop && dropped }
		for _, op := range ops {
			if phase[op] == 0 {
				done[op] = true
				if !ok(sentTo(v.old, addr, ops, done), before) {
					return false
				}
			}
		}
		for _, op := range ops {
			if phase[op] == 1 {
				done[op] = true
			}
		}
		if !ok(sentTo(v.new, addr, ops, done), after) {
			return false
		}
		for _, op := range ops {
			if phase[op] == 2 {
				done[op] = true
				if !ok(sentTo(v.new, addr, ops, done), after) {
					return false
				}
			}
		}
		return true
	}
	// schedule finds phases for the changes of addr, trying additions early
	// and removals late first; changes of staged sets go with the rules.
	schedule := func(v *view, addr string) (map[groupOp]int, bool) {
		var free []groupOp
		phase := map[groupOp]int{}
		for _, op := range v.ops[addr] {
			phase[op] = 1
			if !staged[op.set] {
				free = append(free, op)
			}
		}
		if len(free) > 8 {
			return nil, false
		}
		for bits := 0; bits < 1<<len(free); bits++ {
			for i, op := range free {
				late := (bits>>i&1 == 1) != op.add
				phase[op] = 0
				if late {
					phase[op] = 2
				}
			}
			if valid(v, addr, phase) {
				return phase, true
			}
		}
		return nil, false
	}
	// Stage the sets of addresses that have no schedule, until all have
	// one: staging moves a set's changes to the rules' moment, which may
	// leave another address with none. All staged is always a schedule.
	schedules := make([]map[string]map[groupOp]int, len(views))
	for changed := true; changed; {
		changed = false
		for vi, v := range views {
			schedules[vi] = map[string]map[groupOp]int{}
			for _, addr := range slices.Sorted(maps.Keys(v.ops)) {
				if phase, ok := schedule(v, addr); ok {
					schedules[vi][addr] = phase
					continue
				}
				for _, op := range v.ops[addr] {
					if !staged[op.set] {
						staged[op.set], changed = true, true
					}
				}
			}
		}
	}
	var nAdds, nDels, wAdds, wDels []setOp
	for vi, v := range views {
		for _, addr := range slices.Sorted(maps.Keys(v.ops)) {
			for _, op := range v.ops[addr] {
				if staged[op.set] {
					continue
				}
				addOps, delOps := patchOps(op.set, []string{addr}, []string{addr})
				switch narrow := schedules[vi][addr][op] == 0; {
				case narrow && op.add:
					nAdds = append(nAdds, addOps...)
				case narrow:
					nDels = append(nDels, delOps...)
				case op.add:
					wAdds = append(wAdds, addOps...)
				default:
					wDels = append(wDels, delOps...)
				}
			}
		}
	}
	return slices.Concat(nAdds, nDels), slices.Concat(wAdds, wDels)
}

// members0 is the members of s, none when s is nil.
func members0(s *ipset) []string {
	if s == nil {
		return nil
	}
	return s.Members
}
