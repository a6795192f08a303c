// Package nftables is weft's nftables backend: it renders an ir.Ruleset into
// the table `inet weft`, which weft owns entirely, and applies every sync as
// one atomic `nft -f` transaction through sigs.k8s.io/knftables. It never
// reads or touches any other table, so kube-proxy's, iptables-nft's and the
// node's own firewall keep working beside it. Since nftables tables are
// independent, an accept in weft's table never overrides another table's drop;
// weft only drops what policy forbids.
//
// # Layout
//
// Per-packet cost does not grow with the number of pods or policies: one
// verdict-map lookup per direction finds the local pod's group chain, which
// jumps to the chains of just the policies that select that pod; peers are
// matched with set lookups.
//
//	table inet weft {
//	  # egress of local sources, then ingress of local destinations: two base
//	  # chains on the forward hook, ordered by priority. accept ends only the
//	  # current base chain, so an egress accept never skips the ingress check.
//	  chain forward-egress  { type filter hook forward priority filter + 5; policy accept;
//	    ct state established,related accept
//	    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
//	    ip saddr . ip daddr @self-ip4 accept       # a pod's packets to itself
//	    ip6 saddr . ip6 daddr @self-ip6 accept
//	    ip saddr vmap @egress-ip4
//	    ip6 saddr vmap @egress-ip6
//	  }
//	  chain forward-ingress { type filter hook forward priority filter + 6; policy accept;
//	    ct state established,related accept
//	    icmpv6 type { ...neighbour discovery... } ip6 hoplimit 255 accept
//	    ip saddr . ip daddr @self-ip4 accept
//	    ip6 saddr . ip6 daddr @self-ip6 accept
//	    ip daddr vmap @ingress-ip4
//	    ip6 daddr vmap @ingress-ip6
//	  }
//	  map ingress-ip4 { type ipv4_addr : verdict;   # local pod address -> its group
//	    elements = { 10.32.0.7 comment "y/a" : jump weft-g-... } }
//	  map ingress-ip6, egress-ip4, egress-ip6 likewise
//
//	  chain weft-g-...   {                         # one per ir.Group
//	    jump weft-p-aaa comment "y/allow-web"      # its policies, in order
//	    jump weft-p-bbb comment "y/deny-all"
//	    drop comment "ingress weft-g-...: no policy allows"  # the direction's drop
//	  }
//	  chain weft-p-aaa {                           # one per ir.Chain
//	    ip saddr @weft-s1 meta l4proto tcp th dport 80 accept comment "y/allow-web ingress[0]"
//	    ip6 saddr @weft-s2 meta l4proto tcp th dport 80 accept comment "y/allow-web ingress[0]"
//	    ip saddr @weft-n1 meta l4proto tcp ip daddr . meta l4proto . th dport @weft-e1 accept comment "..."
//	    meta nfproto ipv4 accept comment "..."     # a rule with any peer, any port
//	  }
//	  set weft-s1 { type ipv4_addr; }                          # ir.AddrSet (pods)
//	  set weft-n1 { type ipv4_addr; flags interval; }          # ir.NetSet (ipBlock - except)
//	  set weft-e1 { type ipv4_addr . inet_proto . inet_service; }  # ir.EndpointSet (named port)
//	  set self-ip4 { type ipv4_addr . ipv4_addr; }  # each isolated local pod address . itself
//	}
//
// Only the forward hook is used: packets between the node and its pods
// (kubelet probes, a pod calling its node) never take it and are always
// allowed, as ir says. A pod's packets to itself normally stay inside the
// pod; when a service sends them back to it through the node, the self sets
// let them pass, again as ir says.
//
// IPv6 neighbour and router discovery (ICMPv6 types 133-136 with hop limit
// 255) always passes: it is IPv6's ARP, no connection, and without it an
// isolated pod could reach nothing over IPv6 (ARP never meets these hooks).
//
// A packet whose local address is in no map passes that direction (the pod is
// not isolated for it). Inside a policy chain ir.Accept is `accept` (ends the
// direction), ir.Drop is `drop`, and ir.Pass is `return` (back to the group
// chain, which tries the next policy). Every drop of a new connection happens
// in a group chain, so the chain's direction and name attribute it.
//
// # Syncs
//
// The backend keeps what it applied last. A sync whose desired state differs
// only in set and map membership sends only element adds and deletes; chains
// whose rules changed are flushed and refilled, new objects are added and
// objects no longer needed are deleted, all in the same transaction. The first
// sync of a process (and the first after a failed one) adopts whatever an
// earlier weft left: `add table; delete table; add table; ...everything` in one
// transaction, which the kernel commits atomically, so isolated pods are never
// open for a moment. A transaction the kernel rejects changes nothing; the
// error quotes nft's message and the offending line.
package nftables
