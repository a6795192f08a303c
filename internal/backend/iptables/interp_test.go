package iptables

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// interp runs a packet through rendered filter tables the way netfilter
// does: built-in hook → jumps, gotos and returns, the mark, set lookups. It
// knows exactly the matches and targets the renderer writes and fails on
// anything else, so a rendering change it does not understand cannot pass
// unnoticed. The kernel tests check that the kernel reads the rules the
// same way; this one checks, on many random clusters, that the rules say
// what the ir says.
type interp struct {
	t      *testing.T
	tables [2]map[string][][]string // chain → rules as words
	sets   map[string]map[string]bool
	nets   map[string][]netip.Prefix
	// netPorts holds hash:net,port sets: "proto:port" → peer prefixes.
	netPorts map[string]map[string][]netip.Prefix
	// spent counts, per hashlimit table (family and name) and source, the
	// packets its limit let through. Interpreted packets take no time, so
	// a source's budget is its burst and never refills.
	spent map[string]int
}

func newInterp(t *testing.T, st *state) *interp {
	in := &interp{t: t, sets: map[string]map[string]bool{}, nets: map[string][]netip.Prefix{},
		netPorts: map[string]map[string][]netip.Prefix{}, spent: map[string]int{}}
	for fi, tab := range st.tables {
		in.tables[fi] = map[string][][]string{}
		for chain, rules := range tab.chains {
			in.tables[fi][chain] = [][]string{}
			for _, line := range rules {
				words, err := splitRule(line)
				if err != nil {
					t.Fatalf("rule %q: %v", line, err)
				}
				in.tables[fi][chain] = append(in.tables[fi][chain], words[2:])
			}
		}
		for _, h := range hooks {
			for _, spec := range tab.hooks[h] {
				words, _ := splitRule(spec)
				in.tables[fi][h] = append(in.tables[fi][h], words)
			}
		}
	}
	for name, s := range st.sets {
		in.sets[name] = map[string]bool{}
		if s.Type == "hash:net,port" {
			in.netPorts[name] = map[string][]netip.Prefix{}
		}
		for _, m := range s.Members {
			switch s.Type {
			case "hash:net":
				in.nets[name] = append(in.nets[name], parseNet(t, m))
			case "hash:net,port":
				net, port, ok := strings.Cut(m, ",")
				if !ok || !strings.Contains(port, ":") || strings.Contains(port, "-") {
					t.Fatalf("set %s: member %q is not net,proto:port", name, m)
				}
				in.netPorts[name][port] = append(in.netPorts[name][port], parseNet(t, net))
			case "hash:ip", "hash:ip,port":
				in.sets[name][m] = true
			default:
				t.Fatalf("set %s: type %s unknown to the interpreter", name, s.Type)
			}
		}
	}
	return in
}

type interpResult struct {
	dropped bool
	by      string // the drop chain
	// logged holds the prefixes of the NFLOG rules the packet met.
	logged []string
}

// run sends the first packet of a connection through hook.
func (in *interp) run(hook string, p ir.Packet) interpResult {
	var mark uint32
	var logged []string
	fi := famIndex(ir.FamilyOf(p.Dst))
	var walk func(chain string, depth int) (res interpResult, terminal bool)
	walk = func(chain string, depth int) (interpResult, bool) {
		if depth > 16 {
			in.t.Fatalf("chain %s: jumps nest deeper than 16", chain)
		}
		rules, ok := in.tables[fi][chain]
		if !ok && chain != hook {
			in.t.Fatalf("jump to chain %s, which the table does not hold", chain)
		}
		for _, r := range rules {
			target, kind, matched := in.match(r, p, mark)
			if !matched {
				continue
			}
			switch target {
			case "DROP":
				return interpResult{dropped: true, by: chain}, true
			case "ACCEPT": // a foreign rule in front of weft's jump
				return interpResult{}, true
			case "RETURN":
				return interpResult{}, false
			case "MARK":
				value, mask := xmark(in.t, r)
				mark = mark&^mask ^ value
				continue
			case "NFLOG": // logs and goes on
				logged = append(logged, nflogPrefix(in.t, r))
				continue
			}
			res, terminal := walk(target, depth+1)
			if terminal {
				return res, true
			}
			if kind == "-g" {
				return interpResult{}, false // a goto returns to our caller
			}
		}
		return interpResult{}, false
	}
	res, _ := walk(hook, 0)
	res.logged = logged
	return res
}

// nflogPrefix reads the options of an NFLOG target: its prefix.
func nflogPrefix(t *testing.T, r []string) string {
	i := slices.Index(r, "NFLOG")
	prefix := ""
	for i++; i+1 < len(r); i += 2 {
		switch r[i] {
		case "--nflog-prefix":
			prefix = r[i+1]
		case "--nflog-group", "--nflog-size", "--nflog-threshold":
			if _, err := strconv.ParseUint(r[i+1], 10, 32); err != nil {
				t.Fatalf("rule %q: %s %q", r, r[i], r[i+1])
			}
		default:
			t.Fatalf("rule %q: NFLOG option %s unknown to the interpreter", r, r[i])
		}
	}
	if i != len(r) || prefix == "" {
		t.Fatalf("rule %q: NFLOG without a prefix, or a stray word", r)
	}
	return prefix
}

// match reports whether rule r matches and returns its target and how it
// is reached (-j or -g).
func (in *interp) match(r []string, p ir.Packet, mark uint32) (target, kind string, ok bool) {
	matched := true
	for i := 0; i < len(r); i++ {
		switch r[i] {
		case "-m":
			i++ // module names carry no meaning of their own here
		case "--ctstate":
			i++
			// the first packet of a connection is NEW
			matched = matched && slices.Contains(strings.Split(r[i], ","), "NEW")
		case "--hashlimit-upto", "--hashlimit-mode":
			i++
			if r[i] != "srcip" && !strings.HasSuffix(r[i], "/sec") {
				in.t.Fatalf("rule %q: %s %s unknown to the interpreter", r, r[i-1], r[i])
			}
		case "--hashlimit-burst":
			i++
			burst, err := strconv.Atoi(r[i])
			if err != nil || burst < 1 || i+2 >= len(r) || r[i+1] != "--hashlimit-mode" || r[i+3] != "--hashlimit-name" {
				in.t.Fatalf("rule %q: bad hashlimit", r)
			}
			// the table of the name that follows, keyed by source
			key := fmt.Sprintf("%d %s %s", famIndex(ir.FamilyOf(p.Src)), r[i+4], p.Src)
			if matched {
				if in.spent[key] >= burst {
					matched = false
				} else {
					in.spent[key]++
				}
			}
		case "--hashlimit-name":
			i++
		case "--match-set":
			name, dirs := r[i+1], r[i+2]
			i += 2
			matched = matched && in.inSet(name, dirs, p)
		case "-p":
			i++
			proto := r[i]
			if proto == "ipv6-icmp" {
				proto = "icmpv6"
			}
			matched = matched && protoName(p.Protocol) == proto
		case "--icmpv6-type", "--hl-eq":
			i++
			matched = false // policy flows are connections, never neighbour discovery
		case "--dport":
			i++
			lo, hi, _ := strings.Cut(r[i], ":")
			min, _ := strconv.Atoi(lo)
			max := min
			if hi != "" {
				max, _ = strconv.Atoi(hi)
			}
			matched = matched && int(p.Port) >= min && int(p.Port) <= max
		case "!":
			if r[i+1] == "--tcp-flags" {
				if r[i+2] != "FIN,SYN,RST,ACK" || r[i+3] != "SYN" {
					in.t.Fatalf("rule %q: unknown TCP flags test", r)
				}
				i += 3
				matched = false // the interpreted packets start connections: a bare SYN
				continue
			}
			if r[i+1] != "--mark" {
				in.t.Fatalf("negation of %s", r[i+1])
			}
			value, mask := parseMark(in.t, r[i+2])
			i += 2
			matched = matched && mark&mask != value
		case "--mark":
			value, mask := parseMark(in.t, r[i+1])
			i++
			matched = matched && mark&mask == value
		case "--comment":
			i++
		case "--bytecode":
			i++
			matched = matched && runBPF(in.t, r[i], packetHeader(p))
		case "-j", "-g":
			return r[i+1], r[i], matched
		default:
			in.t.Fatalf("rule %q: the interpreter does not know %s", r, r[i])
		}
	}
	in.t.Fatalf("rule %q has no target", r)
	return "", "", false
}

func (in *interp) inSet(name, dirs string, p ir.Packet) bool {
	addr := func(d string) netip.Addr {
		if d == "src" {
			return p.Src
		}
		return p.Dst
	}
	switch dirs {
	case "src", "dst":
		a := addr(dirs)
		if in.sets[name][a.String()] {
			return true
		}
		for _, n := range in.nets[name] {
			if n.Contains(a) {
				return true
			}
		}
		return false
	case "src,dst", "dst,dst":
		if nets, ok := in.netPorts[name]; ok {
			a := addr(dirs[:3])
			for _, n := range nets[fmt.Sprintf("%s:%d", protoName(p.Protocol), p.Port)] {
				if n.Contains(a) {
					return true
				}
			}
			return false
		}
		if dirs != "dst,dst" {
			in.t.Fatalf("set match %s %s on a set that is not hash:net,port", name, dirs)
		}
		return in.sets[name][fmt.Sprintf("%s,%s:%d", p.Dst, protoName(p.Protocol), p.Port)]
	}
	in.t.Fatalf("set match %s %s", name, dirs)
	return false
}

// parseNet reads a hash:net member: a prefix, or an address alone.
func parseNet(t *testing.T, m string) netip.Prefix {
	if a, err := netip.ParseAddr(m); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	p, err := netip.ParsePrefix(m)
	if err != nil {
		t.Fatalf("hash:net member %q: %v", m, err)
	}
	return p
}

func xmark(t *testing.T, r []string) (value, mask uint32) {
	for i := range r {
		if r[i] == "--set-xmark" {
			return parseMark(t, r[i+1])
		}
	}
	t.Fatalf("MARK rule %q without --set-xmark", r)
	return 0, 0
}

func parseMark(t *testing.T, s string) (value, mask uint32) {
	v, m, _ := strings.Cut(s, "/")
	value64, err1 := strconv.ParseUint(v, 0, 32)
	mask64, err2 := strconv.ParseUint(m, 0, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("mark %q", s)
	}
	return uint32(value64), uint32(mask64)
}

// TestRenderedRulesAgreeWithTracer runs random flows of random clusters
// through the rendered rules and through ir.Tracer: they must agree on every
// verdict and, for drops, on the direction. The merge budget varies by seed
// (the default, and 8 and 40 elements, which send many groups back to
// walking their chains), so both the merged sets and the chain walk are
// checked, also side by side in one table.
func TestRenderedRulesAgreeWithTracer(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	var flows, drops [2]int
	var mergedGroups, walkingGroups, unknownDrops, audits int
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		// ClusterNetworkPolicies (Deny and Pass rules, tier chains) in two
		// of three.
		c := clustergen.Random(rng, clustergen.RandomConfig{ClusterPolicies: seed % 3})
		node := clustergen.NodeName(rng.IntN(2))
		// Every other seed gives the node pod ranges: unknown local
		// addresses are dropped, known ones are in open groups.
		var ranges []netip.Prefix
		if seed%2 == 1 {
			ranges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
		}
		// Some seeds log, some of them accepts too: logging changes no
		// verdict. Those audit too: the node's mode and the namespaces'
		// annotations are drawn at random.
		opts := compile.Options{Node: node, PodRanges: ranges}
		if seed%4 == 3 {
			opts.Log = ir.DefaultLog
			opts.Log.Allowed = seed%8 == 7
			// Interpreted packets never refill a source's budget.
			opts.Log.Burst = 100000
		}
		if seed%4 == 3 {
			opts.Mode = policy.Enforcement(rng.IntN(2))
			clustergen.AnnotateEnforcement(rng, c)
		}
		rs := compile.CompileWith(c.Snapshot, opts)
		budget := []int{DefaultMergeBudget, 8, 40}[seed%3]
		st, err := renderBudget(rs, budget, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, tab := range st.tables {
			for _, g := range rs.Groups {
				body := strings.Join(tab.chains[g.Name], "\n")
				if strings.Contains(body, "--match-set weft-m-") {
					mergedGroups++
				}
				if strings.Contains(body, "-j weft-p-") {
					walkingGroups++
				}
			}
		}
		in, tr := newInterp(t, st), ir.NewTracer(rs)
		for _, f := range clustergen.RandomFlows(rng, c, 200) {
			p := ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: uint8(f.Protocol), Port: f.Port,
				FromHost: c.Snapshot.IsNodeAddress(f.Src, node), ToHost: c.Snapshot.IsNodeAddress(f.Dst, node)}
			want := tr.Trace(p)
			var got interpResult
			// Only FORWARD is hooked: packets from the node (OUTPUT) and to
			// it (INPUT) pass untouched. A pod's packets to itself reach
			// FORWARD when a service sends them back.
			if !p.FromHost && !p.ToHost {
				got = in.run("FORWARD", p)
			}
			fi := famIndex(ir.FamilyOf(p.Dst))
			flows[fi]++
			if got.dropped {
				drops[fi]++
			}
			var loggedAudits, tracedAudits []string
			for _, l := range got.logged {
				if d, ok := strings.CutPrefix(l, "weft audit "); ok {
					loggedAudits = append(loggedAudits, d)
				}
			}
			for _, a := range want.Audits {
				tracedAudits = append(tracedAudits, a.Direction.String())
			}
			audits += len(loggedAudits)
			switch {
			case !slices.Equal(loggedAudits, tracedAudits):
				t.Errorf("seed %d node %s %+v: audits logged %v, traced %v (%+v)", seed, node, p, loggedAudits, tracedAudits, want)
			case got.dropped == want.Accepted:
				t.Errorf("seed %d node %s %+v: rules drop=%v, tracer accepted=%v (%+v)", seed, node, p, got.dropped, want.Accepted, want)
			case got.dropped && want.Unknown:
				unknownDrops++
				if got.by != unknownChain(want.Direction) {
					t.Errorf("seed %d node %s %+v: dropped in %s, tracer says unknown address in %s", seed, node, p, got.by, want.Direction)
				}
			case got.dropped && got.by != dropChain(want.Direction):
				t.Errorf("seed %d node %s %+v: dropped in %s, tracer says %s", seed, node, p, got.by, want.Direction)
			}
		}
	}
	t.Logf("flows IPv4 %d (%d dropped), IPv6 %d (%d dropped), %d dropped as unknown local addresses, %d would-be drops audited; group chains with merged sets %d, walking chains %d",
		flows[0], drops[0], flows[1], drops[1], unknownDrops, audits, mergedGroups, walkingGroups)
	if audits < rounds/2 {
		t.Errorf("only %d would-be drops audited: the test should exercise them", audits)
	}
	if mergedGroups == 0 || walkingGroups == 0 {
		t.Errorf("the random clusters do not exercise both merged (%d) and walking (%d) groups", mergedGroups, walkingGroups)
	}
	if unknownDrops == 0 {
		t.Errorf("no drop of an unknown local address: the test should exercise them")
	}
	if drops[0] == 0 || drops[1] == 0 || drops[0] == flows[0] {
		t.Errorf("the random flows do not exercise both verdicts in both families: %v %v", flows, drops)
	}
}

// packetHeader builds the start of p's IP header: what xt_bpf shows its
// program (only the fields weft's programs read are filled in).
func packetHeader(p ir.Packet) []byte {
	if p.Src.Is4() {
		h := make([]byte, 20)
		h[0], h[9] = 0x45, p.Protocol
		copy(h[12:16], p.Src.AsSlice())
		copy(h[16:20], p.Dst.AsSlice())
		return h
	}
	h := make([]byte, 40)
	h[0], h[6] = 0x60, p.Protocol
	copy(h[8:24], p.Src.AsSlice())
	copy(h[24:40], p.Dst.AsSlice())
	return h
}

// runBPF runs a classic BPF program in xt_bpf's --bytecode syntax, for the
// instructions weft writes (absolute word loads, tax, jeq x, ret k).
func runBPF(t *testing.T, bytecode string, pkt []byte) bool {
	parts := strings.Split(bytecode, ",")
	n, err := strconv.Atoi(parts[0])
	if err != nil || n != len(parts)-1 {
		t.Fatalf("bytecode %q: count %q does not match", bytecode, parts[0])
	}
	type insn struct {
		code   uint16
		jt, jf uint8
		k      uint32
	}
	prog := make([]insn, n)
	for i, p := range parts[1:] {
		var in insn
		if _, err := fmt.Sscanf(p, "%d %d %d %d", &in.code, &in.jt, &in.jf, &in.k); err != nil {
			t.Fatalf("bytecode %q: instruction %q: %v", bytecode, p, err)
		}
		prog[i] = in
	}
	var a, x uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.code {
		case 0x20:
			if int(in.k)+4 > len(pkt) {
				return false // the kernel returns 0 when a load runs off the packet
			}
			a = uint32(pkt[in.k])<<24 | uint32(pkt[in.k+1])<<16 | uint32(pkt[in.k+2])<<8 | uint32(pkt[in.k+3])
		case 0x07:
			x = a
		case 0x1d:
			if a == x {
				pc += int(in.jt)
			} else {
				pc += int(in.jf)
			}
		case 0x06:
			return in.k != 0
		default:
			t.Fatalf("bytecode %q: instruction code %#x unknown to the test", bytecode, in.code)
		}
	}
	t.Fatalf("bytecode %q runs off its end", bytecode)
	return false
}
