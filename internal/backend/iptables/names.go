package iptables

import (
	"fmt"
	"strings"

	"github.com/weftnet/weft/internal/ir"
)

// Chains with fixed names. Every chain weft owns is named WEFT, WEFT-* or
// weft-* (the ir's group and policy chains).
const (
	chainTop         = "WEFT"
	chainEgress      = "WEFT-EGRESS"
	chainIngress     = "WEFT-INGRESS"
	chainAllow       = "WEFT-ALLOW"
	chainEgressDrop  = "WEFT-EGRESS-DROP"
	chainIngressDrop = "WEFT-INGRESS-DROP"
	// The drops of unknown local pod addresses, one chain per direction so
	// that such drops can be told from policy drops.
	chainEgressUnknown  = "WEFT-EGRESS-UNKNOWN"
	chainIngressUnknown = "WEFT-INGRESS-UNKNOWN"
	// The would-be drops of audited groups (ir.Group.Audit, ir.Audit
	// verdicts): they log and set the allow mark, so the group goes on as
	// if a policy had allowed. Only in rulesets that audit.
	chainEgressAudit    = "WEFT-EGRESS-AUDIT"
	chainIngressAudit   = "WEFT-INGRESS-AUDIT"
	maxChainName        = 28
	maxSetName          = 31
	maxComment          = 255
	hookComment         = "weft network policy"
	tempSetPrefix       = "weft-tmp-"
	ownedSetPrefix      = "weft-"
	ownedChainPrefixLow = "weft-"
	ownedChainPrefixUp  = "WEFT-"
)

// AllowMark is the packet mark bit weft sets when a policy chain allows a
// packet. It is only meaningful inside a group chain, which clears it on
// entry and on exit. It avoids kube-proxy's 0x4000 (masquerade) and 0x8000
// (drop) bits.
const AllowMark = 0x40000

// hooks are the built-in chains that jump to WEFT, at their top: only
// FORWARD, since traffic between the node and its pods is always allowed.
var hooks = [...]string{"FORWARD"}

// builtinChains are the built-in filter chains whose jumps into weft's
// chains are weft's (earlier versions hooked INPUT too): adoption and
// cleanup remove those that are not in hooks.
var builtinChains = [...]string{"FORWARD", "INPUT", "OUTPUT"}

var (
	markClear   = fmt.Sprintf("-j MARK --set-xmark 0x0/%#x", AllowMark)
	markSet     = fmt.Sprintf("-j MARK --set-xmark %#x/%#x", AllowMark, AllowMark)
	markNotSet  = fmt.Sprintf("-m mark ! --mark %#x/%#x", AllowMark, AllowMark)
	hookRuleArg = fmt.Sprintf("-m comment --comment %q -j %s", hookComment, chainTop)
)

// ownedChain reports whether a chain name is weft's.
func ownedChain(name string) bool {
	return name == chainTop || strings.HasPrefix(name, ownedChainPrefixUp) || strings.HasPrefix(name, ownedChainPrefixLow)
}

// ownedSet reports whether an ipset name is weft's.
func ownedSet(name string) bool { return strings.HasPrefix(name, ownedSetPrefix) }

// dropChain returns the drop chain of a direction.
func dropChain(d ir.Direction) string {
	if d == ir.Egress {
		return chainEgressDrop
	}
	return chainIngressDrop
}

// auditChain is the chain that logs would-be drops of audited groups of
// direction d and marks them allowed.
func auditChain(d ir.Direction) string {
	if d == ir.Egress {
		return chainEgressAudit
	}
	return chainIngressAudit
}

// unknownChain is the chain that drops unknown addresses of direction d.
func unknownChain(d ir.Direction) string {
	if d == ir.Egress {
		return chainEgressUnknown
	}
	return chainIngressUnknown
}

// unknownSetName is the hash:net ipset of the node's pod ranges of a family,
// in which addresses in no group are unknown.
func unknownSetName(fam ir.Family) string {
	if fam == ir.IPv6 {
		return "weft-unknown-v6"
	}
	return "weft-unknown-v4"
}

// groupSetName is the ipset holding a group's members of one family.
func groupSetName(group string, fam ir.Family) string {
	return fmt.Sprintf("%s-v%d", group, fam)
}

// famIndex maps a family to 0 (IPv4) or 1 (IPv6).
func famIndex(f ir.Family) int {
	if f == ir.IPv6 {
		return 1
	}
	return 0
}

var families = [...]ir.Family{ir.IPv4, ir.IPv6}
