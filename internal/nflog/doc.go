// Package nflog turns the packets the kernel logs to weft's NFLOG group into
// explanations: which pods, which direction, which policies.
//
// The kernel rules (both backends) copy the headers of each dropped new
// connection, rate-limited per source address, to the group with a prefix
// that says why (ir.LogPrefix). A Reader receives them without ever blocking
// the kernel or weft; a Logger explains each one with the policy evaluator on
// the cluster view that was enforced when the packet came (a History of the
// views applied), writes one line per connection, folds floods of identical
// lines into one summary per window, and counts.
package nflog
