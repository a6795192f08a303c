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
package compile
