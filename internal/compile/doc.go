// Package compile turns a policy.Snapshot into the ir.Ruleset of one node.
//
// Compile is pure and deterministic: no I/O, no clock, and the same snapshot
// gives a byte-identical ruleset whatever order its objects arrived in. Set,
// chain and group names are hashes of what they stand for (as weave-npc's
// shortnames were), so a re-sync of an unchanged cluster changes nothing, and
// a change of membership changes set members, not names.
//
// ClusterNetworkPolicy tiers take no new ir form. A local pod's group, per
// direction, tries in order:
//
//   - the Admin tier chain: the rules of the Admin policies selecting the
//     pod, in evaluation order (priority, then name, then rule order), each
//     Accept, Drop (Deny) or Pass. One chain per tier, so that a Pass, which
//     leaves the current chain, skips exactly the rest of the tier;
//   - if NetworkPolicy isolates the pod: its policies' chains, and the
//     group's end drops what none accepts (the Baseline tier never sees it);
//   - otherwise the Baseline tier chain, then a chain that accepts
//     everything (no tier decided: allowed).
//
// So the tracer, both renderers and the merge optimisation (which merges
// runs of accept-only chains: the NetworkPolicy chains and the final
// accept-all) follow tiers without knowing of them. A tier chain is walked
// rule by rule: its cost per new connection grows with the rules of the
// policies selecting the pod.
//
// Audit mode. Whether a local pod is enforced or audited is decided per
// pod by its namespace: the annotation weft.dev/enforcement "audit" or
// "enforce" overrides the node's default (Options.Mode, weft run --mode)
// both ways, so a namespace can be audited on enforcing nodes and kept
// enforced on auditing ones; any other value enforces (an error never
// opens). Audit applies to both directions of the pod: its ingress (it is
// the destination) and its egress (the source). An audited pod's group is
// an audited ir group (ir.Group.Audit) of its own, and the chains it
// reaches are audit variants where they hold Drop rules (a Deny of a
// ClusterNetworkPolicy tier): copies whose Drop rules are ir.Audit, named
// apart, so enforcing groups that share the original chain keep it
// unchanged. Chains that drop nothing (NetworkPolicy chains, the
// accept-all) are shared by both modes. The open group audits nothing: it
// drops nothing. Unknown addresses stay dropped in both modes.
package compile
