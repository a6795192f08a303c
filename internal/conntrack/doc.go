// Package conntrack cuts established connections that a new ruleset no longer
// admits.
//
// weft's rules accept `ct state established,related` before any policy check,
// so withdrawing an allowance alone leaves the connections it admitted
// running. After a sync the caller hands Cutter.Cut a keep function built from
// the new ruleset; Cut dumps the kernel's connection tracking table through
// the nf_conntrack netlink interface (ctnetlink), asks keep about every TCP,
// UDP and SCTP entry, and deletes the entries keep refuses. The next packet of
// such a connection finds no entry, is tracked as new and meets the new rules.
//
// The package works in the network namespace of the calling thread, the
// node's namespace for weft, and needs CAP_NET_ADMIN there.
package conntrack
