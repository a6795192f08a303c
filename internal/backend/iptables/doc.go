// Package iptables is weft's iptables+ipset backend: it renders an ir.Ruleset
// into ipsets and filter-table chains, for IPv4 (iptables, family inet sets)
// and IPv6 (ip6tables, family inet6 sets), and applies it atomically.
//
// Layout of the filter table, per family:
//
//	FORWARD         -I 1 ... -j WEFT              (the only rule outside weft's chains;
//	                kept first: see Hook)
//	WEFT            established/related → RETURN; source == destination (a
//	                pod's packets to itself, hairpinned by a service; an
//	                xt_bpf program compares the addresses) → RETURN; IPv6
//	                only: neighbour and router discovery (ICMPv6 133-136, hop
//	                limit 255) → RETURN; -j WEFT-EGRESS; -j WEFT-INGRESS
//	WEFT-EGRESS     per egress group:  -m set --match-set <group>-v4 src -g <group>;
//	                then -m set --match-set weft-unknown-v4 src -j WEFT-EGRESS-UNKNOWN
//	                (the node's pod ranges: an address in no group is unknown)
//	WEFT-INGRESS    per ingress group: -m set --match-set <group>-v4 dst -g <group>;
//	                then the same unknown check on dst → WEFT-INGRESS-UNKNOWN
//	<group>         clear mark; per run of Accept-only chains (see Merged
//	                groups) a few set lookups that -j RETURN; per other
//	                chain -j <policy chain>, and after the first such chain
//	                every rule tests that the mark is not set; still unmarked
//	                → -j WEFT-<DIR>-DROP; clear mark (the packet returns to WEFT)
//	<policy chain>  one rule per ir.Rule: Accept → -g WEFT-ALLOW, Drop →
//	                -j WEFT-<DIR>-DROP, Pass → -j RETURN
//	WEFT-ALLOW      sets AllowMark; being entered by goto, it returns straight
//	                to the group chain, skipping the policy chain's other rules
//	WEFT-EGRESS-DROP, WEFT-INGRESS-DROP   -j DROP (one chain per direction, so
//	                a drop can be attributed to its direction)
//	WEFT-EGRESS-UNKNOWN, WEFT-INGRESS-UNKNOWN   -j DROP (unknown addresses)
//
// # Logging
//
// With ir.Log enabled, the drop chains WEFT-<DIR>-DROP (no policy allows, or
// a Drop rule) and WEFT-<DIR>-UNKNOWN first send new connections to NFLOG,
// limited per source address by a hashlimit table per log point, then drop:
//
//	-A WEFT-INGRESS-DROP -m conntrack --ctstate NEW -m hashlimit --hashlimit-upto 20/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name weft-di-20-100 -j NFLOG --nflog-prefix "weft drop ingress" --nflog-group 86 --nflog-size 128 --nflog-threshold 1
//	-A WEFT-INGRESS-DROP -j DROP
//
// The table's name holds its rate and burst, since the kernel keeps the
// settings of the first rule of a name. The "not a SYN" rule of the group
// chains then drops in place (-j DROP): those packets are no connection
// attempts. With Log.Allowed, accepts into isolated pods' ingress log too:
// merged lookups go (-g) to WEFT-INGRESS-ACCEPT, which logs and, ending,
// returns past the group chain as -j RETURN does; walked chains' Accept
// rules go to WEFT-INGRESS-ALLOW, which logs and sets the mark. The open
// group of pods no policy isolates (a group without policies) does not log.
// Log rules stand only where a packet is dropped or accepted anyway, so
// what passes meets no rule more; the zero Log renders the rules unchanged.
//
// # Audit
//
// While the ruleset audits, WEFT-EGRESS-AUDIT and WEFT-INGRESS-AUDIT log
// new connections ("weft audit <dir>", hashlimit tables weft-we-*/weft-wi-*)
// and set AllowMark. An audited group's end goes there (-j) instead of to
// the drop chain, and its chains' ir.Audit rules go there by goto, as
// Accept rules go to WEFT-ALLOW: what policy would drop is logged and
// passes on as allowed. Enforcing groups' rules are as without audit.
//
// # Merged groups
//
// Per-packet cost does not grow with the number of policies: chains whose
// rules all accept (every NetworkPolicy chain) accept, tried in a row,
// exactly the union of what their rules match. So each run of such chains in
// a group becomes, per family, at most these lookups in the group chain,
// each accepting with -j RETURN (the group chain was entered by goto, so the
// packet goes back to WEFT and on to the ingress check; the mark stays
// clear):
//
//	-m set --match-set weft-m-<h>-any-4 src -j RETURN       hash:net: peers on every protocol and port
//	-p udp -m set --match-set weft-m-<h>-n17-4 src -j RETURN  hash:net: peers on every port of a protocol
//	-m set --match-set weft-m-<h>-p-4 src,dst -j RETURN     hash:net,port: peer,proto:port
//
// (egress: dst and dst,dst). <h> hashes the group and the run's index. A
// peer set's members become the elements (single addresses bare, as ipset
// lists them); any peer is 0.0.0.0/1 and 128.0.0.0/1 (::/1, 8000::/1), since
// hash:net cannot hold /0. ipset keeps one element per port, so port ranges
// are expanded, up to 1,024 ports. What stays a rule in the group chain,
// accepting with -j RETURN: named ports (they resolve on the destination,
// which for ingress is the group member, no key of the sets) and wider port
// ranges. Chains with Drop or Pass rules are walked with the mark as before,
// in order between the runs; lookups after such a chain test that the mark
// is not set. A group whose merged sets would hold more than
// Config.MergeBudget elements, both families together (DefaultMergeBudget,
// 50,000; a negative budget never merges), walks all its chains in both,
// so memory stays bounded. The nftables backend merges by the same plan
// (ir.PlanGroup, with one element per port here); this package only writes
// it. The ir's own sets are created only when a walked chain or a kept
// rule uses them. A pod
// joining a peer set adds its elements to the merged sets built from it: a
// membership change still touches only ipsets.
// When the kernel's ipset table (about 65,000 sets per network namespace,
// shared with other tools) has no room for the merged sets, Apply applies
// the same ruleset with every group walking its chains, which needs fewer
// sets, and reports it (backend.SetLimitReporter; setlimit.go says when it
// merges again).
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
// # Apply
//
// Apply sends `ipset restore` payloads and one `iptables-restore --noflush`
// payload per family that declares (and thereby flushes and refills)
// exactly the chains that changed. A change of membership only touches
// ipsets, unless a pod moves between two groups that both stay (below).
// Every state the kernel passes through on the way accepts nothing that
// both the old and the new ruleset drop (plan.go argues it in full):
//
//  1. create new sets whole, and temporary sets; no rule uses them yet;
//  2. narrow, under the old rules: allow sets (named only by accepting
//     rules) lose members, deny sets (only by dropping rules: the unknown
//     ranges, Drop rules) gain members, so everything is at most as open as
//     before; group sets take the changes that keep each address in its old
//     group (a pod joining a group from "not isolated" is isolated here);
//  3. one iptables-restore per family switches to the new rules at once;
//  4. widen, under the new rules: allow sets gain, group sets take their
//     other changes, deny sets lose; every set reaches its new members;
//  5. settle staged sets (below);
//  6. destroy temporary and unused sets.
//
// So a rule whose ports narrow while its peer set grows never lets the new
// peer through on the old ports: the peer joins after the rule narrowed.
// Large changes of a set go through a temporary copy and `ipset swap` (to
// the old and new members' intersection in step 2, the rest added in
// step 4). Some changes cannot be ordered so: a set used in several ways
// (a Pass rule, or both accepting and dropping rules), or a pod moving from
// group G1 to G2 where both stay and G1 comes first in the dispatch chain
// (in both for a moment, the pod would get G1's new rules). Such a set is
// staged: step 1 fills a copy with its new members, the rules of step 3
// name the copy, so its members change with the rules at once; step 5
// fills the set itself, which no rule names at that moment, and a second
// restore per family names it again (Stats.SetsStaged). A moving pod is
// never dropped for a moment unless the old or the new ruleset drops it.
//
// Any failure rolls back the steps already taken (as far as the tools say
// which line failed), so the previous ruleset stays whole. The first Apply
// of a process reads what an earlier weft left, rules and set members
// (`ipset save`), and replaces it in the same way. See Backend.Apply.
//
// # Hook
//
// weft's jump must be the first rule of FORWARD: a rule another tool
// inserts above it (`-I FORWARD 1 -j ACCEPT`) would let everything through.
// Backend.CheckHooks checks it on every sync, cheaply: it reads only rule 1
// of each family (`iptables -w -S FORWARD 1`; two process starts and a few
// milliseconds), and where another rule stands first it moves the jump back
// on top in one restore (delete and insert together: no moment without
// it), logs what stood in front and returns it; Apply does the same first
// (Stats.HookRepaired), and Backend.HookRepairs counts the repairs. So a
// caller runs CheckHooks on the syncs that apply nothing; the full rewrite
// every 5 minutes (Forget) still repairs whatever else changed.
package iptables
