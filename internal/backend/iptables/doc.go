// Package iptables is weft's iptables+ipset backend: it renders an ir.Ruleset
// into ipsets and filter-table chains, for IPv4 (iptables, family inet sets)
// and IPv6 (ip6tables, family inet6 sets), and applies it atomically.
//
// Layout of the filter table, per family:
//
//	FORWARD         -I 1 ... -j WEFT              (the only rule outside weft's chains)
//	WEFT            established/related → RETURN; source == destination (a
//	                pod's packets to itself, hairpinned by a service; an
//	                xt_bpf program compares the addresses) → RETURN; IPv6
//	                only: neighbour and router discovery (ICMPv6 133-136, hop
//	                limit 255) → RETURN; -j WEFT-EGRESS; -j WEFT-INGRESS
//	WEFT-EGRESS     per egress group:  -m set --match-set <group>-v4 src -g <group>
//	WEFT-INGRESS    per ingress group: -m set --match-set <group>-v4 dst -g <group>
//	<group>         clear mark; -j <policy chain>; then, while the mark is not
//	                set, -j <next policy chain> ...; still unmarked →
//	                -j WEFT-<DIR>-DROP; clear mark (the packet returns to WEFT)
//	<policy chain>  one rule per ir.Rule: Accept → -g WEFT-ALLOW, Drop →
//	                -j WEFT-<DIR>-DROP, Pass → -j RETURN
//	WEFT-ALLOW      sets AllowMark; being entered by goto, it returns straight
//	                to the group chain, skipping the policy chain's other rules
//	WEFT-EGRESS-DROP, WEFT-INGRESS-DROP   -j DROP (one chain per direction, so
//	                a drop can be attributed to its direction)
//
// Packets weft lets through RETURN to the calling chain, so the node's own
// rules after weft's jump still apply. Only FORWARD is hooked: traffic between
// the node and its pods (INPUT, OUTPUT) is always allowed, as the ir says. An egress that a group allows goes on
// to the ingress check, as the ir requires. AllowMark (0x40000) is weft's
// while a packet runs through a group chain: cleared on entry, cleared again
// on the way out, so it never leaks; it avoids kube-proxy's 0x4000 and 0x8000.
//
// Ownership: chains named WEFT, WEFT-* and weft-*, rules in FORWARD, INPUT and
// OUTPUT that jump to one of them (an INPUT hook of an earlier version is
// removed), and ipsets named weft-*. Nothing else is touched. Sets are named
// as in the ir; a group's members of one family are in <group>-v4 or -v6.
//
// Apply sends one `iptables-restore --noflush` payload per family that
// declares (and thereby flushes and refills) exactly the chains that changed,
// and `ipset restore` payloads: new sets are created whole, large changes of a
// live set are written to a temporary set and swapped in, small ones are
// added and deleted in place (additions to isolating group sets and removals
// from allow lists first, so no step opens traffic). A change of membership
// only touches ipsets. Any failure rolls back the steps already taken, so the
// previous ruleset stays whole; the first Apply of a process reads what an
// earlier weft left and replaces it in the same way. See Backend.Apply.
package iptables
