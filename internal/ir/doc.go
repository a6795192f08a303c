// Package ir is weft's backend-neutral ruleset: what the kernel must do on one
// node, with no iptables or nftables syntax in it.
//
// A Ruleset holds named address sets (per IP family), policy chains of ordered
// rules, and groups that dispatch each isolated local pod address to the chains
// of the policies that select it. Both kernel backends render a Ruleset; the
// Tracer interprets one, so tests can compare it packet by packet with the
// policy evaluator.
//
// Semantics of a group, for a packet whose local pod address (destination for
// Ingress, source for Egress) is a member: the chains are tried in order and the
// first rule that matches decides (Accept). A packet that no rule accepts is
// dropped. A packet whose address is in no group of a direction passes that
// direction, unless the address is in the ruleset's UnknownRanges (the
// node's pod ranges): then it is dropped there, since it belongs to a pod
// weft does not know yet or to none. Known local pods that no policy
// isolates are then members of an "open" group whose one chain accepts
// everything, so "known" is always "in some group".
//
// Packets between the node and its pods are always accepted: they never take
// the forward path, so backends hook only forwarding. A pod's packets to
// itself (a service sending them back) pass its groups; those of an unknown
// address are dropped like any other. Backends also always pass packets of established and
// related connections (conntrack) and IPv6 neighbour discovery (ICMPv6 types
// 133-136 with hop limit 255), which no NetworkPolicy can express and without
// which an isolated pod loses IPv6 altogether. Verdict carries
// Drop (ends the direction with a drop) and Pass (leaves the current chain for
// the group's next one) too, so ordered tiers (ClusterNetworkPolicy) fit
// without change.
//
// Audit. A group may be audited (Group.Audit): its members' direction is
// watched, not enforced. What an enforcing group would drop — at its end,
// where no chain accepted, or by a Drop rule of a chain it reaches — an
// audited group logs to NFLOG as would-be-dropped (LogAction Audited,
// prefix "weft audit ingress|egress", rate-limited like drops) and lets
// pass, ending the direction as an Accept does. Chains reached by audited
// groups hold Audit verdicts where those of enforcing groups hold Drop, so
// a chain is never shared between the two modes unless it drops nothing
// (Validate checks both ways, and that the log is on): a backend renders
// each verdict in place and never needs to know which group called. What
// is not about a known pod's policy stays a drop in both modes: unknown
// addresses (UnknownRanges) and TCP packets that start no connection. So
// the packets an audited ruleset logs as would-be-dropped are exactly
// those its enforcing twin drops (Result.WouldDrop), and an enforcing
// group's rules, hence its cost per packet, do not change.
//
// What backends share beyond the data is here too: Ruleset.Validate checks
// a ruleset against these rules before any backend renders it, and
// PlanGroup plans which runs of a group's Accept-only chains become set
// lookups (merge.go), within one budget; the backends only write the plan.
package ir
