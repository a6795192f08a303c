package iptables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/weftnet/weft/internal/ir"
)

// DefaultMergeBudget is the most elements the merged sets of one group may
// hold when Config.MergeBudget is 0: ir.DefaultMergeBudget.
const DefaultMergeBudget = ir.DefaultMergeBudget

// maxMergedPorts is the widest port range a merged rule may have: ipset
// stores one element per port, so wider ranges stay rules.
const maxMergedPorts = 1024

// mergeOptions are the planner's parameters for ipsets: one element per
// port, up to maxMergedPorts ports a rule, overlaps kept (so a peer joining
// a set only adds elements, which the narrow-then-widen order of Apply
// relies on).
func mergeOptions(budget int) ir.MergeOptions {
	return ir.MergeOptions{Budget: budget, Sets: ir.PortSets, MaxPortRange: maxMergedPorts}
}

// mergedSetName names a merged set of group g: run k, kind ("any", "p"
// for ports, "n<proto>" for a protocol's every port), family fam. ir names
// are "weft-" and a base32 hash, so "weft-m-" never clashes with them.
func mergedSetName(g string, k int, kind string, fam ir.Family) string {
	sum := sha256.Sum256([]byte(g + "|" + strconv.Itoa(k)))
	return "weft-m-" + hex.EncodeToString(sum[:6]) + "-" + kind + "-" + strconv.Itoa(int(fam))
}

// emitRun writes a planned run in family fam: a hash:net set of the peers
// accepted on every protocol and port, one hash:net set per protocol of
// the peers accepted on its every port, and a hash:net,port set of
// (peer, protocol:port) elements, each with the group chain's rule (spec)
// that looks it up, then the kept rules. Each accepts by returning from the
// group chain, which was entered by goto, so the packet goes back to WEFT
// and on to the next direction. cond is prepended to every rule (the mark
// test when a walked chain came before).
func (r *renderer) emitRun(run *ir.Run, g *ir.Group, fam ir.Family, cond string) []string {
	rf := run.Family(fam)
	peerDir, portDirs := "src", "src,dst"
	if g.Direction == ir.Egress {
		peerDir, portDirs = "dst", "dst,dst"
	}
	policies := make([]string, 0, len(run.Chains))
	for _, c := range run.Chains {
		policies = append(policies, c.Policy)
	}
	what := commentArg(strings.Join(policies, ","))
	accept := "-j RETURN"
	if r.lg.logsAccepts(g) {
		accept = "-g " + chainIngressAccept
	}
	var specs []string
	newSet := func(kind, typ string, members []string) string {
		name := mergedSetName(g.Name, run.N, kind, fam)
		// Written as ipset lists them, a /0's halves may meet a /1 peer.
		slices.Sort(members)
		r.st.sets[name] = newIPSet(name, typ, fam, slices.Compact(members))
		return name
	}
	if rf.AnyUsed {
		var members []string
		for _, p := range rf.Any {
			members = append(members, netMembers(p)...)
		}
		name := newSet("any", "hash:net", members)
		specs = append(specs, fmt.Sprintf("%s-m set --match-set %s %s%s %s", cond, name, peerDir, what, accept))
	}
	for _, proto := range rf.AllPorts {
		var members []string
		for _, b := range rf.Boxes {
			if b.Protocol == proto && b.AllPorts() {
				members = append(members, netMembers(b.Peer)...)
			}
		}
		name := newSet("n"+strconv.Itoa(int(proto)), "hash:net", members)
		specs = append(specs, fmt.Sprintf("%s-p %s -m set --match-set %s %s%s %s", cond, protoName(proto), name, peerDir, what, accept))
	}
	if rf.Ranges {
		var members []string
		for _, b := range rf.Boxes {
			if b.AllPorts() {
				continue
			}
			peers := netMembers(b.Peer)
			for port := int(b.Lo); port <= int(b.Hi); port++ {
				suffix := "," + protoName(b.Protocol) + ":" + strconv.Itoa(port)
				for _, p := range peers {
					members = append(members, p+suffix)
				}
			}
		}
		name := newSet("p", "hash:net,port", members)
		specs = append(specs, fmt.Sprintf("%s-m set --match-set %s %s%s %s", cond, name, portDirs, what, accept))
	}
	for _, ref := range run.Kept {
		rule := ref.Rule()
		if rule.Family != fam {
			continue
		}
		spec := r.ruleSpec(ref.Chain, rule)
		// The rule's own Accept target (WEFT-ALLOW or WEFT-INGRESS-ALLOW)
		// becomes the run's.
		target := strings.LastIndex(spec, "-g ")
		specs = append(specs, cond+spec[:target]+accept)
	}
	return specs
}
