// Package policy holds weft's meaning of Kubernetes network policy, once.
//
// It turns NetworkPolicy, Pod and Namespace objects into a normalised, immutable
// Snapshot and decides any flow with a reference evaluator (Decide). Every other
// part of weft — the compiler, both kernel backends, the blocked-connection logger
// and `weft explain` — is checked against this evaluator.
//
// Policies weft cannot fully understand are kept, not dropped: a broken podSelector
// selects every pod of the policy's namespace, and a broken rule allows nothing, so
// an error never opens traffic. Each such problem is recorded on the policy as a
// FieldError naming the field.
package policy
