package compile

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
	"k8s.io/apimachinery/pkg/labels"
)

var families = [...]ir.Family{ir.IPv4, ir.IPv6}

// Compile returns the ruleset that enforces snap's policies for the pods local
// to node ("" means every pod is local). Addresses no known pod holds pass.
func Compile(snap *policy.Snapshot, node string) *ir.Ruleset {
	return CompileWith(snap, Options{Node: node})
}

// Options says what to compile for.
type Options struct {
	// Node is the node whose pods are local; "" means every pod is local.
	Node string
	// PodRanges are the node's pod ranges. Addresses in them that no known
	// pod holds are denied both ways (ir.Ruleset.UnknownRanges), and every
	// known local pod is then in a group of each direction. Empty: such
	// addresses pass. Ignored when Node is "".
	PodRanges []netip.Prefix
	// NodeAddrs are addresses of the node besides those the snapshot knows
	// (its interfaces, the pods' gateway): never pod addresses.
	NodeAddrs []netip.Addr
	// Log is copied to the ruleset: which packets the kernel logs.
	Log ir.Log
	// Mode is how local pods are enforced unless their namespace's
	// policy.EnforcementAnnotation says otherwise: a pod's audited
	// directions get audited groups (see the package doc).
	Mode policy.Enforcement
}

// CompileWith returns the ruleset that enforces snap's policies as opts say.
func CompileWith(snap *policy.Snapshot, opts Options) *ir.Ruleset {
	return newCompiler(snap, opts).compile()
}

func newCompiler(snap *policy.Snapshot, opts Options) *compiler {
	return &compiler{
		snap:       snap,
		node:       opts.Node,
		opts:       opts,
		sets:       map[string]*ir.Set{},
		namespaces: map[string][]string{},
	}
}

type compiler struct {
	snap       *policy.Snapshot
	node       string
	opts       Options
	sets       map[string]*ir.Set            // by name
	namespaces map[string][]string           // namespace selector → matching namespaces
	endpoints  map[portKey]*[2][]ir.Endpoint // per family, unsorted
	// localEndpoints are endpoints of the node's pods only.
	localEndpoints map[portKey]*[2][]ir.Endpoint
	chains         map[string]*ir.Chain // shared chains (cluster tiers, accept-all) by name
	inc            *Incremental         // sets and chains kept from the compile before (nil: none)
}

func (c *compiler) compile() *ir.Ruleset {
	rs := &ir.Ruleset{Node: c.node}
	// chains of each isolated local pod, per direction, in policy order
	podChains := [2]map[*policy.Pod][]*ir.Chain{{}, {}}
	var order [2][]*policy.Pod
	// The policies that select local pods: those of their namespaces.
	local := c.snap.PodsOn(c.node)
	for start := 0; start < len(local); {
		ns := local[start].Namespace
		end := start
		for end < len(local) && local[end].Namespace == ns {
			end++
		}
		for _, pol := range c.snap.PoliciesIn(ns) {
			var selected []*policy.Pod
			for _, pod := range local[start:end] {
				if policy.IsLocal(pod, c.node) && pol.Selects(pod) {
					selected = append(selected, pod)
				}
			}
			if len(selected) == 0 {
				continue
			}
			for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
				if !pol.Isolates[dir] {
					continue
				}
				ch := c.policyChain(pol, dir)
				rs.Chains = append(rs.Chains, *ch)
				for _, pod := range selected {
					if _, seen := podChains[dir][pod]; !seen {
						order[dir] = append(order[dir], pod)
					}
					podChains[dir][pod] = append(podChains[dir][pod], ch)
				}
			}
		}
		start = end
	}
	// Cluster policies: per local pod and direction, one chain per tier
	// holding the rules of the tier's policies that select it, in
	// evaluation order. A Pass leaves the tier's chain for the next.
	if len(c.snap.ClusterPolicies) > 0 {
		for dir := range podChains {
			for _, pod := range local {
				if !policy.IsLocal(pod, c.node) {
					continue
				}
				admin := c.tierChain(rs, pod, policy.TierAdmin, policy.Direction(dir))
				baseline := c.tierChain(rs, pod, policy.TierBaseline, policy.Direction(dir))
				if admin == nil && baseline == nil {
					continue
				}
				var chains []*ir.Chain
				if admin != nil {
					chains = append(chains, admin)
				}
				if np := podChains[dir][pod]; len(np) > 0 {
					// NetworkPolicy isolates: it decides what the Admin
					// tier left, and the group drops what it does not allow.
					chains = append(chains, np...)
				} else {
					if baseline != nil {
						chains = append(chains, baseline)
					}
					// Nothing decided: allowed.
					chains = append(chains, c.acceptAll(rs, ir.Direction(dir)))
				}
				if _, seen := podChains[dir][pod]; !seen {
					order[dir] = append(order[dir], pod)
				}
				podChains[dir][pod] = chains
			}
		}
	}
	for dir := range podChains {
		groups := map[string]*ir.Group{}
		for _, pod := range order[dir] {
			chains := podChains[dir][pod]
			audit := c.snap.EnforcementOf(pod.Namespace, c.opts.Mode) == policy.Audit
			names := make([]string, len(chains))
			var pols []string
			for i, ch := range chains {
				if audit {
					ch = c.auditVariant(rs, ch)
				}
				names[i] = ch.Name
				if ch.Policy != acceptAllPolicy {
					pols = append(pols, ch.Policy)
				}
			}
			key := strings.Join(names, ",")
			if audit {
				key += "|audit"
			}
			g := groups[key]
			if g == nil {
				g = &ir.Group{
					Name:      "weft-g-" + hash(ir.Direction(dir).String()+"|"+key),
					Direction: ir.Direction(dir),
					Chains:    names,
					Policies:  pols,
					Audit:     audit,
				}
				groups[key] = g
			}
			for _, ip := range pod.IPs {
				if c.snap.PodByIP(ip) == pod {
					g.Members = append(g.Members, ir.Member{Addr: ip, Pod: pod.Key()})
				}
			}
		}
		for _, g := range groups {
			sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].Addr.Less(g.Members[j].Addr) })
			rs.Groups = append(rs.Groups, *g)
		}
	}
	rs.Log = c.opts.Log
	if c.node != "" && len(c.opts.PodRanges) > 0 {
		rs.UnknownRanges = c.unknownRanges()
		for dir := range podChains {
			if g := c.openGroup(rs, ir.Direction(dir), podChains[dir]); g != nil {
				rs.Groups = append(rs.Groups, *g)
			}
		}
	}
	// Sets only a merged rule's union stood for are referenced no more.
	used := map[string]bool{}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			used[r.PeerSet], used[r.EndpointSet] = true, true
		}
	}
	for name, s := range c.sets {
		if used[name] {
			rs.Sets = append(rs.Sets, *s)
		}
	}
	sort.Slice(rs.Sets, func(i, j int) bool { return rs.Sets[i].Name < rs.Sets[j].Name })
	sort.Slice(rs.Chains, func(i, j int) bool { return rs.Chains[i].Name < rs.Chains[j].Name })
	sort.Slice(rs.Groups, func(i, j int) bool { return rs.Groups[i].Name < rs.Groups[j].Name })
	return rs
}

// openGroup returns the group of the local pods that no policy isolates in
// direction dir (isolated lists those that are), so that they are known;
// nil when there are none. Its one chain accepts everything.
func (c *compiler) openGroup(rs *ir.Ruleset, dir ir.Direction, isolated map[*policy.Pod][]*ir.Chain) *ir.Group {
	g := &ir.Group{
		Name:      "weft-g-" + hash(dir.String()+"|open"),
		Direction: dir,
	}
	for _, pod := range c.snap.PodsOn(c.node) {
		if _, iso := isolated[pod]; iso || !policy.IsLocal(pod, c.node) {
			continue
		}
		for _, ip := range pod.IPs {
			if c.snap.PodByIP(ip) == pod {
				g.Members = append(g.Members, ir.Member{Addr: ip, Pod: pod.Key()})
			}
		}
	}
	if len(g.Members) == 0 {
		return nil
	}
	g.Chains = []string{c.acceptAll(rs, dir).Name}
	sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].Addr.Less(g.Members[j].Addr) })
	return g
}

// acceptAllPolicy is the Policy of the chain that accepts everything.
const acceptAllPolicy = "(none: not isolated)"

// acceptAll returns the chain that accepts everything in direction dir,
// adding it to rs the first time.
func (c *compiler) acceptAll(rs *ir.Ruleset, dir ir.Direction) *ir.Chain {
	name := "weft-p-" + hash(dir.String()+"|open")
	if ch := c.chains[name]; ch != nil {
		return ch
	}
	ch := &ir.Chain{
		Name:      name,
		Policy:    acceptAllPolicy,
		Direction: dir,
		Rules: []ir.Rule{
			{Family: ir.IPv4, Verdict: ir.Accept, Comment: "not isolated"},
			{Family: ir.IPv6, Verdict: ir.Accept, Comment: "not isolated"},
		},
	}
	c.addChain(rs, ch)
	return ch
}

// auditVariant returns the chain that audited groups use for ch: ch itself
// when it drops nothing, else a copy whose Drop rules audit (ir.Audit),
// added to rs the first time. Enforcing groups keep ch, unchanged.
func (c *compiler) auditVariant(rs *ir.Ruleset, ch *ir.Chain) *ir.Chain {
	drops := false
	for _, r := range ch.Rules {
		drops = drops || r.Verdict == ir.Drop
	}
	if !drops {
		return ch
	}
	name := "weft-p-" + hash("audit|"+ch.Name)
	if v := c.chains[name]; v != nil {
		return v
	}
	v := &ir.Chain{Name: name, Policy: ch.Policy, Direction: ch.Direction, Rules: slices.Clone(ch.Rules)}
	for i := range v.Rules {
		if v.Rules[i].Verdict == ir.Drop {
			v.Rules[i].Verdict = ir.Audit
		}
	}
	c.addChain(rs, v)
	return v
}

// addChain adds ch to rs once; chains are shared by name.
func (c *compiler) addChain(rs *ir.Ruleset, ch *ir.Chain) {
	if c.chains == nil {
		c.chains = map[string]*ir.Chain{}
	}
	c.chains[ch.Name] = ch
	rs.Chains = append(rs.Chains, *ch)
}

// tierChain returns the chain of the cluster policies of tier that select
// pod, for direction dir: their rules in evaluation order (priority, name,
// rule order), Accept, Deny (Drop) or Pass. Nil when no policy of the tier
// selects the pod or none has rules for the direction.
func (c *compiler) tierChain(rs *ir.Ruleset, pod *policy.Pod, tier policy.Tier, dir policy.Direction) *ir.Chain {
	nsLabels := c.snap.NamespaceLabels(pod.Namespace)
	var pols []*policy.ClusterPolicy
	var names []string
	for _, p := range c.snap.ClusterPoliciesIn(tier) {
		if len(p.Rules[dir]) > 0 && p.Selects(pod, nsLabels) {
			pols = append(pols, p)
			names = append(names, p.Name)
		}
	}
	if len(pols) == 0 {
		return nil
	}
	name := "weft-p-" + hash(dir.String()+"|"+tier.String()+"|"+strings.Join(names, ","))
	if ch := c.chains[name]; ch != nil {
		return ch
	}
	ch := &ir.Chain{Name: name, Policy: tier.String() + " tier: " + strings.Join(names, ","), Direction: ir.Direction(dir)}
	for _, p := range pols {
		for i := range p.Rules[dir] {
			ch.Rules = append(ch.Rules, c.clusterRule(p, &p.Rules[dir][i], dir, i)...)
		}
	}
	ch.Rules = c.mergeSameVerdict(ch.Rules)
	c.addChain(rs, ch)
	return ch
}

// mergeSameVerdict keeps a tier chain's cost per packet from growing with
// its policies: within a run of consecutive rules of one verdict the order
// does not matter (whichever matches, the verdict is the same), so the rules
// of the run that share family, protocol and ports become one rule whose
// peer set is the union of theirs (any peer, if one of them takes any).
func (c *compiler) mergeSameVerdict(rules []ir.Rule) []ir.Rule {
	type key struct {
		fam              ir.Family
		proto            uint8
		portMin, portMax uint16
		endpoints        string
	}
	var out []ir.Rule
	for start := 0; start < len(rules); {
		end := start
		for end < len(rules) && rules[end].Verdict == rules[start].Verdict {
			end++
		}
		var order []key
		groups := map[key][]ir.Rule{}
		for _, r := range rules[start:end] {
			k := key{r.Family, r.Protocol, r.PortMin, r.PortMax, r.EndpointSet}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], r)
		}
		for _, k := range order {
			out = append(out, c.unionRule(groups[k]))
		}
		start = end
	}
	return out
}

// unionRule is one rule matching what any of rs (same verdict, family,
// protocol and ports) matches.
func (c *compiler) unionRule(rs []ir.Rule) ir.Rule {
	r := rs[0]
	if len(rs) == 1 {
		return r
	}
	r.Comment = fmt.Sprintf("%s and %d more", rs[0].Comment, len(rs)-1)
	var names []string
	for _, x := range rs {
		if x.PeerSet == "" {
			r.PeerSet = "" // any peer
			return r
		}
		names = append(names, x.PeerSet)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 1 {
		r.PeerSet = names[0]
		return r
	}
	name := "weft-" + hash("union|"+strings.Join(names, ","))
	if _, ok := c.sets[name]; !ok {
		u := &ir.Set{Name: name, Family: r.Family, Kind: ir.AddrSet, Comment: fmt.Sprintf("union of %d peer sets", len(names))}
		var prefixes []netip.Prefix
		for _, n := range names {
			s := c.sets[n]
			u.Addrs = append(u.Addrs, s.Addrs...)
			prefixes = append(prefixes, s.Prefixes...)
			if s.Kind == ir.NetSet {
				u.Kind = ir.NetSet
			}
		}
		if u.Kind == ir.NetSet {
			for _, a := range u.Addrs {
				prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
			}
			u.Addrs, u.Prefixes = nil, disjoint(prefixes)
		} else {
			slices.SortFunc(u.Addrs, netip.Addr.Compare)
			u.Addrs = slices.Compact(u.Addrs)
		}
		c.sets[name] = u
	}
	r.PeerSet = name
	return r
}

// clusterRule expands one cluster policy rule into ir rules: one per
// family, peer set and port entry, all with the rule's verdict.
func (c *compiler) clusterRule(p *policy.ClusterPolicy, r *policy.ClusterRule, dir policy.Direction, i int) []ir.Rule {
	if r.Broken {
		return nil // a broken Accept allows nothing (a broken Deny was made a Deny of all)
	}
	verdict := ir.Accept
	switch r.Action {
	case policy.Deny:
		verdict = ir.Drop
	case policy.Next:
		verdict = ir.Pass
	}
	comment := fmt.Sprintf("cnp %s %s[%d]", p.Name, dir, i)
	var out []ir.Rule
	for fi, fam := range families {
		var peers []string
		if r.AllPeers {
			peers = []string{""}
		}
		for j := range r.Peers {
			if name, ok := c.clusterPeerSet(&r.Peers[j], fam); ok {
				peers = append(peers, name)
			}
		}
		out = append(out, crossRules(fam, peers, c.portMatches(r.AllPorts, r.Ports, fi, dir), verdict, comment)...)
	}
	return out
}

// clusterPeerSet returns the set of a cluster policy peer's addresses of
// family fam; false when it has none of that family by construction.
func (c *compiler) clusterPeerSet(peer *policy.ClusterPeer, fam ir.Family) (string, bool) {
	switch {
	case peer.Namespaces != nil:
		return c.peerSet("", &policy.Peer{NamespaceSelector: peer.Namespaces}, fam)
	case peer.Pods != nil:
		return c.peerSet("", &policy.Peer{NamespaceSelector: peer.PodNamespaces, PodSelector: peer.Pods}, fam)
	case peer.Nodes != nil:
		key := fmt.Sprintf("nodes|%d|%s", fam, selectorString(peer.Nodes))
		name := "weft-" + hash(key)
		if _, ok := c.sets[name]; !ok {
			var addrs []netip.Addr
			for _, n := range c.snap.Nodes {
				if !peer.Nodes.Matches(n.Labels) {
					continue
				}
				for _, a := range n.Addrs {
					if ir.FamilyOf(a) == fam {
						addrs = append(addrs, a)
					}
				}
			}
			slices.SortFunc(addrs, netip.Addr.Compare)
			c.sets[name] = &ir.Set{Name: name, Family: fam, Kind: ir.AddrSet, Comment: "nodes " + selectorString(peer.Nodes), Addrs: slices.Compact(addrs)}
		}
		return name, true
	}
	var nets, texts []string
	var prefixes []netip.Prefix
	for _, p := range peer.Networks {
		if ir.FamilyOf(p.Addr()) == fam {
			prefixes = append(prefixes, p)
			texts = append(texts, p.String())
		}
	}
	if len(prefixes) == 0 {
		return "", false
	}
	nets = slices.Clone(texts)
	sort.Strings(nets)
	name := "weft-" + hash(fmt.Sprintf("nets|%d|%s", fam, strings.Join(nets, ",")))
	if _, ok := c.sets[name]; !ok {
		c.sets[name] = &ir.Set{Name: name, Family: fam, Kind: ir.NetSet, Comment: "networks " + strings.Join(nets, ","), Prefixes: disjoint(prefixes)}
	}
	return name, true
}

// unknownRanges returns the pod ranges without the node's own addresses,
// disjoint and sorted.
func (c *compiler) unknownRanges() []netip.Prefix {
	nodeAddrs := append(c.snap.AddressesOf(c.node), c.opts.NodeAddrs...)
	var ranges []netip.Prefix
	for _, r := range c.opts.PodRanges {
		r = r.Masked()
		covered := false
		for _, o := range c.opts.PodRanges {
			o = o.Masked()
			if o != r && o.Bits() <= r.Bits() && o.Contains(r.Addr()) {
				covered = true // inside a wider range: that one covers it
			}
		}
		if covered || slices.Contains(ranges, r) {
			continue
		}
		var holes []netip.Prefix
		for _, a := range nodeAddrs {
			if r.Contains(a) {
				holes = append(holes, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		ranges = append(ranges, subtract(r, holes)...)
	}
	slices.SortFunc(ranges, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ranges)
}

// hash returns 16 characters of lower-case base32 of sha256(s).
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

// allEndpoints returns the endpoints of every named container port of the
// snapshot's pods, by name and protocol, per family (unsorted). A large
// cluster's pods are read in parts on all cores.
func (c *compiler) allEndpoints() map[portKey]*[2][]ir.Endpoint {
	pods := c.snap.Pods
	parts := 1
	if len(pods) >= 20000 {
		parts = min(runtime.GOMAXPROCS(0), 8)
	}
	out := make([]map[portKey]*[2][]ir.Endpoint, parts)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			out[i] = c.endpointsOf(pods[i*len(pods)/parts:(i+1)*len(pods)/parts], "")
		})
	}
	wg.Wait()
	all := out[0]
	for _, m := range out[1:] {
		for k, eps := range m {
			if a := all[k]; a != nil {
				a[0], a[1] = append(a[0], eps[0]...), append(a[1], eps[1]...)
			} else {
				all[k] = eps
			}
		}
	}
	return all
}

// endpointsOf is allEndpoints of some pods, those on node unless node is
// ""; it only reads the snapshot.
func (c *compiler) endpointsOf(pods []*policy.Pod, node string) map[portKey]*[2][]ir.Endpoint {
	out := map[portKey]*[2][]ir.Endpoint{}
	for _, pod := range pods {
		if !policy.IsLocal(pod, node) {
			continue
		}
		for _, cp := range pod.Ports {
			k := portKey{cp.Name, cp.Protocol}
			eps := out[k]
			if eps == nil {
				eps = &[2][]ir.Endpoint{}
				out[k] = eps
			}
			for _, ip := range pod.IPs {
				if c.snap.PodByIP(ip) != pod {
					continue
				}
				i := 0
				if ip.Is6() {
					i = 1
				}
				eps[i] = append(eps[i], ir.Endpoint{Addr: ip, Protocol: uint8(cp.Protocol), Port: cp.Port})
			}
		}
	}
	return out
}

// portKey is a named container port and its protocol.
type portKey struct {
	name  string
	proto policy.Protocol
}

// portMatch is one port entry of a rule, for one family.
type portMatch struct {
	protocol         uint8
	portMin, portMax uint16
	endpointSet      string
}

// portMatches returns the port entries of a rule for family index fi: one
// that matches everything when all is set; a named port with a protocol
// matches that protocol's endpoint set, and one without (a cluster policy's
// destinationNamedPort) each protocol's. An ingress rule's named ports
// are looked up in sets of the local pods' endpoints only (see
// namedPortSet).
func (c *compiler) portMatches(all bool, ports []policy.Port, fi int, dir policy.Direction) []portMatch {
	local := dir == policy.Ingress
	var out []portMatch
	if all {
		out = []portMatch{{}}
	}
	for _, p := range ports {
		if p.Name != "" && p.Protocol == 0 {
			for _, proto := range []policy.Protocol{policy.TCP, policy.UDP, policy.SCTP} {
				out = append(out, portMatch{protocol: uint8(proto), endpointSet: c.namedPortSet(p.Name, proto, fi, local)})
			}
			continue
		}
		pm := portMatch{protocol: uint8(p.Protocol), portMin: p.Port, portMax: p.EndPort}
		if p.Name != "" {
			pm.endpointSet = c.namedPortSet(p.Name, p.Protocol, fi, local)
		}
		out = append(out, pm)
	}
	return out
}

// crossRules returns one rule of family fam per peer set and port entry,
// all with verdict and comment.
func crossRules(fam ir.Family, peers []string, ports []portMatch, verdict ir.Verdict, comment string) []ir.Rule {
	var out []ir.Rule
	for _, peer := range peers {
		for _, pm := range ports {
			out = append(out, ir.Rule{Family: fam, PeerSet: peer, Protocol: pm.protocol, PortMin: pm.portMin, PortMax: pm.portMax,
				EndpointSet: pm.endpointSet, Verdict: verdict, Comment: comment})
		}
	}
	return out
}

// policyChain returns pol's chain for dir: the one kept from the compile
// before when its sets are kept too, else chain's.
func (c *compiler) policyChain(pol *policy.Policy, dir policy.Direction) *ir.Chain {
	if c.inc == nil {
		return c.chain(pol, dir)
	}
	k := chainKey{pol, dir}
	if e := c.inc.chains[k]; e != nil && c.haveSetsOf(e.chain) {
		e.used = true
		c.inc.Stats.ChainsReused++
		return e.chain
	}
	ch := c.chain(pol, dir)
	c.inc.chains[k] = &chainEntry{chain: ch, used: true}
	return ch
}

// haveSetsOf reports whether every set ch's rules name is in the ruleset
// (haveSet); false when one was dropped and must be computed again.
func (c *compiler) haveSetsOf(ch *ir.Chain) bool {
	for _, r := range ch.Rules {
		for _, name := range []string{r.PeerSet, r.EndpointSet} {
			if name != "" && !c.haveSet(name) {
				return false
			}
		}
	}
	return true
}

func (c *compiler) chain(pol *policy.Policy, dir policy.Direction) *ir.Chain {
	ref := pol.PolicyRef.String()
	ch := &ir.Chain{
		Name:      "weft-p-" + hash(dir.String()+"|"+ref),
		Policy:    ref,
		Direction: ir.Direction(dir),
	}
	for i := range pol.Rules[dir] {
		r := &pol.Rules[dir][i]
		if r.Broken {
			continue // a rule weft cannot understand allows nothing
		}
		comment := fmt.Sprintf("%s %s[%d]", ref, dir, i)
		for fi, fam := range families {
			var peers []string
			if r.AllPeers {
				peers = []string{""}
			}
			for j := range r.Peers {
				if name, ok := c.peerSet(pol.Namespace, &r.Peers[j], fam); ok {
					peers = append(peers, name)
				}
			}
			ch.Rules = append(ch.Rules, crossRules(fam, peers, c.portMatches(r.AllPorts, r.Ports, fi, dir), ir.Accept, comment)...)
		}
	}
	return ch
}

// peerSet returns the set holding the peer's addresses of family fam; false
// when the peer has none of that family by construction (an ipBlock).
func (c *compiler) peerSet(ns string, peer *policy.Peer, fam ir.Family) (string, bool) {
	if b := peer.IPBlock; b != nil {
		if ir.FamilyOf(b.CIDR.Addr()) != fam {
			return "", false
		}
		ex := make([]string, len(b.Except))
		for i, e := range b.Except {
			ex[i] = e.String()
		}
		sort.Strings(ex)
		key := fmt.Sprintf("net|%d|%s|%s", fam, b.CIDR, strings.Join(ex, ","))
		name := "weft-" + hash(key)
		if c.haveSet(name) {
			return name, true
		}
		c.addSet(&setEntry{kind: fixedSet, set: &ir.Set{
			Name: name, Family: fam, Kind: ir.NetSet,
			Comment:  "ipBlock " + b.CIDR.String() + exceptComment(ex),
			Prefixes: subtract(b.CIDR, b.Except),
		}})
		return name, true
	}
	nsPart := "namespace " + ns
	if peer.NamespaceSelector != nil {
		nsPart = "namespaces " + selectorString(peer.NamespaceSelector)
	}
	podPart := "pods " + selectorString(peer.PodSelector)
	key := fmt.Sprintf("pods|%d|%s|%s", fam, nsPart, podPart)
	name := "weft-" + hash(key)
	if c.haveSet(name) {
		return name, true
	}
	var namespaces []string
	if peer.NamespaceSelector == nil {
		namespaces = []string{ns}
	} else {
		namespaces = c.selectNamespaces(peer.NamespaceSelector)
	}
	var addrs []netip.Addr
	for _, ns := range namespaces {
		for _, pod := range c.snap.PodsIn(ns) {
			if !pod.Selectable() || (peer.PodSelector != nil && !peer.PodSelector.Matches(pod.Labels)) {
				continue
			}
			for _, ip := range pod.IPs {
				if ir.FamilyOf(ip) == fam && c.snap.PodByIP(ip) == pod {
					addrs = append(addrs, ip)
				}
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	e := &setEntry{kind: podSet, ns: ns, nsSel: peer.NamespaceSelector, podSel: peer.PodSelector,
		set: &ir.Set{Name: name, Family: fam, Kind: ir.AddrSet, Comment: podPart + " in " + nsPart, Addrs: addrs}}
	if peer.NamespaceSelector != nil {
		e.selected = make(map[string]bool, len(namespaces))
		for _, ns := range namespaces {
			e.selected[ns] = true
		}
	}
	c.addSet(e)
	return name, true
}

// haveSet reports whether the set called name is in the ruleset, adding it
// from those kept from the compile before if it is there.
func (c *compiler) haveSet(name string) bool {
	if _, ok := c.sets[name]; ok {
		return true
	}
	if c.inc != nil {
		if s := c.inc.cachedSet(name); s != nil {
			c.sets[name] = s
			return true
		}
	}
	return false
}

// addSet adds a set the compiler computed, keeping it for the next compile.
func (c *compiler) addSet(e *setEntry) {
	c.sets[e.set.Name] = e.set
	if c.inc != nil {
		c.inc.keep(e)
	}
}

func exceptComment(ex []string) string {
	if len(ex) == 0 {
		return ""
	}
	return " except " + strings.Join(ex, ",")
}

// selectorString is a canonical text of a selector; "*" for every object.
func selectorString(s labels.Selector) string {
	if s == nil || s.Empty() {
		return "*"
	}
	return s.String()
}

func (c *compiler) selectNamespaces(sel labels.Selector) []string {
	key := selectorString(sel)
	if ns, ok := c.namespaces[key]; ok {
		return ns
	}
	var out []string
	for name, ns := range c.snap.Namespaces {
		if sel.Matches(ns.Labels) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	c.namespaces[key] = out
	return out
}

// namedPortSet returns the EndpointSet of family index fi holding, for every
// pod that has a container port called name with protocol proto, its
// (address, protocol, port). With local, only the pods of the node compiled
// for: an ingress rule's destination is always one of them (a group's
// members are the addresses its local pods own), so the set means the same
// with a node's hundred pods as with the cluster's hundred thousand, and a
// pod starting on another node does not change it.
func (c *compiler) namedPortSet(name string, proto policy.Protocol, fi int, local bool) string {
	fam := families[fi]
	local = local && c.node != "" // with every node, every pod is local
	key := fmt.Sprintf("named|%d|%s|%s", fam, name, proto)
	comment := fmt.Sprintf("named port %s/%s", name, proto)
	if local {
		key = fmt.Sprintf("named-local|%d|%s|%s|%s", fam, name, proto, c.node)
		comment += " of local pods"
	}
	setName := "weft-" + hash(key)
	if c.haveSet(setName) {
		return setName
	}
	var eps []ir.Endpoint
	if all := c.namedEndpoints(local)[portKey{name, proto}]; all != nil {
		eps = slices.Clone(all[fi])
	}
	slices.SortFunc(eps, ir.CompareEndpoints)
	eps = slices.Compact(eps)
	e := &setEntry{kind: namedSet, port: name, proto: proto, set: &ir.Set{
		Name: setName, Family: fam, Kind: ir.EndpointSet,
		Comment:   comment,
		Endpoints: eps,
	}}
	if local {
		e.node = c.node
	}
	c.addSet(e)
	return setName
}

// namedEndpoints returns the endpoints of named ports, of the node's pods
// (local) or of every pod, read once per compile.
func (c *compiler) namedEndpoints(local bool) map[portKey]*[2][]ir.Endpoint {
	if local {
		if c.localEndpoints == nil {
			c.localEndpoints = c.endpointsOf(c.snap.PodsOn(c.node), c.node)
		}
		return c.localEndpoints
	}
	if c.endpoints == nil {
		c.endpoints = c.allEndpoints()
	}
	return c.endpoints
}
