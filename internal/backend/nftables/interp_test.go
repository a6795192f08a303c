package nftables

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ipproto"
)

// This file is a packet interpreter for the subset of nft syntax the backend
// renders. Tests load it from a dump of knftables' fake (re-parsed with
// ParseDump, so what is traced is exactly the text nft would be given) and
// compare its verdicts with ir.Tracer and policy.Evaluator. It is strict: a
// construct it does not know is an error, never a silent match.

// nftPacket is the first packet of a connection at a hook.
type nftPacket struct {
	src, dst    netip.Addr
	proto       uint8
	port        uint16
	established bool
	// notSYN marks a TCP packet that is not a connection's first (a
	// mid-stream packet no conntrack entry knows).
	notSYN bool
	// icmpType is the ICMP type of proto 1 and 58 packets; hopLimit the
	// IPv6 hop limit (TTL). Flows of the differential test are echo
	// requests with hop limit 64.
	icmpType, hopLimit uint8
}

// nftResult is what the interpreted ruleset did with a packet.
type nftResult struct {
	accepted bool
	// base is the base chain and chain the chain of the rule that dropped
	// the packet; comment is that rule's comment.
	base, chain, comment string
	path                 []string
	// logged holds the prefixes of the log statements the packet met.
	logged []string
}

type nftInterp struct {
	hooks  map[string][]*nftChain // by hook, in priority order
	chains map[string]*nftChain
	sets   map[string]*nftSet
	maps   map[string]map[netip.Addr]nftVerdict
	// spent counts, per dynamic set and source address, the packets its
	// limit let through. Interpreted packets take no time, so a source's
	// budget is its burst and never refills.
	spent map[string]uint64
}

type nftChain struct {
	name, hook string
	prio       int
	rules      []*nftRule
}

type nftVerdict struct {
	kind   string // accept, drop, return, jump, goto
	target string
}

type nftRule struct {
	text, comment string
	conds         []func(*nftPacket) (bool, error)
	vmap          string // "" or the map a vmap statement looks up
	vmapDst       bool
	verdict       nftVerdict
	// log is the prefix of a log statement ("" for none); a rule with one
	// may have no verdict, and then the packet goes on.
	log string
}

type nftSet struct {
	family    string // ip or ip6
	dynamic   bool   // filled by the packet path (update @set), never listed
	pairs     bool   // addr . addr
	concat    bool
	interval  bool
	addrs     map[netip.Addr]bool
	prefixes  []netip.Prefix
	endpoints map[string]bool // "addr proto port"
	boxes     []nftBox        // concat with flags interval
}

// nftBox is an element of a concatenated interval set: prefix . proto . ports.
type nftBox struct {
	net    netip.Prefix
	proto  uint8
	lo, hi uint16
}

// lookupBox is `addr . meta l4proto . th dport @set` on a concatenated
// interval set. th dport reads bytes that are no port on a protocol without
// ports; an element with such a protocol must therefore allow every "port",
// and one that does not is an error.
func (s *nftSet) lookupBox(a netip.Addr, p *nftPacket) (bool, error) {
	for _, b := range s.boxes {
		if b.proto != p.proto || !b.net.Contains(a) {
			continue
		}
		if !ipproto.HasPorts(p.proto) {
			if b.lo != 0 || b.hi != 65535 {
				return false, fmt.Errorf("element %s . %d . %d-%d: a port range on protocol %d, which has no ports", b.net, b.proto, b.lo, b.hi, b.proto)
			}
			return true, nil
		}
		if p.port >= b.lo && p.port <= b.hi {
			return true, nil
		}
	}
	return false, nil
}

// logPrefixRE finds the quoted prefix of a log statement.
var logPrefixRE = regexp.MustCompile(`log prefix "([^"]*)"`)

// parseDump loads a dump of table inet weft (from knftables.Fake.Dump).
func parseDump(dump string) (*nftInterp, error) {
	fake := knftables.NewFake(knftables.InetFamily, tableName)
	// The fake's parser takes no double quotes inside a rule (only around
	// its comment), so log prefixes travel as $prefix<n> tokens.
	var prefixes []string
	dump = logPrefixRE.ReplaceAllStringFunc(dump, func(m string) string {
		prefixes = append(prefixes, logPrefixRE.FindStringSubmatch(m)[1])
		return "log prefix $prefix" + strconv.Itoa(len(prefixes)-1)
	})
	if err := fake.ParseDump(dump); err != nil {
		return nil, fmt.Errorf("ParseDump: %w", err)
	}
	t := fake.Table
	if t == nil {
		return nil, fmt.Errorf("dump holds no table inet %s", tableName)
	}
	in := &nftInterp{hooks: map[string][]*nftChain{}, chains: map[string]*nftChain{}, sets: map[string]*nftSet{}, maps: map[string]map[netip.Addr]nftVerdict{}, spent: map[string]uint64{}}
	for name, s := range t.Sets {
		is, err := parseSet(s)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
		in.sets[name] = is
	}
	for name, m := range t.Maps {
		if m.Type != "ipv4_addr : verdict" && m.Type != "ipv6_addr : verdict" {
			return nil, fmt.Errorf("map %s: unsupported type %q", name, m.Type)
		}
		elems := map[netip.Addr]nftVerdict{}
		for _, e := range m.Elements {
			if len(e.Key) != 1 || len(e.Value) != 1 {
				return nil, fmt.Errorf("map %s: element %v : %v is not addr : verdict", name, e.Key, e.Value)
			}
			a, err := netip.ParseAddr(e.Key[0])
			if err != nil {
				return nil, fmt.Errorf("map %s: %w", name, err)
			}
			if a.Is4() != (m.Type == "ipv4_addr : verdict") {
				return nil, fmt.Errorf("map %s: key %s of the wrong family", name, a)
			}
			v, rest, err := parseVerdict(strings.Fields(e.Value[0]))
			if err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("map %s: value %q: bad verdict", name, e.Value[0])
			}
			if _, dup := elems[a]; dup {
				return nil, fmt.Errorf("map %s: key %s twice", name, a)
			}
			elems[a] = v
		}
		in.maps[name] = elems
	}
	for name, c := range t.Chains {
		ic := &nftChain{name: name}
		if c.Hook != nil {
			ic.hook = string(*c.Hook)
			p, err := knftables.ParsePriority(knftables.InetFamily, string(*c.Priority))
			if err != nil {
				return nil, fmt.Errorf("chain %s: %w", name, err)
			}
			ic.prio = p
			if c.Policy != nil && *c.Policy != knftables.AcceptPolicy {
				return nil, fmt.Errorf("chain %s: policy %s (the interpreter knows accept only)", name, *c.Policy)
			}
			in.hooks[ic.hook] = append(in.hooks[ic.hook], ic)
		}
		for _, r := range c.Rules {
			ir, err := in.parseRule(r.Rule)
			if err != nil {
				return nil, fmt.Errorf("chain %s: rule %q: %w", name, r.Rule, err)
			}
			if p, ok := strings.CutPrefix(ir.log, "$prefix"); ok {
				n, err := strconv.Atoi(p)
				if err != nil || n >= len(prefixes) {
					return nil, fmt.Errorf("chain %s: rule %q: bad log prefix", name, r.Rule)
				}
				ir.log = prefixes[n]
			}
			if r.Comment != nil {
				ir.comment = *r.Comment
			}
			ic.rules = append(ic.rules, ir)
		}
		in.chains[name] = ic
	}
	for _, cs := range in.hooks {
		slices.SortFunc(cs, func(a, b *nftChain) int { return a.prio - b.prio })
	}
	// Every jump target must exist, as nft would insist.
	for _, c := range in.chains {
		for _, r := range c.rules {
			if (r.verdict.kind == "jump" || r.verdict.kind == "goto") && in.chains[r.verdict.target] == nil {
				return nil, fmt.Errorf("chain %s jumps to missing chain %s", c.name, r.verdict.target)
			}
		}
	}
	for name, m := range in.maps {
		for a, v := range m {
			if (v.kind == "jump" || v.kind == "goto") && in.chains[v.target] == nil {
				return nil, fmt.Errorf("map %s: %s jumps to missing chain %s", name, a, v.target)
			}
		}
	}
	return in, nil
}

func parseSet(s *knftables.FakeSet) (*nftSet, error) {
	is := &nftSet{addrs: map[netip.Addr]bool{}, endpoints: map[string]bool{}}
	is.interval = slices.Contains(s.Flags, knftables.IntervalFlag)
	is.dynamic = slices.Contains(s.Flags, knftables.DynamicFlag)
	if is.dynamic {
		// The rate-limit sets: addresses only, with a timeout and a size,
		// that the kernel fills.
		if (s.Type != "ipv4_addr" && s.Type != "ipv6_addr") || is.interval || !slices.Contains(s.Flags, knftables.TimeoutFlag) ||
			s.Timeout == nil || s.Size == nil || len(s.Elements) > 0 {
			return nil, fmt.Errorf("dynamic set of type %q flags %v: want an address set with a timeout and a size, and no elements", s.Type, s.Flags)
		}
	}
	switch s.Type {
	case "ipv4_addr":
		is.family = "ip"
	case "ipv6_addr":
		is.family = "ip6"
	case "ipv4_addr . inet_proto . inet_service":
		is.family, is.concat = "ip", true
	case "ipv6_addr . inet_proto . inet_service":
		is.family, is.concat = "ip6", true
	case "ipv4_addr . ipv4_addr":
		is.family, is.pairs = "ip", true
	case "ipv6_addr . ipv6_addr":
		is.family, is.pairs = "ip6", true
	default:
		return nil, fmt.Errorf("unsupported type %q", s.Type)
	}
	for _, e := range s.Elements {
		switch {
		case is.pairs:
			if len(e.Key) != 2 {
				return nil, fmt.Errorf("element %v is not addr . addr", e.Key)
			}
			a, err1 := netip.ParseAddr(e.Key[0])
			b, err2 := netip.ParseAddr(e.Key[1])
			if err1 != nil || err2 != nil || a.Is4() != (is.family == "ip") || b.Is4() != a.Is4() {
				return nil, fmt.Errorf("element %v: bad addresses", e.Key)
			}
			is.endpoints[a.String()+" "+b.String()] = true
		case is.concat && is.interval:
			if len(e.Key) != 3 {
				return nil, fmt.Errorf("element %v is not net . proto . ports", e.Key)
			}
			p, err := netip.ParsePrefix(e.Key[0])
			if err != nil {
				a, err2 := netip.ParseAddr(e.Key[0])
				if err2 != nil {
					return nil, fmt.Errorf("element %v: %w", e.Key, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if p.Addr().Is4() != (is.family == "ip") || p != p.Masked() {
				return nil, fmt.Errorf("element %v: wrong family or host bits set", e.Key)
			}
			proto, err := parseProto(e.Key[1])
			if err != nil {
				return nil, err
			}
			lo, hi, err := parsePortRange(e.Key[2])
			if err != nil {
				return nil, fmt.Errorf("element %v: %w", e.Key, err)
			}
			b := nftBox{net: p, proto: proto, lo: lo, hi: hi}
			for _, o := range is.boxes {
				// The kernel refuses partial overlaps; weft renders none.
				if o.proto == b.proto && o.net.Overlaps(b.net) && o.lo <= b.hi && b.lo <= o.hi {
					return nil, fmt.Errorf("elements %v and %v overlap", o, b)
				}
			}
			is.boxes = append(is.boxes, b)
		case is.concat:
			if len(e.Key) != 3 {
				return nil, fmt.Errorf("element %v is not addr . proto . port", e.Key)
			}
			a, err := netip.ParseAddr(e.Key[0])
			if err != nil || (a.Is4() != (is.family == "ip")) {
				return nil, fmt.Errorf("element %v: bad address", e.Key)
			}
			proto, err := parseProto(e.Key[1])
			if err != nil {
				return nil, err
			}
			port, err := strconv.ParseUint(e.Key[2], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("element %v: bad port", e.Key)
			}
			is.endpoints[fmt.Sprintf("%s %d %d", a, proto, port)] = true
		case is.interval:
			p, err := netip.ParsePrefix(e.Key[0])
			if err != nil {
				a, err2 := netip.ParseAddr(e.Key[0])
				if err2 != nil {
					return nil, fmt.Errorf("element %v: %w", e.Key, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if p.Addr().Is4() != (is.family == "ip") || p != p.Masked() {
				return nil, fmt.Errorf("element %v: wrong family or host bits set", e.Key)
			}
			for _, q := range is.prefixes {
				if q.Overlaps(p) {
					return nil, fmt.Errorf("elements %s and %s overlap (the kernel refuses that)", q, p)
				}
			}
			is.prefixes = append(is.prefixes, p)
		default:
			if len(e.Key) != 1 || strings.Contains(e.Key[0], "/") {
				return nil, fmt.Errorf("element %v is no single address", e.Key)
			}
			a, err := netip.ParseAddr(e.Key[0])
			if err != nil || a.Is4() != (is.family == "ip") {
				return nil, fmt.Errorf("element %v: bad address", e.Key)
			}
			is.addrs[a] = true
		}
	}
	return is, nil
}

var icmpv6Types = map[string]uint8{
	"echo-request": 128, "nd-router-solicit": 133, "nd-router-advert": 134,
	"nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137,
}

func parseProto(s string) (uint8, error) {
	switch s {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "sctp":
		return 132, nil
	case "icmp":
		return 1, nil
	case "ipv6-icmp":
		return 58, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q", s)
	}
	return uint8(n), nil
}

func parseVerdict(tok []string) (nftVerdict, []string, error) {
	if len(tok) == 0 {
		return nftVerdict{}, nil, fmt.Errorf("no verdict")
	}
	switch tok[0] {
	case "accept", "drop", "return":
		return nftVerdict{kind: tok[0]}, tok[1:], nil
	case "jump", "goto":
		if len(tok) < 2 {
			return nftVerdict{}, nil, fmt.Errorf("%s without a chain", tok[0])
		}
		return nftVerdict{kind: tok[0], target: tok[1]}, tok[2:], nil
	}
	return nftVerdict{}, nil, fmt.Errorf("unknown statement %q", tok[0])
}

// parseRule reads one rule: matches, then one verdict statement.
func (in *nftInterp) parseRule(text string) (*nftRule, error) {
	r := &nftRule{text: text}
	tok := strings.Fields(text)
	familyCond := func(fam string) func(*nftPacket) (bool, error) {
		return func(p *nftPacket) (bool, error) { return p.dst.Is4() == (fam == "ip" || fam == "ipv4"), nil }
	}
	for len(tok) > 0 {
		switch {
		case len(tok) >= 13 && tok[0] == "update" && tok[2] == "{" && tok[4] == "saddr" && strings.Join(tok[5:7], " ") == "limit rate" &&
			tok[8] == "burst" && tok[10] == "packets" && tok[11] == "}":
			// update @set { ip saddr limit rate R/second burst B packets }:
			// the source's element in set, and its limit, which stops the
			// rule when spent.
			name := strings.TrimPrefix(tok[1], "@")
			s := in.sets[name]
			if s == nil || !strings.HasPrefix(tok[1], "@") || !s.dynamic || s.family != tok[3] {
				return nil, fmt.Errorf("update of %s, which is no dynamic %s address set", tok[1], tok[3])
			}
			rate, ok := strings.CutSuffix(tok[7], "/second")
			if _, err := strconv.ParseUint(rate, 10, 32); !ok || err != nil {
				return nil, fmt.Errorf("bad rate %q", tok[7])
			}
			burst, err := strconv.ParseUint(tok[9], 10, 32)
			if err != nil || burst == 0 {
				return nil, fmt.Errorf("bad burst %q", tok[9])
			}
			r.conds = append(r.conds, familyCond(tok[3]), func(p *nftPacket) (bool, error) {
				key := name + " " + p.src.String()
				if in.spent[key] >= burst {
					return false, nil
				}
				in.spent[key]++
				return true, nil
			})
			tok = tok[12:]
		case len(tok) >= 3 && tok[0] == "log" && tok[1] == "prefix":
			r.log = tok[2]
			tok = tok[3:]
			for len(tok) >= 2 && (tok[0] == "group" || tok[0] == "snaplen" || tok[0] == "queue-threshold") {
				if _, err := strconv.ParseUint(tok[1], 10, 32); err != nil {
					return nil, fmt.Errorf("log %s %q", tok[0], tok[1])
				}
				tok = tok[2:]
			}
			if len(tok) == 0 {
				return r, nil // no verdict: the packet goes on
			}
		case len(tok) >= 3 && tok[0] == "ct" && tok[1] == "state":
			states := strings.Split(tok[2], ",")
			for _, s := range states {
				if s != "established" && s != "related" && s != "new" && s != "invalid" {
					return nil, fmt.Errorf("unknown ct state %q", s)
				}
			}
			r.conds = append(r.conds, func(p *nftPacket) (bool, error) {
				if p.established {
					return slices.Contains(states, "established"), nil
				}
				return slices.Contains(states, "new"), nil
			})
			tok = tok[3:]
		case len(tok) >= 3 && tok[0] == "icmpv6" && tok[1] == "type" && tok[2] == "{":
			end := slices.Index(tok, "}")
			if end < 0 {
				return nil, fmt.Errorf("unterminated set")
			}
			var types []uint8
			for _, name := range tok[3:end] {
				ty, ok := icmpv6Types[strings.TrimSuffix(name, ",")]
				if !ok {
					return nil, fmt.Errorf("unknown icmpv6 type %q", name)
				}
				types = append(types, ty)
			}
			r.conds = append(r.conds, familyCond("ip6"), func(p *nftPacket) (bool, error) {
				return p.proto == 58 && slices.Contains(types, p.icmpType), nil
			})
			tok = tok[end+1:]
		case strings.HasPrefix(strings.Join(tok, " "), "tcp flags & (fin | syn | rst | ack) != syn"):
			// after "ct state new", which the packets reaching it are
			r.conds = append(r.conds, func(p *nftPacket) (bool, error) { return p.proto == 6 && p.notSYN, nil })
			tok = tok[12:]
		case len(tok) >= 3 && tok[0] == "ip6" && tok[1] == "hoplimit":
			n, err := strconv.ParseUint(tok[2], 10, 8)
			if err != nil {
				return nil, fmt.Errorf("bad hop limit %q", tok[2])
			}
			r.conds = append(r.conds, familyCond("ip6"), func(p *nftPacket) (bool, error) { return p.hopLimit == uint8(n), nil })
			tok = tok[3:]
		case len(tok) >= 3 && tok[0] == "meta" && tok[1] == "nfproto":
			if tok[2] != "ipv4" && tok[2] != "ipv6" {
				return nil, fmt.Errorf("unknown nfproto %q", tok[2])
			}
			r.conds = append(r.conds, familyCond(tok[2]))
			tok = tok[3:]
		case len(tok) >= 3 && tok[0] == "meta" && tok[1] == "l4proto":
			proto, err := parseProto(tok[2])
			if err != nil {
				return nil, err
			}
			r.conds = append(r.conds, func(p *nftPacket) (bool, error) { return p.proto == proto, nil })
			tok = tok[3:]
		case len(tok) >= 3 && tok[0] == "th" && tok[1] == "dport":
			lo, hi, err := parsePortRange(tok[2])
			if err != nil {
				return nil, err
			}
			r.conds = append(r.conds, func(p *nftPacket) (bool, error) {
				if !ipproto.HasPorts(p.proto) {
					return false, fmt.Errorf("th dport read on protocol %d, which has no ports (a rule lacks its l4proto match)", p.proto)
				}
				return p.port >= lo && p.port <= hi, nil
			})
			tok = tok[3:]
		case len(tok) >= 9 && (tok[0] == "ip" || tok[0] == "ip6") && (tok[1] == "daddr" || tok[1] == "saddr") && strings.Join(tok[2:8], " ") == ". meta l4proto . th dport":
			fam, name := tok[0], strings.TrimPrefix(tok[8], "@")
			s := in.sets[name]
			if s == nil || !strings.HasPrefix(tok[8], "@") {
				return nil, fmt.Errorf("lookup of unknown set %q", tok[8])
			}
			if s.concat && s.interval && s.family == fam {
				dst := tok[1] == "daddr"
				r.conds = append(r.conds, familyCond(fam), func(p *nftPacket) (bool, error) {
					a := p.src
					if dst {
						a = p.dst
					}
					return s.lookupBox(a, p)
				})
				tok = tok[9:]
				continue
			}
			if !s.concat || s.interval || s.family != fam || tok[1] != "daddr" {
				return nil, fmt.Errorf("set %s does not hold %s addr . proto . port", name, fam)
			}
			r.conds = append(r.conds, familyCond(fam), func(p *nftPacket) (bool, error) {
				if !ipproto.HasPorts(p.proto) {
					// th dport reads bytes that are no port; no element
					// has a port-less protocol, so this never matches.
					return false, nil
				}
				return s.endpoints[fmt.Sprintf("%s %d %d", p.dst, p.proto, p.port)], nil
			})
			tok = tok[9:]
		case len(tok) >= 6 && (tok[0] == "ip" || tok[0] == "ip6") && tok[1] == "saddr" && tok[2] == "." && tok[3] == tok[0] && tok[4] == "daddr":
			fam, name := tok[0], strings.TrimPrefix(tok[5], "@")
			s := in.sets[name]
			if s == nil || !strings.HasPrefix(tok[5], "@") {
				return nil, fmt.Errorf("lookup of unknown set %q", tok[5])
			}
			if !s.pairs || s.family != fam {
				return nil, fmt.Errorf("set %s does not hold %s addr . addr", name, fam)
			}
			r.conds = append(r.conds, familyCond(fam), func(p *nftPacket) (bool, error) {
				return s.endpoints[p.src.String()+" "+p.dst.String()], nil
			})
			tok = tok[6:]
		case len(tok) >= 4 && (tok[0] == "ip" || tok[0] == "ip6") && (tok[1] == "saddr" || tok[1] == "daddr") && tok[2] == "vmap":
			fam, name := tok[0], strings.TrimPrefix(tok[3], "@")
			if in.maps[name] == nil && !strings.HasPrefix(tok[3], "@") {
				return nil, fmt.Errorf("vmap of unknown map %q", tok[3])
			}
			if _, ok := in.maps[name]; !ok {
				return nil, fmt.Errorf("vmap of unknown map %q", name)
			}
			if len(tok) != 4 {
				return nil, fmt.Errorf("statements after a vmap")
			}
			r.conds = append(r.conds, familyCond(fam))
			r.vmap, r.vmapDst = name, tok[1] == "daddr"
			return r, nil
		case len(tok) >= 3 && (tok[0] == "ip" || tok[0] == "ip6") && (tok[1] == "saddr" || tok[1] == "daddr"):
			fam, dst := tok[0], tok[1] == "daddr"
			name := strings.TrimPrefix(tok[2], "@")
			s := in.sets[name]
			if s == nil || !strings.HasPrefix(tok[2], "@") {
				return nil, fmt.Errorf("lookup of unknown set %q", tok[2])
			}
			if s.concat || s.pairs || s.family != fam {
				return nil, fmt.Errorf("set %s is no %s address set", name, fam)
			}
			r.conds = append(r.conds, familyCond(fam), func(p *nftPacket) (bool, error) {
				a := p.src
				if dst {
					a = p.dst
				}
				if s.addrs[a] {
					return true, nil
				}
				for _, q := range s.prefixes {
					if q.Contains(a) {
						return true, nil
					}
				}
				return false, nil
			})
			tok = tok[3:]
		default:
			v, rest, err := parseVerdict(tok)
			if err != nil {
				return nil, err
			}
			if len(rest) > 0 {
				return nil, fmt.Errorf("tokens after the verdict: %q", rest)
			}
			r.verdict = v
			return r, nil
		}
	}
	return nil, fmt.Errorf("rule without a verdict")
}

func parsePortRange(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("bad port %q", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return 0, 0, fmt.Errorf("bad port range %q", s)
		}
	}
	return uint16(a), uint16(b), nil
}

// run passes p through the base chains of hook in priority order: a drop in
// any of them drops it, an accept ends only that base chain.
func (in *nftInterp) run(hook string, p nftPacket) (nftResult, error) {
	res := nftResult{accepted: true}
	for _, base := range in.hooks[hook] {
		v, err := in.runChain(base, &p, &res, base.name, 0)
		if err != nil {
			return res, err
		}
		if v == "drop" {
			res.accepted = false
			res.base = base.name
			return res, nil
		}
		// accept, or the end of the chain (policy accept): next base chain.
	}
	return res, nil
}

// runChain returns accept, drop, or return (the chain ended or returned).
func (in *nftInterp) runChain(c *nftChain, p *nftPacket, res *nftResult, base string, depth int) (string, error) {
	if depth > 16 {
		return "", fmt.Errorf("jump depth over 16 at chain %s (a loop?)", c.name)
	}
	res.path = append(res.path, c.name)
	for _, r := range c.rules {
		ok := true
		for _, cond := range r.conds {
			m, err := cond(p)
			if err != nil {
				return "", fmt.Errorf("chain %s rule %q: %w", c.name, r.text, err)
			}
			if !m {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if r.log != "" {
			res.logged = append(res.logged, r.log)
		}
		v := r.verdict
		if r.vmap != "" {
			key := p.src
			if r.vmapDst {
				key = p.dst
			}
			found, hit := in.maps[r.vmap][key]
			if !hit {
				continue
			}
			v = found
		}
		switch v.kind {
		case "accept":
			return "accept", nil
		case "drop":
			res.chain, res.comment = c.name, r.comment
			return "drop", nil
		case "return":
			return "return", nil
		case "jump", "goto":
			out, err := in.runChain(in.chains[v.target], p, res, base, depth+1)
			if err != nil || out != "return" || v.kind == "goto" {
				return out, err
			}
		case "":
			// a log statement alone: go on
		default:
			return "", fmt.Errorf("chain %s: unknown verdict %q", c.name, v.kind)
		}
	}
	return "return", nil
}
