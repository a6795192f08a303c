package nftables

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// Names of the objects weft's table always holds. Objects named by the ir all
// start with "weft-", so they never collide with these.
const (
	tableName = "weft"

	chainForwardEgress  = "forward-egress"
	chainForwardIngress = "forward-ingress"

	setSelf4 = "self-ip4"
	setSelf6 = "self-ip6"

	setUnknown4 = "unknown-ip4"
	setUnknown6 = "unknown-ip6"

	mapIngress4 = "ingress-ip4"
	mapIngress6 = "ingress-ip6"
	mapEgress4  = "egress-ip4"
	mapEgress6  = "egress-ip6"

	// Priorities of the base chains: egress before ingress on the forward
	// hook, after conntrack (-200) and DNAT (-100).
	priorityEgress  = knftables.BaseChainPriority("filter+5")
	priorityIngress = knftables.BaseChainPriority("filter+6")

	tableComment = "weft network policy: owned and rewritten by weft, do not edit"

	// maxComment is the kernel's limit on a comment, in bytes.
	maxComment = 128
)

// ruleNeighbourDiscovery lets IPv6 neighbour and router discovery pass every
// base chain. It is IPv6's ARP: without it an isolated pod could not resolve
// its gateway's or (on a bridge with br_netfilter) its neighbours' link
// addresses, and nothing would reach it or leave it, allowed or not. The hop
// limit 255 keeps it to packets from the link itself (RFC 4861).
const ruleNeighbourDiscovery = "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"

// ruleNotTCPStart drops, in a group chain (which sees only packets that no
// conntrack entry knows), TCP packets that start no connection: without it,
// a connection whose entry weft deleted because policy revoked it would be
// picked up again mid-stream (nf_conntrack_tcp_loose) by its next packet in
// whichever direction policy happens to allow as a new connection.
const ruleNotTCPStart = "ct state new tcp flags & (fin | syn | rst | ack) != syn drop"

// selfPairs is the kind of the self-ip sets: each local pod address paired
// with itself, so that one lookup of (source . destination) finds a pod's
// packets to itself (through a service that sends it back to its own pod).
const selfPairs ir.SetKind = 100

// dispatchMap returns the verdict map of a direction and family.
func dispatchMap(dir ir.Direction, fam ir.Family) string {
	switch {
	case dir == ir.Ingress && fam == ir.IPv4:
		return mapIngress4
	case dir == ir.Ingress:
		return mapIngress6
	case fam == ir.IPv4:
		return mapEgress4
	}
	return mapEgress6
}

// desired is the complete content of table inet weft, as this backend renders
// and remembers it. Set and map members are kept typed and sorted, so that a
// sync compares them without formatting anything that did not change.
type desired struct {
	sets   map[string]*setObj
	maps   map[string]*mapObj
	chains map[string]*chainObj
	// merged and walked count the groups decided by set lookups and those
	// that walk their policy chains; overBudget names the groups that walk
	// because their merged sets would exceed the budget, with that size.
	merged, walked int
	overBudget     map[string]int
}

type setObj struct {
	def       knftables.Set
	kind      ir.SetKind
	addrs     []netip.Addr
	prefixes  []netip.Prefix
	endpoints []ir.Endpoint
	boxes     []box
}

type mapObj struct {
	def   knftables.Map
	elems []mapElem // sorted by addr
}

// mapElem dispatches a local pod address to its group chain.
type mapElem struct {
	addr  netip.Addr
	chain string
	pod   string
}

type chainObj struct {
	def   knftables.Chain
	rules []ruleText
}

type ruleText struct {
	rule, comment string
}

// validName is what weft accepts as an ir object name: it must be usable as an
// nft identifier unquoted and must not collide with weft's own objects.
var validName = regexp.MustCompile(`^weft-[a-zA-Z0-9_-]{1,58}$`)

func checkName(what, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%s name %q is not usable in nftables: want \"weft-\" followed by 1-58 letters, digits, '-' or '_' (a bug in the compiler)", what, name)
	}
	return nil
}

// render turns rs into the desired table content with the default merge
// budget.
func render(rs *ir.Ruleset) (*desired, error) { return renderWith(rs, DefaultMergeBudget) }

// renderWith turns rs into the desired table content. It does not modify rs
// and keeps none of its slices. Bad input gets an error naming the object.
// Groups whose merged sets would hold more than budget elements walk their
// chains. Only the ir's chains and sets that some rule still uses are
// rendered.
func renderWith(rs *ir.Ruleset, budget int) (*desired, error) {
	d := &desired{sets: map[string]*setObj{}, maps: map[string]*mapObj{}, chains: map[string]*chainObj{}, overBudget: map[string]int{}}
	lg, err := newLogger(rs.Log)
	if err != nil {
		return nil, err
	}
	d.addFixed(lg)
	if lg != nil {
		lg.addObjects(d)
	}
	if err := d.addUnknown(rs.UnknownRanges); err != nil {
		return nil, err
	}
	irSets := map[string]*setObj{}
	irChainObjs := map[string]*chainObj{}
	used := map[string]bool{} // ir sets and chains some rendered rule uses

	for i := range rs.Sets {
		s := &rs.Sets[i]
		if err := checkName("set", s.Name); err != nil {
			return nil, err
		}
		if _, dup := irSets[s.Name]; dup {
			return nil, fmt.Errorf("set %s is defined twice in the ruleset", s.Name)
		}
		o, err := renderSet(s)
		if err != nil {
			return nil, err
		}
		irSets[s.Name] = o
	}

	// Accepts of the chains that isolated ingress groups walk are logged
	// (ir.Log.Allowed); the open group's are not.
	acceptLogged := map[string]bool{}
	for i := range rs.Groups {
		if lg.logsAccepts(&rs.Groups[i]) {
			for _, name := range rs.Groups[i].Chains {
				acceptLogged[name] = true
			}
		}
	}
	irChains := make(map[string]*ir.Chain, len(rs.Chains))
	for i := range rs.Chains {
		c := &rs.Chains[i]
		if err := checkName("chain", c.Name); err != nil {
			return nil, err
		}
		if _, dup := irChainObjs[c.Name]; dup {
			return nil, fmt.Errorf("chain %s is defined twice in the ruleset", c.Name)
		}
		o := &chainObj{def: knftables.Chain{Name: c.Name, Comment: comment(c.Direction.String() + " of " + c.Policy)}}
		v := plainVerdicts
		if lg != nil {
			v.drop = "goto " + dropChain(c.Direction)
		}
		if acceptLogged[c.Name] {
			v.accept = "goto " + chainAcceptIngress
		}
		for j := range c.Rules {
			text, err := renderRule(c, &c.Rules[j], irSets, v)
			if err != nil {
				return nil, fmt.Errorf("chain %s (policy %s) rule %d: %w", c.Name, c.Policy, j, err)
			}
			o.rules = append(o.rules, text)
		}
		irChainObjs[c.Name] = o
		irChains[c.Name] = c
	}

	members := [2]map[netip.Addr]string{{}, {}}
	for i := range rs.Groups {
		g := &rs.Groups[i]
		if err := checkName("group", g.Name); err != nil {
			return nil, err
		}
		if _, dup := d.chains[g.Name]; dup || irChainObjs[g.Name] != nil {
			return nil, fmt.Errorf("group %s has the name of another chain or group in the ruleset", g.Name)
		}
		if g.Direction != ir.Ingress && g.Direction != ir.Egress {
			return nil, fmt.Errorf("group %s: unknown direction %d", g.Name, g.Direction)
		}
		o := &chainObj{def: knftables.Chain{Name: g.Name, Comment: comment(g.Direction.String() + " of " + strings.Join(g.Policies, ","))}}
		o.rules = append(o.rules, ruleText{rule: ruleNotTCPStart, comment: commentText(g.Direction.String() + " " + g.Name + ": no TCP connection starts so")})
		jump := func(j int, c *ir.Chain) ruleText {
			policy := c.Policy
			if j < len(g.Policies) {
				policy = g.Policies[j]
			}
			return ruleText{rule: "jump " + c.Name, comment: commentText(policy)}
		}
		// Plan: runs of accept-only chains become set lookups, other chains
		// stay jumps, in the group's order.
		type step struct {
			run   *groupRun
			j     int
			chain *ir.Chain
		}
		var plan []step
		elems := 0
		for j, name := range g.Chains {
			c := irChains[name]
			if c == nil {
				return nil, fmt.Errorf("group %s refers to chain %s, which the ruleset does not define", g.Name, name)
			}
			if c.Direction != g.Direction {
				return nil, fmt.Errorf("group %s (%s) refers to chain %s of direction %s", g.Name, g.Direction, name, c.Direction)
			}
			if !mergeable(c) {
				plan = append(plan, step{j: j, chain: c})
				continue
			}
			if n := len(plan); n == 0 || plan[n-1].run == nil {
				plan = append(plan, step{run: &groupRun{}})
			}
			plan[len(plan)-1].run.add(c, irChainObjs[name].rules, irSets)
		}
		for _, st := range plan {
			if st.run != nil {
				elems += st.run.build()
			}
		}
		if elems > budget {
			d.overBudget[g.Name] = elems
		}
		if elems > budget {
			d.walked++
			for j, name := range g.Chains {
				o.rules = append(o.rules, jump(j, irChains[name]))
				used[name] = true
			}
		} else {
			d.merged++
			k := 0
			for _, st := range plan {
				if st.run == nil {
					o.rules = append(o.rules, jump(st.j, st.chain))
					used[st.chain.Name] = true
					continue
				}
				accept := "accept"
				if lg.logsAccepts(g) {
					accept = "goto " + chainAcceptIngress
				}
				o.rules = append(o.rules, st.run.emit(d, g, k, accept)...)
				for _, ref := range st.run.resRefs {
					used[ref] = true
				}
				k++
			}
		}
		if lg != nil {
			// Only here, on the way to the drop: no rule more for what
			// policy allows.
			o.rules = append(o.rules, lg.rules(ir.Dropped, g.Direction)...)
		}
		o.rules = append(o.rules, ruleText{rule: "drop", comment: commentText(g.Direction.String() + " " + g.Name + ": no policy allows")})
		d.chains[g.Name] = o

		for _, m := range g.Members {
			if !m.Addr.IsValid() || m.Addr.Zone() != "" || m.Addr.Is4In6() {
				return nil, fmt.Errorf("group %s: member %s has a bad address %q (want a plain IPv4 or IPv6 address)", g.Name, m.Pod, m.Addr)
			}
			if other, dup := members[g.Direction][m.Addr]; dup {
				return nil, fmt.Errorf("address %s is in %s groups %s and %s; a pod address belongs to one group per direction", m.Addr, g.Direction, other, g.Name)
			}
			members[g.Direction][m.Addr] = g.Name
			mo := d.maps[dispatchMap(g.Direction, ir.FamilyOf(m.Addr))]
			mo.elems = append(mo.elems, mapElem{addr: m.Addr, chain: g.Name, pod: m.Pod})
		}
	}
	for i := range rs.Chains {
		c := &rs.Chains[i]
		if !used[c.Name] {
			continue
		}
		d.chains[c.Name] = irChainObjs[c.Name]
		for j := range c.Rules {
			used[c.Rules[j].PeerSet] = true
			used[c.Rules[j].EndpointSet] = true
		}
	}
	for name, o := range irSets {
		if used[name] {
			d.sets[name] = o
		}
	}
	for _, m := range d.maps {
		slices.SortFunc(m.elems, func(a, b mapElem) int { return a.addr.Compare(b.addr) })
	}
	for dir := range members {
		for a := range members[dir] {
			self := d.sets[setSelf4]
			if a.Is6() {
				self = d.sets[setSelf6]
			}
			self.addrs = append(self.addrs, a)
		}
	}
	for _, name := range []string{setSelf4, setSelf6} {
		d.sets[name].addrs = sortedUnique(d.sets[name].addrs, netip.Addr.Compare)
	}
	return d, nil
}

// addFixed adds the base chains, dispatch maps and self sets every weft table
// holds, and, when lg logs, the chains that log and drop.
func (d *desired) addFixed(lg *logger) {
	filter := knftables.FilterType
	forward := knftables.ForwardHook
	accept := knftables.AcceptPolicy
	base := func(name string, prio knftables.BaseChainPriority, dir ir.Direction, comment string) {
		field := "saddr"
		if dir == ir.Ingress {
			field = "daddr"
		}
		unknown := "drop"
		if lg != nil {
			// To a chain of its own (lg.addObjects), so that what passes
			// the lookup meets no rule more than without logging.
			unknown = "goto " + unknownChain(dir)
		}
		d.chains[name] = &chainObj{
			def: knftables.Chain{Name: name, Type: &filter, Hook: &forward, Priority: &prio, Policy: &accept, Comment: &comment},
			rules: []ruleText{
				{rule: "ct state established,related accept"},
				{rule: ruleNeighbourDiscovery, comment: "IPv6 neighbour discovery is no connection"},
				{rule: "ip saddr . ip daddr @" + setSelf4 + " accept", comment: "a pod's packets to itself"},
				{rule: "ip6 saddr . ip6 daddr @" + setSelf6 + " accept", comment: "a pod's packets to itself"},
				{rule: "ip " + field + " vmap @" + dispatchMap(dir, ir.IPv4)},
				{rule: "ip6 " + field + " vmap @" + dispatchMap(dir, ir.IPv6)},
				// Reached only by addresses in no group: in the pod ranges,
				// they belong to no pod weft knows.
				{rule: "ip " + field + " @" + setUnknown4 + " " + unknown, comment: dir.String() + ": unknown local pod address"},
				{rule: "ip6 " + field + " @" + setUnknown6 + " " + unknown, comment: dir.String() + ": unknown local pod address"},
			},
		}
	}
	base(chainForwardEgress, priorityEgress, ir.Egress, "egress of local pods")
	base(chainForwardIngress, priorityIngress, ir.Ingress, "ingress of local pods")
	for _, m := range []struct {
		name, typ, comment string
	}{
		{mapIngress4, "ipv4_addr : verdict", "local pod address -> its ingress group"},
		{mapIngress6, "ipv6_addr : verdict", "local pod address -> its ingress group"},
		{mapEgress4, "ipv4_addr : verdict", "local pod address -> its egress group"},
		{mapEgress6, "ipv6_addr : verdict", "local pod address -> its egress group"},
	} {
		d.maps[m.name] = &mapObj{def: knftables.Map{Name: m.name, Type: m.typ, Comment: comment(m.comment)}}
	}
	d.sets[setSelf4] = &setObj{kind: selfPairs, def: knftables.Set{Name: setSelf4, Type: "ipv4_addr . ipv4_addr", Comment: comment("isolated local pod address . itself")}}
	d.sets[setSelf6] = &setObj{kind: selfPairs, def: knftables.Set{Name: setSelf6, Type: "ipv6_addr . ipv6_addr", Comment: comment("isolated local pod address . itself")}}
}

// addUnknown adds the sets of the node's pod ranges in which addresses of no
// known pod are dropped (empty when there are none).
func (d *desired) addUnknown(ranges []netip.Prefix) error {
	for _, fam := range []ir.Family{ir.IPv4, ir.IPv6} {
		s := &ir.Set{Name: setUnknown4, Family: fam, Kind: ir.NetSet, Comment: "this node's pod ranges: addresses in no group are unknown"}
		if fam == ir.IPv6 {
			s.Name = setUnknown6
		}
		for _, p := range ranges {
			if ir.FamilyOf(p.Addr()) == fam {
				s.Prefixes = append(s.Prefixes, p)
			}
		}
		o, err := renderSet(s)
		if err != nil {
			return fmt.Errorf("unknown ranges: %w", err)
		}
		d.sets[s.Name] = o
	}
	return nil
}

func renderSet(s *ir.Set) (*setObj, error) {
	addrType := "ipv4_addr"
	switch s.Family {
	case ir.IPv4:
	case ir.IPv6:
		addrType = "ipv6_addr"
	default:
		return nil, fmt.Errorf("set %s: unknown family %d (want 4 or 6)", s.Name, s.Family)
	}
	o := &setObj{def: knftables.Set{Name: s.Name, Comment: comment(s.Comment)}, kind: s.Kind}
	badFamily := func(what string) error {
		return fmt.Errorf("set %s (IPv%d) holds %s of the other family", s.Name, s.Family, what)
	}
	switch s.Kind {
	case ir.AddrSet:
		o.def.Type = addrType
		o.addrs = sortedUnique(s.Addrs, netip.Addr.Compare)
		for _, a := range o.addrs {
			if ir.FamilyOf(a) != s.Family || a.Is4In6() || a.Zone() != "" {
				return nil, badFamily("address " + a.String())
			}
		}
	case ir.NetSet:
		o.def.Type = addrType
		o.def.Flags = []knftables.SetFlag{knftables.IntervalFlag}
		o.prefixes = make([]netip.Prefix, 0, len(s.Prefixes))
		for _, p := range s.Prefixes {
			if !p.IsValid() {
				return nil, fmt.Errorf("set %s holds an invalid prefix", s.Name)
			}
			if ir.FamilyOf(p.Addr()) != s.Family || p.Addr().Is4In6() {
				return nil, badFamily("prefix " + p.String())
			}
			o.prefixes = append(o.prefixes, p.Masked())
		}
		o.prefixes = sortedUnique(o.prefixes, comparePrefix)
		for i := 1; i < len(o.prefixes); i++ {
			// An interval set holds disjoint ranges; sorted, only a
			// neighbour can overlap.
			if o.prefixes[i-1].Overlaps(o.prefixes[i]) {
				return nil, fmt.Errorf("set %s holds overlapping prefixes %s and %s; a net set must hold disjoint prefixes", s.Name, o.prefixes[i-1], o.prefixes[i])
			}
		}
	case ir.EndpointSet:
		o.def.Type = addrType + " . inet_proto . inet_service"
		o.endpoints = sortedUnique(s.Endpoints, ir.CompareEndpoints)
		for _, e := range o.endpoints {
			if ir.FamilyOf(e.Addr) != s.Family || e.Addr.Is4In6() || e.Addr.Zone() != "" {
				return nil, badFamily("endpoint " + e.String())
			}
		}
	default:
		return nil, fmt.Errorf("set %s: unknown kind %d", s.Name, s.Kind)
	}
	return o, nil
}

// verdicts are the statements a policy rule's Accept and Drop become:
// accept and drop, or, when logging, gotos to the chains that log first.
type verdicts struct{ accept, drop string }

var plainVerdicts = verdicts{accept: "accept", drop: "drop"}

// renderRule writes one policy rule in the small nft dialect this package
// uses (see doc.go); the test interpreter reads exactly this dialect.
func renderRule(c *ir.Chain, r *ir.Rule, sets map[string]*setObj, v verdicts) (ruleText, error) {
	var fam string
	switch r.Family {
	case ir.IPv4:
		fam = "ip"
	case ir.IPv6:
		fam = "ip6"
	default:
		return ruleText{}, fmt.Errorf("unknown family %d (want 4 or 6)", r.Family)
	}
	var parts []string
	if r.PeerSet != "" {
		s := sets[r.PeerSet]
		if s == nil {
			return ruleText{}, fmt.Errorf("peer set %s is not defined in the ruleset", r.PeerSet)
		}
		if s.kind == ir.EndpointSet || irFamily(s) != r.Family {
			return ruleText{}, fmt.Errorf("peer set %s is not an IPv%d address or net set", r.PeerSet, r.Family)
		}
		field := "daddr"
		if c.Direction == ir.Ingress {
			field = "saddr"
		}
		parts = append(parts, fam+" "+field+" @"+r.PeerSet)
	} else if r.EndpointSet == "" {
		parts = append(parts, "meta nfproto ipv"+strconv.Itoa(int(r.Family)))
	}
	if r.Protocol == 0 && (r.PortMin != 0 || r.PortMax != 0) {
		return ruleText{}, fmt.Errorf("port range %d-%d without a protocol", r.PortMin, r.PortMax)
	}
	if r.PortMin == 0 && r.PortMax != 0 {
		return ruleText{}, fmt.Errorf("port range 0-%d: a range must start at 1 or more", r.PortMax)
	}
	if r.PortMin > r.PortMax && r.PortMin != 0 {
		return ruleText{}, fmt.Errorf("port range %d-%d is empty (end before start)", r.PortMin, r.PortMax)
	}
	if r.Protocol != 0 {
		parts = append(parts, "meta l4proto "+protoName(r.Protocol))
	}
	switch {
	case r.PortMin == 0:
	case r.PortMin == r.PortMax:
		parts = append(parts, "th dport "+strconv.Itoa(int(r.PortMin)))
	default:
		parts = append(parts, fmt.Sprintf("th dport %d-%d", r.PortMin, r.PortMax))
	}
	if r.EndpointSet != "" {
		s := sets[r.EndpointSet]
		if s == nil {
			return ruleText{}, fmt.Errorf("endpoint set %s is not defined in the ruleset", r.EndpointSet)
		}
		if s.kind != ir.EndpointSet || irFamily(s) != r.Family {
			return ruleText{}, fmt.Errorf("set %s is not an IPv%d endpoint set", r.EndpointSet, r.Family)
		}
		parts = append(parts, fam+" daddr . meta l4proto . th dport @"+r.EndpointSet)
	}
	switch r.Verdict {
	case ir.Accept:
		parts = append(parts, v.accept)
	case ir.Drop:
		parts = append(parts, v.drop)
	case ir.Pass:
		parts = append(parts, "return")
	default:
		return ruleText{}, fmt.Errorf("unknown verdict %d", r.Verdict)
	}
	return ruleText{rule: strings.Join(parts, " "), comment: commentText(r.Comment)}, nil
}

func irFamily(s *setObj) ir.Family {
	if strings.HasPrefix(s.def.Type, "ipv6_addr") {
		return ir.IPv6
	}
	return ir.IPv4
}

// protoName is how nft names an IP protocol in rules and set elements.
func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

// commentText makes s safe as an nft comment: no double quotes or control
// characters, and at most maxComment bytes (cut on a rune boundary).
func commentText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r == 0x7f {
			return '\''
		}
		return r
	}, s)
	if len(s) <= maxComment {
		return s
	}
	cut := maxComment - 3
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func comment(s string) *string {
	if s == "" {
		return nil
	}
	c := commentText(s)
	return &c
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// sortedUnique returns a sorted copy of xs without duplicates.
func sortedUnique[T any](xs []T, cmp func(a, b T) int) []T {
	out := slices.Clone(xs)
	if !slices.IsSortedFunc(out, cmp) {
		slices.SortFunc(out, cmp)
	}
	return slices.CompactFunc(out, func(a, b T) bool { return cmp(a, b) == 0 })
}
