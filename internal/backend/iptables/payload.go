package iptables

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// tableDiff returns the iptables-restore --noflush payload that turns the
// filter table from `from` into `to`, or "" when they are the same. It
// declares (which flushes and refills) exactly the chains that are new or
// changed, deletes weft's chains that `to` does not hold, and puts the hook
// jumps back on top of FORWARD and INPUT when they are not there. The
// kernel applies the payload in one transaction.
func tableDiff(from, to *table) string {
	var changed, removed []string
	for name, rules := range to.chains {
		old, ok := from.chains[name]
		if !ok || !slices.Equal(old, rules) {
			changed = append(changed, name)
		}
	}
	for name := range from.chains {
		if _, ok := to.chains[name]; !ok {
			removed = append(removed, name)
		}
	}
	var hookLines []string
	for _, h := range builtinChains {
		old, want := from.hooks[h], to.hooks[h]
		if slices.Equal(old, want) && (len(want) == 0 || from.hookFirst[h]) {
			continue
		}
		for _, spec := range old {
			hookLines = append(hookLines, "-D "+h+" "+spec)
		}
		for i := len(want) - 1; i >= 0; i-- {
			hookLines = append(hookLines, "-I "+h+" 1 "+want[i])
		}
	}
	if len(changed) == 0 && len(removed) == 0 && len(hookLines) == 0 {
		return ""
	}
	sortChains(changed)
	sort.Strings(removed)
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, name := range changed {
		fmt.Fprintf(&b, ":%s - [0:0]\n", name)
	}
	for _, name := range removed {
		fmt.Fprintf(&b, ":%s - [0:0]\n", name)
	}
	for _, name := range changed {
		for _, line := range to.chains[name] {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	for _, line := range hookLines {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	for _, name := range removed {
		fmt.Fprintf(&b, "-X %s\n", name)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// sortChains orders weft's fixed chains (upper case) before the ir's, each
// part by name, so payloads read top-down and are deterministic.
func sortChains(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if ua, ub := isUpper(a), isUpper(b); ua != ub {
			return ua
		}
		return a < b
	})
}

func isUpper(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }

// setOp is one line of an ipset restore payload and the line that undoes it.
type setOp struct{ do, undo string }

// setPlan is how the ipsets go from one state to another, in three steps:
// create (new sets, and temporary sets filled with a changed set's new
// members), change (swaps and in-place additions and deletions of live sets),
// and, once the rules no longer use them, destroy (temporary and stale sets).
type setPlan struct {
	create  []string
	created []string // names the create step makes
	// createdAt[i] is the line of the create payload that makes created[i].
	createdAt []int
	change    []setOp
	// after holds the changes that take pod addresses out of group sets
	// (deletions, and swaps of group sets). They run once the rules are in
	// place: a pod moving to a group that is new in this apply must not
	// leave its old group before the new group's dispatch rule exists.
	after   []setOp
	destroy []string
	// counts for Stats
	newSets, swapped, patched int
}

// planSets compares the sets of two states. nextTemp names temporary sets.
// It also carries the capacity of sets that are changed in place into `to`,
// so that `to` describes the kernel once the plan has run.
func planSets(from, to *state, nextTemp func() string) (*setPlan, error) {
	p := &setPlan{}
	var isolateAdds, allowDels, swaps, allowAdds, isolateSwaps, isolateDels []setOp
	names := make([]string, 0, len(to.sets))
	for name := range to.sets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := to.sets[name]
		have, exists := from.sets[name]
		if !exists {
			p.addCreate(name, want)
			p.newSets++
			continue
		}
		if have.Type != want.Type || have.Family != want.Family {
			return nil, fmt.Errorf("ipset %s exists with type %s family %s, but weft needs type %s family %s: it is not a set this weft made; remove it (ipset destroy %s) or run `weft cleanup`",
				name, have.Type, have.familyName(), want.Type, want.familyName(), name)
		}
		if have.Known {
			adds, dels := memberDiff(have.Members, want.Members)
			if len(adds) == 0 && len(dels) == 0 {
				want.MaxElem, want.HashSize = have.MaxElem, have.HashSize
				continue
			}
			if len(want.Members) <= have.MaxElem && (len(adds)+len(dels))*4 <= len(want.Members) {
				want.MaxElem, want.HashSize = have.MaxElem, have.HashSize
				addOps, delOps := patchOps(name, adds, dels)
				if want.Isolates {
					isolateAdds = append(isolateAdds, addOps...)
					isolateDels = append(isolateDels, delOps...)
				} else {
					allowDels = append(allowDels, delOps...)
					allowAdds = append(allowAdds, addOps...)
				}
				p.patched++
				continue
			}
		}
		tmp := nextTemp()
		p.addCreate(tmp, want)
		swap := "swap " + tmp + " " + name
		if want.Isolates {
			isolateSwaps = append(isolateSwaps, setOp{do: swap, undo: swap})
		} else {
			swaps = append(swaps, setOp{do: swap, undo: swap})
		}
		p.destroy = append(p.destroy, tmp)
		p.swapped++
	}
	var stale []string
	for name := range from.sets {
		if _, ok := to.sets[name]; !ok {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	p.destroy = append(p.destroy, stale...)
	// Isolate first and revoke first; allow and un-isolate last, so that no
	// moment between two lines is more open than both the old and the new state.
	for _, ops := range [][]setOp{isolateAdds, allowDels, swaps, allowAdds} {
		p.change = append(p.change, ops...)
	}
	p.after = append(isolateSwaps, isolateDels...)
	return p, nil
}

func (p *setPlan) addCreate(name string, s *ipset) {
	p.created = append(p.created, name)
	p.createdAt = append(p.createdAt, len(p.create)+1)
	p.create = append(p.create, createLine(name, s))
	p.create = appendAdds(p.create, name, s.Members)
}

// createdBefore returns the sets the create step made before it failed at
// line (1-based).
func (p *setPlan) createdBefore(line int) []string {
	var out []string
	for i, at := range p.createdAt {
		if at < line {
			out = append(out, p.created[i])
		}
	}
	return out
}

func createLine(name string, s *ipset) string {
	return fmt.Sprintf("create %s %s family %s hashsize %d maxelem %d", name, s.Type, s.familyName(), s.HashSize, s.MaxElem)
}

func appendAdds(lines []string, name string, members []string) []string {
	for _, m := range members {
		lines = append(lines, "add "+name+" "+m)
	}
	return lines
}

func patchOps(name string, adds, dels []string) (addOps, delOps []setOp) {
	for _, m := range adds {
		addOps = append(addOps, setOp{do: "add " + name + " " + m, undo: "del " + name + " " + m})
	}
	for _, m := range dels {
		delOps = append(delOps, setOp{do: "del " + name + " " + m, undo: "add " + name + " " + m})
	}
	return addOps, delOps
}

// memberDiff returns what is in b and not a, and what is in a and not b.
func memberDiff(a, b []string) (adds, dels []string) {
	if slices.Equal(a, b) {
		return nil, nil
	}
	inA := make(map[string]struct{}, len(a))
	for _, m := range a {
		inA[m] = struct{}{}
	}
	for _, m := range b {
		if _, ok := inA[m]; ok {
			delete(inA, m)
		} else {
			adds = append(adds, m)
		}
	}
	for _, m := range a {
		if _, ok := inA[m]; ok {
			dels = append(dels, m)
		}
	}
	return adds, dels
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
