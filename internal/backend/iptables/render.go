package iptables

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/weftnet/weft/internal/ipproto"
	"github.com/weftnet/weft/internal/ir"
)

// table is what weft holds, or wants, in one family's filter table.
type table struct {
	// chains maps each weft chain to its rules, each a whole "-A CHAIN ..." line.
	chains map[string][]string
	// hooks maps a built-in chain (FORWARD, INPUT, OUTPUT) to the specs (the part
	// after "-A CHAIN ") of its rules that jump into a weft chain, in order.
	hooks map[string][]string
	// hookFirst says, per built-in chain, that its first rule is hooks[h][0].
	hookFirst map[string]bool
	// front is, for tables read from the kernel, the first rule of each
	// built-in chain as iptables-save printed it.
	front map[string]string
}

func newTable() *table {
	return &table{chains: map[string][]string{}, hooks: map[string][]string{}, hookFirst: map[string]bool{}, front: map[string]string{}}
}

// ipset is one set weft holds or wants.
type ipset struct {
	Name   string
	Type   string // hash:ip, hash:net or hash:ip,port
	Family ir.Family
	// Members in ipset syntax, written as ipset lists them (see canonMember).
	Members []string
	// MaxElem is the set's capacity, HashSize its initial hash size.
	MaxElem, HashSize int
}

func (s *ipset) familyName() string {
	if s.Family == ir.IPv6 {
		return "inet6"
	}
	return "inet"
}

// state is the whole of what weft holds or wants in the kernel.
type state struct {
	tables [2]*table // IPv4, IPv6
	sets   map[string]*ipset
	// overBudget names the groups that walk their policy chains because
	// their merged sets would exceed the budget (group → elements); only
	// of rendered states.
	overBudget map[string]int
}

func emptyState() *state {
	return &state{tables: [2]*table{newTable(), newTable()}, sets: map[string]*ipset{}}
}

// render turns rs into the state the kernel must hold. It checks the ruleset
// (ir.Ruleset.Validate, then what iptables and ipset cannot express) and
// says what is wrong.
func render(rs *ir.Ruleset) (*state, error) { return renderBudget(rs, 0, nil) }

// memberMemo keeps the members rendered for each set, by the ir slice they
// were rendered from: a set the compiler kept as it was (the same slice) is
// not rendered again, and its members are the same slice, which the diff
// sees at once. The compiler never writes a set's slice after making it.
type memberMemo map[string]memoEntry

type memoEntry struct {
	src     memoSource
	members []string
}

// memoSource identifies the slice a set's members come from.
type memoSource struct {
	kind      ir.SetKind
	addrs     *netip.Addr
	prefixes  *netip.Prefix
	endpoints *ir.Endpoint
	n         int
}

func sourceOf(s *ir.Set) memoSource {
	src := memoSource{kind: s.Kind, n: s.Len()}
	switch {
	case len(s.Addrs) > 0:
		src.addrs = &s.Addrs[0]
	case len(s.Prefixes) > 0:
		src.prefixes = &s.Prefixes[0]
	case len(s.Endpoints) > 0:
		src.endpoints = &s.Endpoints[0]
	}
	return src
}

// renderBudget is render with a merge budget (Config.MergeBudget: 0 is the
// default, a negative budget never merges).
func renderBudget(rs *ir.Ruleset, budget int, memo memberMemo) (*state, error) {
	if err := checkNames(rs); err != nil {
		return nil, err
	}
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("ruleset: %w", err)
	}
	chains := make(map[string]*ir.Chain, len(rs.Chains))
	for i := range rs.Chains {
		chains[rs.Chains[i].Name] = &rs.Chains[i]
	}
	sets := make(map[string]*ir.Set, len(rs.Sets))
	for i := range rs.Sets {
		sets[rs.Sets[i].Name] = &rs.Sets[i]
	}
	if err := checkPorts(rs, sets); err != nil {
		return nil, err
	}
	lg, err := newLogger(rs.Log)
	if err != nil {
		return nil, err
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
	// One plan per group serves both families: a group merges, or walks,
	// in both.
	plans := make([]*ir.GroupPlan, len(rs.Groups))
	opts := mergeOptions(budget)
	for i := range rs.Groups {
		if plans[i], err = ir.PlanGroup(&rs.Groups[i], chains, sets, opts); err != nil {
			return nil, fmt.Errorf("ruleset: %w", err)
		}
	}
	st := emptyState()
	for i, plan := range plans {
		if plan.OverBudget {
			if st.overBudget == nil {
				st.overBudget = map[string]int{}
			}
			st.overBudget[rs.Groups[i].Name] = plan.Elements
		}
	}
	r := &renderer{sets: sets, st: st, plans: plans, lg: lg, acceptLogged: acceptLogged, memo: memo}
	for i := range rs.Groups {
		r.audits = r.audits || rs.Groups[i].Audit
	}
	for _, fam := range families {
		if err := r.renderFamily(rs, fam); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// checkNames checks that iptables and ipset can take the ruleset's names.
func checkNames(rs *ir.Ruleset) error {
	for i := range rs.Sets {
		if err := checkSetName(rs.Sets[i].Name); err != nil {
			return err
		}
	}
	for i := range rs.Chains {
		if err := checkChainName(rs.Chains[i].Name); err != nil {
			return err
		}
	}
	for i := range rs.Groups {
		if err := checkChainName(rs.Groups[i].Name); err != nil {
			return err
		}
	}
	return nil
}

// checkPorts checks a valid ruleset for ports of protocols without ports,
// which iptables and ipset cannot express: no match reads them, and
// hash:ip,port holds none. Every rule is checked, also those no group
// needs now: whether a ruleset is refused must not depend on which pods
// run.
func checkPorts(rs *ir.Ruleset, sets map[string]*ir.Set) error {
	endpointsChecked := map[string]bool{}
	for i := range rs.Chains {
		c := &rs.Chains[i]
		for j := range c.Rules {
			rule := &c.Rules[j]
			if rule.PortMin != 0 && !ipproto.HasPorts(rule.Protocol) {
				return fmt.Errorf("ruleset: chain %s (%s) rule %d: protocol %s has no ports, but the rule matches port %d", c.Name, c.Policy, j, protoName(rule.Protocol), rule.PortMin)
			}
			if name := rule.EndpointSet; name != "" && !endpointsChecked[name] {
				endpointsChecked[name] = true
				for _, e := range sets[name].Endpoints {
					if !ipproto.HasPorts(e.Protocol) {
						return fmt.Errorf("ruleset: chain %s (%s) rule %d: set %s: endpoint %s: protocol %s has no ports", c.Name, c.Policy, j, name, e, protoName(e.Protocol))
					}
				}
			}
		}
	}
	return nil
}

type renderer struct {
	sets map[string]*ir.Set
	st   *state
	// plans are the groups' merge plans, in the ruleset's order.
	plans []*ir.GroupPlan
	// lg renders the log rules (nil: no logging); acceptLogged names the
	// chains whose Accept rules go to chainIngressAllow.
	lg           *logger
	acceptLogged map[string]bool
	// audits: some group is audited, so the audit chains exist (and, by
	// Validate, the log is on).
	audits bool
	// memo, if set, holds the members of the sets rendered before; render
	// replaces its entries with this ruleset's.
	memo memberMemo
}

func (r *renderer) renderFamily(rs *ir.Ruleset, fam ir.Family) error {
	t := r.st.tables[famIndex(fam)]
	add := func(chain string, spec string) {
		t.chains[chain] = append(t.chains[chain], "-A "+chain+" "+spec)
	}
	for _, c := range []string{chainTop, chainEgress, chainIngress, chainAllow, chainEgressDrop, chainIngressDrop, chainEgressUnknown, chainIngressUnknown} {
		t.chains[c] = nil
	}
	add(chainTop, "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
	if fam == ir.IPv6 {
		// Neighbour and router discovery is IPv6's ARP: no connection, and
		// without it an isolated pod reaches nothing. Hop limit 255 proves
		// it was not forwarded.
		for _, typ := range ndTypes {
			add(chainTop, "-p ipv6-icmp -m icmp6 --icmpv6-type "+typ+" -m hl --hl-eq 255 -j RETURN")
		}
	}
	add(chainTop, "-j "+chainEgress)
	add(chainTop, "-j "+chainIngress)
	add(chainAllow, markSet)
	if lg := r.lg; lg != nil {
		// The drop and unknown chains are reached only by what they drop,
		// so their log rules cost what passes nothing.
		add(chainEgressDrop, lg.spec(ir.Dropped, ir.Egress))
		add(chainIngressDrop, lg.spec(ir.Dropped, ir.Ingress))
		add(chainEgressUnknown, lg.spec(ir.Unknown, ir.Egress))
		add(chainIngressUnknown, lg.spec(ir.Unknown, ir.Ingress))
		if lg.log.Allowed {
			add(chainIngressAccept, lg.spec(ir.Accepted, ir.Ingress))
			add(chainIngressAllow, lg.spec(ir.Accepted, ir.Ingress))
			add(chainIngressAllow, markSet)
		}
	}
	if r.audits {
		// A would-be drop is logged, then marked allowed: the group goes
		// on as if a policy had allowed it.
		for _, d := range []ir.Direction{ir.Egress, ir.Ingress} {
			add(auditChain(d), r.lg.spec(ir.Audited, d))
			add(auditChain(d), markSet)
		}
	}
	add(chainEgressDrop, "-j DROP")
	add(chainIngressDrop, "-j DROP")
	add(chainEgressUnknown, "-j DROP")
	add(chainIngressUnknown, "-j DROP")
	for _, h := range hooks {
		t.hooks[h] = []string{hookRuleArg}
		t.hookFirst[h] = true
	}

	for gi := range rs.Groups {
		g := &rs.Groups[gi]
		var members []string
		for _, m := range g.Members {
			if ir.FamilyOf(m.Addr) == fam {
				members = append(members, m.Addr.String())
			}
		}
		if len(members) == 0 {
			continue // the group has nothing to isolate in this family
		}
		setName := groupSetName(g.Name, fam)
		if err := checkSetName(setName); err != nil {
			return err
		}
		r.st.sets[setName] = newIPSet(setName, "hash:ip", fam, members)
		dispatch, dir := chainIngress, "dst"
		if g.Direction == ir.Egress {
			dispatch, dir = chainEgress, "src"
		}
		add(dispatch, fmt.Sprintf("-m set --match-set %s %s%s -g %s", setName, dir, commentArg("policies "+strings.Join(g.Policies, ",")), g.Name))

		t.chains[g.Name] = nil
		// A pod's packets to itself pass its groups; they reach FORWARD
		// only when the node sends them back (a service hairpin). iptables
		// cannot compare two fields of a packet, and this kernel has no
		// hash:net,net ipset, so a classic BPF program compares the
		// addresses. (Here, not in WEFT: an unknown address in no group
		// is dropped even towards itself.)
		add(g.Name, `-m bpf --bytecode "`+sameAddressBPF(fam)+`"`+commentArg("a pod's packets to itself")+" -j RETURN")
		// Only packets no conntrack entry knows get here. A TCP packet that
		// starts no connection is dropped: else a connection whose entry
		// weft deleted because policy revoked it would be picked up again
		// mid-stream (nf_conntrack_tcp_loose) by its next packet in
		// whichever direction policy allows as a new connection.
		// (Written as iptables-save prints it, so adoption finds it unchanged.)
		// When logging, it drops in place: such packets are no connection
		// attempts, and the drop chain would log them.
		notStart := dropChain(g.Direction)
		if r.lg != nil {
			notStart = "DROP"
		}
		add(g.Name, "-p tcp -m conntrack --ctstate NEW -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN"+commentArg("no TCP connection starts so")+" -j "+notStart)
		add(g.Name, markClear)
		r.renderGroupChains(t, g, r.plans[gi], fam, add)
		end := dropChain(g.Direction)
		if g.Audit {
			end = auditChain(g.Direction)
		}
		add(g.Name, markNotSet+" -j "+end)
		add(g.Name, markClear)
	}
	// Reached only by addresses in no group: in the pod ranges, they belong
	// to no pod weft knows. The set is always there (maybe empty), so the
	// rules never change.
	var ranges []string
	for _, p := range rs.UnknownRanges {
		if ir.FamilyOf(p.Addr()) == fam {
			ranges = append(ranges, p.Masked().String())
		}
	}
	unknown := unknownSetName(fam)
	r.st.sets[unknown] = newIPSet(unknown, "hash:net", fam, ranges)
	add(chainEgress, "-m set --match-set "+unknown+" src"+commentArg("unknown local pod address")+" -j "+unknownChain(ir.Egress))
	add(chainIngress, "-m set --match-set "+unknown+" dst"+commentArg("unknown local pod address")+" -j "+unknownChain(ir.Ingress))
	return nil
}

// renderGroupChains writes the body of group g's chain by its plan: runs
// of Accept-only chains as set lookups, the other chains (all of them when
// the plan walks) walked in order with the mark.
func (r *renderer) renderGroupChains(t *table, g *ir.Group, plan *ir.GroupPlan, fam ir.Family, add func(chain, spec string)) {
	walked := false
	for _, s := range plan.Steps {
		cond := ""
		if walked {
			cond = markNotSet + " "
		}
		if s.Run != nil {
			for _, spec := range r.emitRun(s.Run, g, fam, cond) {
				add(g.Name, spec)
			}
			continue
		}
		c := s.Chain
		add(g.Name, strings.TrimPrefix(cond+strings.TrimPrefix(commentArg(c.Policy), " ")+" -j "+c.Name, " "))
		walked = true
		if _, done := t.chains[c.Name]; done {
			continue
		}
		r.renderChain(t, c, fam)
	}
}

func (r *renderer) renderChain(t *table, c *ir.Chain, fam ir.Family) {
	t.chains[c.Name] = []string{}
	for i := range c.Rules {
		rule := &c.Rules[i]
		if rule.Family != fam {
			continue
		}
		t.chains[c.Name] = append(t.chains[c.Name], "-A "+c.Name+" "+r.ruleSpec(c, rule))
	}
}

// ruleSpec writes a rule of a checked ruleset.
func (r *renderer) ruleSpec(c *ir.Chain, rule *ir.Rule) string {
	var b strings.Builder
	if rule.PeerSet != "" {
		dir := "src"
		if c.Direction == ir.Egress {
			dir = "dst"
		}
		fmt.Fprintf(&b, "-m set --match-set %s %s ", r.useSet(rule.PeerSet), dir)
	}
	if rule.Protocol != 0 {
		proto := protoName(rule.Protocol)
		fmt.Fprintf(&b, "-p %s ", proto)
		switch {
		case rule.PortMin == 0:
		case rule.PortMax == rule.PortMin:
			fmt.Fprintf(&b, "-m %s --dport %d ", proto, rule.PortMin)
		default:
			fmt.Fprintf(&b, "-m %s --dport %d:%d ", proto, rule.PortMin, rule.PortMax)
		}
	}
	if rule.EndpointSet != "" {
		fmt.Fprintf(&b, "-m set --match-set %s dst,dst ", r.useSet(rule.EndpointSet))
	}
	if rule.Comment != "" {
		b.WriteString(strings.TrimPrefix(commentArg(rule.Comment), " "))
		b.WriteByte(' ')
	}
	switch rule.Verdict {
	case ir.Accept:
		if r.acceptLogged[c.Name] {
			b.WriteString("-g " + chainIngressAllow)
			break
		}
		b.WriteString("-g " + chainAllow)
	case ir.Drop:
		b.WriteString("-j " + dropChain(c.Direction))
	case ir.Pass:
		b.WriteString("-j RETURN")
	case ir.Audit:
		// Logs and marks, as WEFT-ALLOW marks; by goto, so the policy
		// chain ends there.
		b.WriteString("-g " + auditChain(c.Direction))
	}
	return b.String()
}

// useSet renders the ir set name (once) and returns its name.
func (r *renderer) useSet(name string) string {
	if _, done := r.st.sets[name]; done {
		return name
	}
	s := r.sets[name]
	var (
		typ     string
		members []string
	)
	src := sourceOf(s)
	if e, ok := r.memo[name]; ok && e.src == src {
		members = e.members
	}
	switch s.Kind {
	case ir.AddrSet:
		typ = "hash:ip"
		if members != nil {
			break
		}
		members = make([]string, 0, len(s.Addrs))
		for _, a := range s.Addrs {
			members = append(members, a.String())
		}
	case ir.NetSet:
		typ = "hash:net"
		if members != nil {
			break
		}
		members = make([]string, 0, len(s.Prefixes))
		for _, p := range s.Prefixes {
			members = append(members, netMembers(p)...)
		}
	case ir.EndpointSet:
		typ = "hash:ip,port"
		if members != nil {
			break
		}
		members = make([]string, 0, len(s.Endpoints))
		for _, e := range s.Endpoints {
			members = append(members, e.Addr.String()+","+protoName(e.Protocol)+":"+strconv.Itoa(int(e.Port)))
		}
	}
	if r.memo != nil {
		r.memo[name] = memoEntry{src: src, members: members}
	}
	r.st.sets[name] = newIPSet(name, typ, s.Family, members)
	return name
}

// netMembers renders a prefix for hash:net, as ipset lists it: a single
// address bare; /0, which hash:net cannot hold, as its two halves.
func netMembers(p netip.Prefix) []string {
	p = p.Masked()
	if p.IsSingleIP() {
		return []string{p.Addr().String()}
	}
	if p.Bits() != 0 {
		return []string{p.String()}
	}
	hi := netip.MustParseAddr("128.0.0.0")
	if p.Addr().Is6() {
		hi = netip.MustParseAddr("8000::")
	}
	return []string{netip.PrefixFrom(p.Addr(), 1).String(), netip.PrefixFrom(hi, 1).String()}
}

func newIPSet(name, typ string, fam ir.Family, members []string) *ipset {
	return &ipset{
		Name: name, Type: typ, Family: fam, Members: members,
		MaxElem: maxElemFor(len(members)), HashSize: hashSizeFor(len(members)),
	}
}

// maxElemFor leaves room for the set to grow fourfold before it must be
// replaced by a larger one.
func maxElemFor(n int) int {
	const min = 65536
	if n*4 <= min {
		return min
	}
	return 1 << bits.Len(uint(n*4-1))
}

func hashSizeFor(n int) int {
	const min = 64
	if n <= min {
		return min
	}
	return 1 << bits.Len(uint(n-1))
}

// sameAddressBPF returns, in xt_bpf's --bytecode syntax, a classic BPF
// program that matches when a packet's source and destination addresses are
// equal. The program sees the packet from its IP header on.
func sameAddressBPF(fam ir.Family) string {
	const (
		ldAbsWord = 0x20 // A = packet[k:k+4]
		tax       = 0x07 // X = A
		jeqX      = 0x1d // if A == X skip jt else skip jf
		retK      = 0x06 // return k
	)
	src, dst, words := 12, 16, 1 // IPv4
	if fam == ir.IPv6 {
		src, dst, words = 8, 24, 4
	}
	n := words*4 + 2
	var ins []string
	for w := 0; w < words; w++ {
		ins = append(ins,
			fmt.Sprintf("%d 0 0 %d", ldAbsWord, src+4*w),
			fmt.Sprintf("%d 0 0 0", tax),
			fmt.Sprintf("%d 0 0 %d", ldAbsWord, dst+4*w))
		// on a difference, jump to the last instruction (return 0)
		ins = append(ins, fmt.Sprintf("%d 0 %d 0", jeqX, n-1-(len(ins)+1)))
	}
	ins = append(ins, fmt.Sprintf("%d 0 0 1", retK), fmt.Sprintf("%d 0 0 0", retK))
	return strconv.Itoa(len(ins)) + "," + strings.Join(ins, ",")
}

// ndTypes are the ICMPv6 types of neighbour and router discovery (133-136).
var ndTypes = [...]string{"router-solicitation", "router-advertisement", "neighbour-solicitation", "neighbour-advertisement"}

// protoName is how iptables and ipset name an IP protocol.
func protoName(p uint8) string {
	switch p {
	case ipproto.ICMPv6:
		return "icmpv6"
	case 136:
		return "udplite"
	}
	return ipproto.Name(p)
}

// commentArg renders " -m comment --comment "text"", made safe for
// iptables-restore's quoting and its 255-byte limit; "" for empty text.
func commentArg(text string) string {
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, text)
	if len(text) > maxComment {
		cut := maxComment - len("...")
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	if text == "" {
		return ""
	}
	return ` -m comment --comment "` + text + `"`
}

func checkChainName(name string) error {
	if !strings.HasPrefix(name, ownedChainPrefixLow) {
		return fmt.Errorf("ruleset: chain or group name %q does not start with %q, so weft could not tell it is its own", name, ownedChainPrefixLow)
	}
	if len(name) > maxChainName {
		return fmt.Errorf("ruleset: chain or group name %q is longer than iptables' %d characters", name, maxChainName)
	}
	if strings.ContainsAny(name, " \t\n\"'") {
		return fmt.Errorf("ruleset: chain or group name %q holds blanks or quotes", name)
	}
	return nil
}

func checkSetName(name string) error {
	if !strings.HasPrefix(name, ownedSetPrefix) || strings.HasPrefix(name, tempSetPrefix) {
		return fmt.Errorf("ruleset: set name %q must start with %q (and not %q), so weft can tell it is its own", name, ownedSetPrefix, tempSetPrefix)
	}
	if len(name) > maxSetName {
		return fmt.Errorf("ruleset: set name %q is longer than ipset's %d characters", name, maxSetName)
	}
	if strings.ContainsAny(name, " \t\n\"'") {
		return fmt.Errorf("ruleset: set name %q holds blanks or quotes", name)
	}
	return nil
}

// Payload is the input Apply gives the tools for rs on a node where weft
// holds nothing yet: the iptables-restore --noflush payloads of both
// families and the ipset restore payload.
type Payload struct {
	IPv4, IPv6, IPSet string
}

// Render returns the payloads that express rs, for reading and testing; it
// runs nothing.
func Render(rs *ir.Ruleset) (*Payload, error) {
	st, err := render(rs)
	if err != nil {
		return nil, err
	}
	empty := emptyState()
	p, err := planApply(empty, st, func() string { panic("no temporary sets from an empty state") })
	if err != nil {
		return nil, err
	}
	return &Payload{IPv4: p.rules[0], IPv6: p.rules[1], IPSet: joinLines(doLines(p.create))}, nil
}
