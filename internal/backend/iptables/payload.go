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

// setOp is one line of an ipset restore payload and what undoes it: a line,
// several joined by newlines, or "" when nothing needs undoing.
type setOp struct{ do, undo string }

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
	if len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) {
		return nil, nil // the same members: a set rendered as before
	}
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

// doLines returns the lines the operations run.
func doLines(ops []setOp) []string {
	lines := make([]string, len(ops))
	for i, op := range ops {
		lines[i] = op.do
	}
	return lines
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
