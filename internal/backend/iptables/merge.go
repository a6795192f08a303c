package iptables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftnet/weft/internal/ir"
)

// DefaultMergeBudget is the most elements the merged sets of one group may
// hold in one family (Config.MergeBudget); a group that would need more
// walks its policy chains instead, so that memory stays bounded by the ir's
// own sets.
const DefaultMergeBudget = 50000

// maxMergedPorts is the widest port range a merged rule may have: ipset
// stores one element per port, so wider ranges stay rules.
const maxMergedPorts = 1024

// mergeable reports whether every rule of c accepts: such chains, tried in
// a row, accept exactly the union of what their rules match, in any order.
func mergeable(c *ir.Chain) bool {
	for i := range c.Rules {
		if c.Rules[i].Verdict != ir.Accept {
			return false
		}
	}
	return true
}

// mergedRun is a run of consecutive mergeable chains of one group, in one
// family, folded into a hash:net set of peers accepted on every protocol
// and port, one hash:net set per protocol of peers accepted on every port
// of it, and a hash:net,port set of (peer, protocol:port) elements, plus the
// rules the sets cannot hold (named ports, wide port ranges), kept as rules.
type mergedRun struct {
	chains   []*ir.Chain
	any      map[string]bool           // peers, ipset syntax
	hasAny   bool                      // a rule wants the any set, even if empty
	protos   map[uint8]map[string]bool // protocol → peers on every port
	ports    map[string]bool           // "peer,proto:port"
	hasPorts bool                      // a rule wants the port set
	residual []*ir.Rule
}

// elements is the number of set elements the run needs.
func (run *mergedRun) elements() int {
	n := len(run.any) + len(run.ports)
	for _, peers := range run.protos {
		n += len(peers)
	}
	return n
}

// add takes in the rules of family fam of chain c.
func (r *renderer) addToRun(run *mergedRun, c *ir.Chain, fam ir.Family) {
	run.chains = append(run.chains, c)
	for i := range c.Rules {
		rule := &c.Rules[i]
		if rule.Family != fam {
			continue
		}
		width := int(rule.PortMax) - int(rule.PortMin) + 1
		if rule.PortMax == 0 {
			width = 1
		}
		if rule.EndpointSet != "" || (rule.PortMin != 0 && width > maxMergedPorts) {
			// A named port resolves on the destination, which for ingress
			// is the group member, not a key of the sets; a wide range
			// would cost one element per port. Keep the rule.
			run.residual = append(run.residual, rule)
			continue
		}
		peers := r.peerMembers(rule)
		switch {
		case rule.Protocol == 0:
			run.hasAny = true
			if run.any == nil {
				run.any = map[string]bool{}
			}
			for _, p := range peers {
				run.any[p] = true
			}
		case rule.PortMin == 0:
			if run.protos == nil {
				run.protos = map[uint8]map[string]bool{}
			}
			set := run.protos[rule.Protocol]
			if set == nil {
				set = map[string]bool{}
				run.protos[rule.Protocol] = set
			}
			for _, p := range peers {
				set[p] = true
			}
		default:
			run.hasPorts = true
			if run.ports == nil {
				run.ports = map[string]bool{}
			}
			proto := protoName(rule.Protocol)
			for port := int(rule.PortMin); port < int(rule.PortMin)+width; port++ {
				suffix := "," + proto + ":" + strconv.Itoa(port)
				for _, p := range peers {
					run.ports[p+suffix] = true
				}
			}
		}
	}
}

// peerMembers is the peer of rule as hash:net members written as ipset
// lists them (single addresses bare): the members of its peer set, or the
// whole family (as two halves, since hash:net cannot hold /0).
func (r *renderer) peerMembers(rule *ir.Rule) []string {
	if rule.PeerSet == "" {
		whole := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if rule.Family == ir.IPv6 {
			whole = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netMembers(whole)
	}
	s := r.sets[rule.PeerSet]
	out := make([]string, 0, s.Len())
	for _, a := range s.Addrs {
		out = append(out, a.String())
	}
	for _, p := range s.Prefixes {
		out = append(out, netMembers(p)...)
	}
	return out
}

// mergedSetName names a merged set of group g: run k, kind ("any", "p"
// for ports, "n<proto>" for a protocol's every port), family fam. ir names
// are "weft-" and a base32 hash, so "weft-m-" never clashes with them.
func mergedSetName(g string, k int, kind string, fam ir.Family) string {
	sum := sha256.Sum256([]byte(g + "|" + strconv.Itoa(k)))
	return "weft-m-" + hex.EncodeToString(sum[:6]) + "-" + kind + "-" + strconv.Itoa(int(fam))
}

// emitRun adds the run's sets to the state and returns the group chain's
// rules (specs) that look them up, then its kept rules. Each accepts by
// returning from the group chain, which was entered by goto, so the packet
// goes back to WEFT and on to the next direction. cond is prepended to
// every rule (the mark test when a walked chain came before).
func (r *renderer) emitRun(run *mergedRun, g *ir.Group, k int, fam ir.Family, cond string) ([]string, error) {
	peerDir, portDirs := "src", "src,dst"
	if g.Direction == ir.Egress {
		peerDir, portDirs = "dst", "dst,dst"
	}
	policies := make([]string, 0, len(run.chains))
	for _, c := range run.chains {
		policies = append(policies, c.Policy)
	}
	what := commentArg(strings.Join(policies, ","))
	accept := "-j RETURN"
	if r.lg.logsAccepts(g) {
		accept = "-g " + chainIngressAccept
	}
	var specs []string
	newSet := func(kind, typ string, members map[string]bool) string {
		name := mergedSetName(g.Name, k, kind, fam)
		list := make([]string, 0, len(members))
		for m := range members {
			list = append(list, m)
		}
		slices.Sort(list)
		r.st.sets[name] = newIPSet(name, typ, fam, list)
		return name
	}
	if run.hasAny {
		name := newSet("any", "hash:net", run.any)
		specs = append(specs, fmt.Sprintf("%s-m set --match-set %s %s%s %s", cond, name, peerDir, what, accept))
	}
	protos := make([]uint8, 0, len(run.protos))
	for p := range run.protos {
		protos = append(protos, p)
	}
	slices.Sort(protos)
	for _, p := range protos {
		name := newSet("n"+strconv.Itoa(int(p)), "hash:net", run.protos[p])
		specs = append(specs, fmt.Sprintf("%s-p %s -m set --match-set %s %s%s %s", cond, protoName(p), name, peerDir, what, accept))
	}
	if run.hasPorts {
		name := newSet("p", "hash:net,port", run.ports)
		specs = append(specs, fmt.Sprintf("%s-m set --match-set %s %s%s %s", cond, name, portDirs, what, accept))
	}
	for _, rule := range run.residual {
		c := r.chainOf(run, rule)
		spec, err := r.ruleSpec(c, rule)
		if err != nil {
			return nil, fmt.Errorf("ruleset: chain %s (%s): %w", c.Name, c.Policy, err)
		}
		// The rule's own Accept target (WEFT-ALLOW or WEFT-INGRESS-ALLOW)
		// becomes the run's.
		target := strings.LastIndex(spec, "-g ")
		specs = append(specs, cond+spec[:target]+accept)
	}
	return specs, nil
}

// chainOf returns the chain of run that holds rule.
func (r *renderer) chainOf(run *mergedRun, rule *ir.Rule) *ir.Chain {
	for _, c := range run.chains {
		for i := range c.Rules {
			if &c.Rules[i] == rule {
				return c
			}
		}
	}
	panic("rule of no chain of the run")
}
