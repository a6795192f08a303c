package iptables

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/ir"
)

// fakeKernel is an in-memory filter table per family and an ipset table,
// driven through the commands the backend runs: iptables-restore --noflush,
// iptables-save -t filter, iptables -S FORWARD [n], and ipset restore, list
// and save. It enforces what the kernel enforces and weft relies on: a rule
// may not name a set or chain that does not exist, a chain or set in use
// cannot be deleted, a restore is all or nothing, and ipset restore applies
// its lines one by one, stopping at the first error and naming its line. It
// calls observe after every change a packet could notice, so that a test
// can look at each state the kernel passes through.
type fakeKernel struct {
	t      *testing.T
	tables [2]*fakeTable
	sets   map[string]*fakeSet
	// observe, when set, is called after each change of rules or of a set
	// that a rule uses, with what changed.
	observe func(what string)
	// failAt, when set, may refuse a command: it returns the 1-based line
	// of the input to refuse (0: none). ipset restore runs the lines before
	// it; iptables-restore refuses all.
	failAt func(name string, args []string, input string) int
	// commands lists what ran: the tool, its arguments and its input.
	commands []string
	// maxSets, when set, is the size of the ipset table: a create beyond
	// it is refused, as the kernel refuses it.
	maxSets int
}

type fakeTable struct {
	rules map[string][]string // chain → rule specs (the part after "-A CHAIN ")
	order []string            // user chains in creation order
}

type fakeSet struct {
	typ, family       string
	hashSize, maxElem int
	members           []string
}

var fakeBuiltins = []string{"INPUT", "FORWARD", "OUTPUT"}

func newFakeKernel(t *testing.T) *fakeKernel {
	k := &fakeKernel{t: t, sets: map[string]*fakeSet{}}
	for fi := range k.tables {
		k.tables[fi] = &fakeTable{rules: map[string][]string{}}
		for _, c := range fakeBuiltins {
			k.tables[fi].rules[c] = nil
		}
	}
	return k
}

// newFakeBackend returns a backend in ModeNFT that runs its tools on k.
func newFakeBackend(k *fakeKernel, budget int) *Backend {
	if budget == 0 {
		budget = DefaultMergeBudget
	}
	return &Backend{mode: ModeNFT, tools: toolsFor(ModeNFT), log: slog.New(slog.NewTextHandler(io.Discard, nil)), budget: budget, run: k.run}
}

func (k *fakeKernel) run(name string, args []string, input string) (string, error) {
	k.commands = append(k.commands, strings.TrimSpace(name+" "+strings.Join(args, " ")+"\n"+input))
	refuse := 0
	if k.failAt != nil {
		refuse = k.failAt(name, args, input)
	}
	if refuse > 0 && name != "ipset" {
		line, _ := nthLine(input, refuse)
		return "", fakeErr(name, fmt.Sprintf("%s: line %d failed (injected)", name, refuse), refuse, line)
	}
	fi := 0
	if strings.HasPrefix(name, "ip6tables") {
		fi = 1
	}
	switch {
	case name == "ipset":
		return k.ipset(args, input, refuse)
	case strings.HasSuffix(name, "-restore"):
		return "", k.restore(name, fi, input)
	case strings.HasSuffix(name, "-save"):
		return k.save(fi), nil
	case strings.HasPrefix(name, "iptables-") || strings.HasPrefix(name, "ip6tables-"):
		return k.list(name, fi, args)
	}
	k.t.Fatalf("fake kernel: unknown tool %s", name)
	return "", nil
}

func fakeErr(cmd, msg string, line int, text string) error {
	return &ToolError{Command: cmd, Output: msg, Line: line, Text: text, Err: errors.New("exit status 1")}
}

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{rules: make(map[string][]string, len(t.rules)), order: slices.Clone(t.order)}
	for k, v := range t.rules {
		c.rules[k] = slices.Clone(v)
	}
	return c
}

// restore runs an iptables-restore --noflush payload: all or nothing.
func (k *fakeKernel) restore(name string, fi int, input string) error {
	t := k.tables[fi].clone()
	lines := strings.Split(strings.TrimRight(input, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		bad := func(msg string) error {
			return fakeErr(name+" -w --noflush", fmt.Sprintf("%s: line %d failed: %s", name, n, msg), n, line)
		}
		switch {
		case line == "*filter", line == "":
		case strings.HasPrefix(line, ":"):
			chain, _, _ := strings.Cut(line[1:], " ")
			if slices.Contains(fakeBuiltins, chain) {
				continue
			}
			if _, ok := t.rules[chain]; !ok {
				t.order = append(t.order, chain)
			}
			t.rules[chain] = []string{}
		case strings.HasPrefix(line, "-A "), strings.HasPrefix(line, "-D "), strings.HasPrefix(line, "-I "):
			op, rest, _ := strings.Cut(line, " ")
			chain, spec, _ := strings.Cut(rest, " ")
			rules, ok := t.rules[chain]
			if !ok {
				return bad("no chain " + chain)
			}
			switch op {
			case "-A":
				t.rules[chain] = append(rules, spec)
			case "-I":
				pos, spec2, _ := strings.Cut(spec, " ")
				p, err := strconv.Atoi(pos)
				if err != nil || p < 1 || p > len(rules)+1 {
					return bad("bad position " + pos)
				}
				t.rules[chain] = slices.Insert(rules, p-1, spec2)
			case "-D":
				j := slices.Index(rules, spec)
				if j < 0 {
					return bad("no such rule in " + chain)
				}
				t.rules[chain] = slices.Delete(rules, j, j+1)
			}
		case strings.HasPrefix(line, "-X "):
			chain := line[3:]
			if rules, ok := t.rules[chain]; !ok || slices.Contains(fakeBuiltins, chain) || len(rules) > 0 {
				return bad("cannot delete chain " + chain)
			}
			for c, rules := range t.rules {
				for _, r := range rules {
					if target(r) == chain {
						return bad(fmt.Sprintf("CHAIN_DEL: chain %s in use by %s", chain, c))
					}
				}
			}
			delete(t.rules, chain)
			t.order = slices.DeleteFunc(t.order, func(c string) bool { return c == chain })
		case line == "COMMIT":
			for c, rules := range t.rules {
				for _, r := range rules {
					tg := target(r)
					if _, ok := t.rules[tg]; !ok && !slices.Contains([]string{"ACCEPT", "DROP", "RETURN", "MARK", "NFLOG"}, tg) {
						return bad(fmt.Sprintf("chain %s: rule %q jumps to missing %s", c, r, tg))
					}
					for _, s := range setsOf(r) {
						if k.sets[s] == nil {
							return bad(fmt.Sprintf("Set %s doesn't exist", s))
						}
					}
				}
			}
			k.tables[fi] = t
			if k.observe != nil {
				k.observe(fmt.Sprintf("%s:\n%s", name, input))
			}
		default:
			return bad("cannot parse")
		}
	}
	return nil
}

func target(spec string) string {
	f, err := splitRule(spec)
	if err != nil {
		panic(err)
	}
	return ruleTarget(f)
}

func setsOf(spec string) []string {
	f, _ := splitRule(spec)
	var out []string
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "--match-set" {
			out = append(out, f[i+1])
		}
	}
	return out
}

func (k *fakeKernel) save(fi int) string {
	t := k.tables[fi]
	var b strings.Builder
	b.WriteString("# Generated by the fake kernel\n*filter\n")
	for _, c := range fakeBuiltins {
		fmt.Fprintf(&b, ":%s ACCEPT [0:0]\n", c)
	}
	for _, c := range t.order {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range append(slices.Clone(fakeBuiltins), t.order...) {
		for _, r := range t.rules[c] {
			fmt.Fprintf(&b, "-A %s %s\n", c, r)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// list answers iptables -w -S CHAIN [n].
func (k *fakeKernel) list(name string, fi int, args []string) (string, error) {
	if len(args) < 3 || args[0] != "-w" || args[1] != "-S" {
		return "", fakeErr(name, fmt.Sprintf("the fake kernel does not know %q", args), 0, "")
	}
	chain := args[2]
	rules, ok := k.tables[fi].rules[chain]
	if !ok {
		return "", fakeErr(name, "No chain/target/match by that name.", 0, "")
	}
	if len(args) == 4 {
		n, _ := strconv.Atoi(args[3])
		if n > len(rules) {
			return "", nil
		}
		return "-A " + chain + " " + rules[n-1] + "\n", nil
	}
	var b strings.Builder
	if slices.Contains(fakeBuiltins, chain) {
		fmt.Fprintf(&b, "-P %s ACCEPT\n", chain)
	} else {
		fmt.Fprintf(&b, "-N %s\n", chain)
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "-A %s %s\n", chain, r)
	}
	return b.String(), nil
}

// inUse reports whether a rule of either family names the set.
func (k *fakeKernel) inUse(set string) bool {
	for _, t := range k.tables {
		for _, rules := range t.rules {
			for _, r := range rules {
				if slices.Contains(setsOf(r), set) {
					return true
				}
			}
		}
	}
	return false
}

func (k *fakeKernel) ipset(args []string, input string, refuse int) (string, error) {
	exist := len(args) > 0 && args[0] == "-exist"
	if exist {
		args = args[1:]
	}
	switch strings.Join(args, " ") {
	case "list -n":
		names := slices.Sorted(mapKeys(k.sets))
		return strings.Join(names, "\n") + "\n", nil
	case "list -t":
		var b strings.Builder
		for _, n := range slices.Sorted(mapKeys(k.sets)) {
			s := k.sets[n]
			refs := 0
			if k.inUse(n) {
				refs = 1
			}
			fmt.Fprintf(&b, "Name: %s\nType: %s\nRevision: 1\nHeader: family %s hashsize %d maxelem %d\nSize in memory: 100\nReferences: %d\nNumber of entries: %d\n",
				n, s.typ, s.family, s.hashSize, s.maxElem, refs, len(s.members))
		}
		return b.String(), nil
	case "save":
		var b strings.Builder
		for _, n := range slices.Sorted(mapKeys(k.sets)) {
			s := k.sets[n]
			fmt.Fprintf(&b, "create %s %s family %s hashsize %d maxelem %d bucketsize 12 initval 0x1\n", n, s.typ, s.family, s.hashSize, s.maxElem)
			for _, m := range s.members {
				fmt.Fprintf(&b, "add %s %s\n", n, m)
			}
		}
		return b.String(), nil
	case "restore":
	default:
		k.t.Fatalf("fake kernel: ipset %q", args)
	}
	lines := strings.Split(strings.TrimRight(input, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		bad := func(msg string) error {
			return fakeErr("ipset restore", fmt.Sprintf("ipset v7.17: Error in line %d: %s", n, msg), n, line)
		}
		if n == refuse {
			return "", bad("refused (injected)")
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return "", bad("cannot parse")
		}
		s := k.sets[f[1]]
		if f[0] != "create" && s == nil {
			return "", bad("The set with the given name does not exist")
		}
		visible := false
		switch f[0] {
		case "create":
			if s != nil {
				if exist {
					continue
				}
				return "", bad("Set cannot be created: set with the same name already exists")
			}
			if k.maxSets > 0 && len(k.sets) >= k.maxSets {
				return "", bad("Kernel error received: " + setTableFullMsg + ", cannot create more.")
			}
			ns := &fakeSet{typ: f[2], family: "inet"}
			for j := 3; j+1 < len(f); j += 2 {
				switch f[j] {
				case "family":
					ns.family = f[j+1]
				case "hashsize":
					ns.hashSize, _ = strconv.Atoi(f[j+1])
				case "maxelem":
					ns.maxElem, _ = strconv.Atoi(f[j+1])
				}
			}
			k.sets[f[1]] = ns
		case "add":
			if slices.Contains(s.members, f[2]) {
				if exist {
					continue
				}
				return "", bad("Element cannot be added to the set: it's already added")
			}
			if len(s.members) >= s.maxElem {
				return "", bad("Hash is full, cannot add more elements")
			}
			s.members = append(s.members, f[2])
			visible = true
		case "del":
			j := slices.Index(s.members, f[2])
			if j < 0 {
				if exist {
					continue
				}
				return "", bad("Element cannot be deleted from the set: it's not added")
			}
			s.members = slices.Delete(s.members, j, j+1)
			visible = true
		case "flush":
			s.members = nil
			visible = true
		case "swap":
			o := k.sets[f[2]]
			if o == nil {
				return "", bad("The set with the given name does not exist")
			}
			if o.typ != s.typ || o.family != s.family {
				return "", bad("The sets cannot be swapped: their type does not match")
			}
			k.sets[f[1]], k.sets[f[2]] = o, s
			visible = k.inUse(f[1]) || k.inUse(f[2])
		case "destroy":
			if k.inUse(f[1]) {
				return "", bad("Set cannot be destroyed: it is in use by a kernel component")
			}
			delete(k.sets, f[1])
		default:
			return "", bad("cannot parse")
		}
		if visible && (f[0] == "swap" || k.inUse(f[1])) && k.observe != nil {
			k.observe("ipset: " + line)
		}
	}
	return "", nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// state returns what the fake holds as the backend's state type: weft's
// chains, every rule of FORWARD (foreign ones too) as hooks, and all sets.
func (k *fakeKernel) state() *state {
	st := emptyState()
	for fi, t := range k.tables {
		for c, rules := range t.rules {
			if c == "FORWARD" {
				st.tables[fi].hooks[c] = slices.Clone(rules)
				continue
			}
			if !ownedChain(c) {
				continue
			}
			lines := make([]string, 0, len(rules))
			for _, r := range rules {
				lines = append(lines, "-A "+c+" "+r)
			}
			st.tables[fi].chains[c] = lines
		}
	}
	for n, s := range k.sets {
		fam := famOf(s.family)
		st.sets[n] = &ipset{Name: n, Type: s.typ, Family: fam, Members: slices.Clone(s.members), MaxElem: s.maxElem, HashSize: s.hashSize}
	}
	return st
}

// sameAs reports how the fake's weft chains and sets differ from st ("" if
// they do not): the same chains with the same rules, the hook first in
// FORWARD, the same sets with the same members.
func (k *fakeKernel) sameAs(st *state) string {
	var diffs []string
	got := k.state()
	for fi := range families {
		want := st.tables[fi]
		for c, rules := range want.chains {
			if !slices.Equal(got.tables[fi].chains[c], rules) {
				diffs = append(diffs, fmt.Sprintf("IPv%d chain %s: got %q, want %q", families[fi], c, got.tables[fi].chains[c], rules))
			}
		}
		for c := range got.tables[fi].chains {
			if _, ok := want.chains[c]; !ok {
				diffs = append(diffs, fmt.Sprintf("IPv%d chain %s left behind", families[fi], c))
			}
		}
		if fwd := got.tables[fi].hooks["FORWARD"]; len(fwd) == 0 || fwd[0] != hookRuleArg {
			diffs = append(diffs, fmt.Sprintf("IPv%d FORWARD does not start with weft's jump: %q", families[fi], fwd))
		}
	}
	for n, s := range st.sets {
		g := got.sets[n]
		if g == nil {
			diffs = append(diffs, "set "+n+" missing")
			continue
		}
		a, b := slices.Clone(g.Members), slices.Clone(s.Members)
		sort.Strings(a)
		sort.Strings(b)
		if !slices.Equal(a, b) || g.Type != s.Type {
			diffs = append(diffs, fmt.Sprintf("set %s: got %s %q, want %s %q", n, g.Type, a, s.Type, b))
		}
	}
	for n := range got.sets {
		if _, ok := st.sets[n]; !ok && ownedSet(n) {
			diffs = append(diffs, "set "+n+" left behind")
		}
	}
	return strings.Join(diffs, "\n")
}

func famOf(name string) ir.Family {
	if name == "inet6" {
		return ir.IPv6
	}
	return ir.IPv4
}

// dump is everything the fake holds, for comparing before and after.
func (k *fakeKernel) dump() string {
	var b strings.Builder
	for fi := range k.tables {
		b.WriteString(k.save(fi))
	}
	for _, n := range slices.Sorted(mapKeys(k.sets)) {
		s := k.sets[n]
		m := slices.Clone(s.members)
		sort.Strings(m)
		fmt.Fprintf(&b, "set %s %s %s: %s\n", n, s.typ, s.family, strings.Join(m, " "))
	}
	return b.String()
}
