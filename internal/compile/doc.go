// Package compile turns a policy.Snapshot into the ir.Ruleset of one node.
//
// Compile is pure and deterministic: no I/O, no clock, and the same snapshot
// gives a byte-identical ruleset whatever order its objects arrived in. Set,
// chain and group names are hashes of what they stand for (as weave-npc's
// shortnames were), so a re-sync of an unchanged cluster changes nothing, and
// a change of membership changes set members, not names.
package compile
