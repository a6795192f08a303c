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
	boxes     []ir.Box
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
func render(rs *ir.Ruleset) (*desired, error) { return renderWith(rs, 0) }

// renderWith turns rs into the desired table content, merging with budget
// (see Config.MergeBudget). It does not modify rs and keeps none of its
// slices. A ruleset that is not valid (ir.Ruleset.Validate) or whose names
// nft cannot take gets an error naming the object. Only the ir's chains and
// sets that some rule still uses are rendered.
func renderWith(rs *ir.Ruleset, budget int) (*desired, error) {
	for i := range rs.Sets {
		if err := checkName("set", rs.Sets[i].Name); err != nil {
			return nil, err
		}
	}
	for i := range rs.Chains {
		if err := checkName("chain", rs.Chains[i].Name); err != nil {
			return nil, err
		}
	}
	for i := range rs.Groups {
		if err := checkName("group", rs.Groups[i].Name); err != nil {
			return nil, err
		}
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	// Interval sets refuse overlapping elements.
	for i := range rs.Sets {
		if err := checkDisjoint(rs.Sets[i].Name, rs.Sets[i].Prefixes); err != nil {
			return nil, err
		}
	}
	if err := checkDisjoint("of the unknown ranges", rs.UnknownRanges); err != nil {
		return nil, err
	}
	d := &desired{sets: map[string]*setObj{}, maps: map[string]*mapObj{}, chains: map[string]*chainObj{}, overBudget: map[string]int{}}
	lg := newLogger(rs.Log)
	d.addFixed(lg)
	if lg != nil {
		lg.addObjects(d, audits(rs))
	}
	d.addUnknown(rs.UnknownRanges)
	irSets := make(map[string]*ir.Set, len(rs.Sets))
	for i := range rs.Sets {
		irSets[rs.Sets[i].Name] = &rs.Sets[i]
	}
	used := map[string]bool{} // ir sets and chains some rendered rule uses

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
	irChainObjs := make(map[string]*chainObj, len(rs.Chains))
	for i := range rs.Chains {
		c := &rs.Chains[i]
		o := &chainObj{def: knftables.Chain{Name: c.Name, Comment: comment(c.Direction.String() + " of " + c.Policy)}}
		v := plainVerdicts
		if lg != nil {
			v.drop = "goto " + dropChain(c.Direction)
			// (Validate saw to the log for every Audit verdict.)
			v.audit = "goto " + auditChain(c.Direction)
		}
		if acceptLogged[c.Name] {
			v.accept = "goto " + chainAcceptIngress
		}
		o.rules = make([]ruleText, 0, len(c.Rules))
		for j := range c.Rules {
			o.rules = append(o.rules, renderRule(c, &c.Rules[j], v))
		}
		irChainObjs[c.Name] = o
		irChains[c.Name] = c
	}

	opts := mergeOptions(budget)
	for i := range rs.Groups {
		g := &rs.Groups[i]
		o := &chainObj{def: knftables.Chain{Name: g.Name, Comment: comment(g.Direction.String() + " of " + strings.Join(g.Policies, ","))}}
		o.rules = append(o.rules, ruleText{rule: ruleNotTCPStart, comment: commentText(g.Direction.String() + " " + g.Name + ": no TCP connection starts so")})
		plan, err := ir.PlanGroup(g, irChains, irSets, opts)
		if err != nil {
			return nil, err
		}
		if plan.OverBudget {
			d.overBudget[g.Name] = plan.Elements
		}
		if plan.Walk {
			d.walked++
		} else {
			d.merged++
		}
		accept := "accept"
		if lg.logsAccepts(g) {
			accept = "goto " + chainAcceptIngress
		}
		for _, st := range plan.Steps {
			if st.Run == nil {
				policy := st.Chain.Policy
				if st.Index < len(g.Policies) {
					policy = g.Policies[st.Index]
				}
				o.rules = append(o.rules, ruleText{rule: "jump " + st.Chain.Name, comment: commentText(policy)})
				used[st.Chain.Name] = true
				continue
			}
			o.rules = append(o.rules, d.emitRun(st.Run, g, irChainObjs, accept)...)
			for _, ref := range st.Run.Kept {
				used[ref.Rule().PeerSet] = true
				used[ref.Rule().EndpointSet] = true
			}
		}
		switch {
		case g.Audit:
			// Audited: logged as would-be-dropped, then accepted. (The
			// log is on: Validate.)
			o.rules = append(o.rules, lg.rules(ir.Audited, g.Direction)...)
			o.rules = append(o.rules, ruleText{rule: "accept", comment: commentText(g.Direction.String() + " " + g.Name + ": no policy allows; audited, not dropped")})
		default:
			if lg != nil {
				// Only here, on the way to the drop: no rule more for what
				// policy allows.
				o.rules = append(o.rules, lg.rules(ir.Dropped, g.Direction)...)
			}
			o.rules = append(o.rules, ruleText{rule: "drop", comment: commentText(g.Direction.String() + " " + g.Name + ": no policy allows")})
		}
		d.chains[g.Name] = o

		for _, m := range g.Members {
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
	for i := range rs.Sets {
		if s := &rs.Sets[i]; used[s.Name] {
			d.sets[s.Name] = renderSet(s)
		}
	}
	for _, m := range d.maps {
		slices.SortFunc(m.elems, func(a, b mapElem) int { return a.addr.Compare(b.addr) })
	}
	// Each address is in at most one group per direction (Validate), so
	// the self sets take the map elements, once.
	for _, fam := range []ir.Family{ir.IPv4, ir.IPv6} {
		self := d.sets[setSelf4]
		if fam == ir.IPv6 {
			self = d.sets[setSelf6]
		}
		for _, dir := range []ir.Direction{ir.Ingress, ir.Egress} {
			for _, e := range d.maps[dispatchMap(dir, fam)].elems {
				self.addrs = append(self.addrs, e.addr)
			}
		}
		self.addrs = sortedUnique(self.addrs, netip.Addr.Compare)
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
func (d *desired) addUnknown(ranges []netip.Prefix) {
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
		d.sets[s.Name] = renderSet(s)
	}
}

// checkDisjoint says which two of the prefixes of set name overlap, if any.
func checkDisjoint(name string, ps []netip.Prefix) error {
	if len(ps) < 2 {
		return nil
	}
	sorted := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		sorted[i] = p.Masked()
	}
	sorted = sortedUnique(sorted, ir.ComparePrefixes)
	for i := 1; i < len(sorted); i++ {
		// Sorted by address then length, a prefix that overlaps another
		// overlaps its predecessor.
		if sorted[i-1].Overlaps(sorted[i]) {
			return fmt.Errorf("set %s holds overlapping prefixes %s and %s; a net set must hold disjoint prefixes", name, sorted[i-1], sorted[i])
		}
	}
	return nil
}

// renderSet renders a set of a valid ruleset.
func renderSet(s *ir.Set) *setObj {
	addrType := "ipv4_addr"
	if s.Family == ir.IPv6 {
		addrType = "ipv6_addr"
	}
	o := &setObj{def: knftables.Set{Name: s.Name, Comment: comment(s.Comment)}, kind: s.Kind}
	switch s.Kind {
	case ir.AddrSet:
		o.def.Type = addrType
		o.addrs = sortedUnique(s.Addrs, netip.Addr.Compare)
	case ir.NetSet:
		o.def.Type = addrType
		o.def.Flags = []knftables.SetFlag{knftables.IntervalFlag}
		o.prefixes = make([]netip.Prefix, 0, len(s.Prefixes))
		for _, p := range s.Prefixes {
			o.prefixes = append(o.prefixes, p.Masked())
		}
		o.prefixes = sortedUnique(o.prefixes, ir.ComparePrefixes)
	case ir.EndpointSet:
		o.def.Type = addrType + " . inet_proto . inet_service"
		o.endpoints = sortedUnique(s.Endpoints, ir.CompareEndpoints)
	}
	return o
}

// verdicts are the statements a policy rule's Accept, Drop and Audit
// become: accept and drop, or, when logging, gotos to the chains that log
// first; Audit always goes to the chain that logs and accepts.
type verdicts struct{ accept, drop, audit string }

var plainVerdicts = verdicts{accept: "accept", drop: "drop"}

// renderRule writes one rule of a valid ruleset in the small nft dialect
// this package uses (see doc.go); the test interpreter reads exactly this
// dialect.
func renderRule(c *ir.Chain, r *ir.Rule, v verdicts) ruleText {
	fam := "ip"
	if r.Family == ir.IPv6 {
		fam = "ip6"
	}
	var parts []string
	if r.PeerSet != "" {
		field := "daddr"
		if c.Direction == ir.Ingress {
			field = "saddr"
		}
		parts = append(parts, fam+" "+field+" @"+r.PeerSet)
	} else if r.EndpointSet == "" {
		parts = append(parts, "meta nfproto ipv"+strconv.Itoa(int(r.Family)))
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
		parts = append(parts, fam+" daddr . meta l4proto . th dport @"+r.EndpointSet)
	}
	switch r.Verdict {
	case ir.Accept:
		parts = append(parts, v.accept)
	case ir.Drop:
		parts = append(parts, v.drop)
	case ir.Pass:
		parts = append(parts, "return")
	case ir.Audit:
		parts = append(parts, v.audit)
	}
	return ruleText{rule: strings.Join(parts, " "), comment: commentText(r.Comment)}
}

// protoName is how nft names an IP protocol in rules and set elements.
func protoName(p uint8) string {
	if p == ipproto.ICMPv6 {
		return "ipv6-icmp"
	}
	return ipproto.Name(p)
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

// sortedUnique returns xs sorted without duplicates: xs itself when it is
// so already (as the compiler makes sets; neither is written later, and the
// next sync's diff sees an unchanged set as the same slice), else a copy.
func sortedUnique[T any](xs []T, cmp func(a, b T) int) []T {
	strict := true
	for i := 1; i < len(xs) && strict; i++ {
		strict = cmp(xs[i-1], xs[i]) < 0
	}
	if strict {
		return xs
	}
	out := slices.Clone(xs)
	slices.SortFunc(out, cmp)
	return slices.CompactFunc(out, func(a, b T) bool { return cmp(a, b) == 0 })
}
