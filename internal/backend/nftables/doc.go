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
// decides with a few set lookups, however many policies select the pod.
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
//	    ...the same, then ip daddr vmap @ingress-ip4, ip6 daddr vmap @ingress-ip6
//	  }
//	  map ingress-ip4 { type ipv4_addr : verdict;   # local pod address -> its group
//	    elements = { 10.32.0.7 comment "y/a" : jump weft-g-a } }
//	  map ingress-ip6, egress-ip4, egress-ip6 likewise
//
//	  chain weft-g-a {                             # one per ir.Group (ingress here)
//	    ip saddr @allow-any-weft-g-a-4 accept      # peers allowed every protocol and port
//	    ip saddr . meta l4proto . th dport @allow-weft-g-a-4 accept
//	    ip6 saddr . meta l4proto . th dport @allow-weft-g-a-6 accept
//	    ip saddr @weft-ext meta l4proto tcp ip daddr . meta l4proto . th dport @weft-http4 accept  # named port: a rule
//	    jump weft-p-admin                          # a chain with Drop or Pass rules, walked in order
//	    drop comment "ingress weft-g-a: no policy allows"  # the direction's drop
//	  }
//	  set allow-any-weft-g-a-4 { type ipv4_addr; flags interval; }   # 10.40.0.0/16, 10.32.0.9, 0.0.0.0/0 ...
//	  set allow-weft-g-a-4 { type ipv4_addr . inet_proto . inet_service; flags interval; }
//	    # elements = { 10.32.0.8 . tcp . 80, 0.0.0.0/0 . udp . 5000-5010, 10.40.0.0/16 . tcp . 8080-8090 }
//	  chain weft-p-admin { ... }                   # one per ir.Chain that some group walks
//	  set weft-s1 { type ipv4_addr; }                          # ir.AddrSet (pods), if a kept rule uses it
//	  set weft-n1 { type ipv4_addr; flags interval; }          # ir.NetSet (ipBlock - except)
//	  set weft-e1 { type ipv4_addr . inet_proto . inet_service; }  # ir.EndpointSet (named port)
//	  set self-ip4 { type ipv4_addr . ipv4_addr; }  # each isolated local pod address . itself
//	}
//
// # Merged groups
//
// Chains whose rules all accept (every NetworkPolicy chain) accept, tried in
// a row, exactly the union of what their rules match. So each run of such
// chains in a group becomes, per family, one interval set of peers allowed
// on every protocol and port (rules with protocol 0; any peer is 0.0.0.0/0 or
// ::/0) and one concatenated interval set of (peer prefix . protocol . port
// range) — the members of the rules' peer sets, their protocol, their ports
// (0-65535 for every port). The key always includes the protocol, since th
// dport reads no port on ICMP. The kernel refuses overlapping elements, so
// the elements are made disjoint: a prefix inside another gets only the
// ports its outer prefixes do not already allow. Runs after the first get
// sets named ...-r1-4 and so on.
//
// What stays a rule or a chain, in order: rules with a named port (it
// resolves on the destination, which for ingress is the group member, not a
// key of the sets) stay rules in the group chain; chains with Drop or Pass
// rules (ClusterNetworkPolicy) are jumped to as before, between the runs. A
// group whose merged sets would hold more than Config.MergeBudget elements,
// both families together (DefaultMergeBudget, 50,000; a negative budget
// never merges), walks all its chains as before, and the sync says so in a
// debug line: memory stays bounded by the ir's own sets, never groups times
// pods. The ir's chains and sets are rendered only when a walked chain or a
// kept rule uses them. The iptables backend merges by the same plan
// (ir.PlanGroup, with interval sets here); this package only writes it.
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
// not isolated for it). Inside a walked policy chain ir.Accept is `accept`
// (ends the direction), ir.Drop is `drop`, and ir.Pass is `return` (back to
// the group chain, which tries the next policy). Every drop of a new
// connection happens in a group chain, so the chain's direction and name
// attribute it.
//
// # Logging
//
// With ir.Log enabled, new connections are also sent to NFLOG group
// Log.Group, with ir.LogPrefix's prefix, at most Log.Rate per second (bursts
// of Log.Burst) per source address and log point: each log point has, per
// family, a dynamic set of sources whose elements hold the limit, so one
// noisy source spends only its own budget. Log rules carry no verdict:
//
//	set log-drop-in4 { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 1m; }
//	ct state new update @log-drop-in4 { ip saddr limit rate 20/second burst 100 packets } log prefix "weft drop ingress" group 86 snaplen 128 queue-threshold 1
//
// They stand only where a packet is dropped or accepted anyway, so what
// passes meets no rule more than without logging: before the final drop
// of each group chain (log-drop-in4/6, log-drop-eg4/6; the "not a SYN" drop
// before it does not log: those are stray packets of cut connections); in
// the chains unknown-ingress and unknown-egress, to which the unknown-address
// lookups go (log-unknown-*); in drop-ingress and drop-egress, to which
// ir.Drop rules go. With Log.Allowed, what isolated pods' ingress accepts
// (merged lookups, kept rules, walked chains' Accept rules) goes to the
// chain accept-ingress, which logs (log-accept-in4/6) and accepts; the
// open group of pods no policy isolates (a group without policies) does
// not log. The zero Log renders none of these objects.
//
// # Audit
//
// An audited group (ir.Group.Audit) ends, instead of logging and dropping,
// with the log rules of log point "audit" (log-audit-in4/6, log-audit-eg4/6,
// prefix "weft audit ingress|egress") and accept; its chains' ir.Audit rules
// go to the chain audit-ingress or audit-egress, which logs at the same
// point and accepts. These objects exist only while the ruleset audits;
// enforcing groups' chains are rendered as without audit.
//
// # Syncs
//
// The backend keeps what it applied last. A sync whose desired state differs
// only in set and map membership sends only element adds and deletes (a pod
// joining a peer set adds its elements to every merged set built from that
// peer set; deletes go first, since an interval set refuses an element that
// overlaps one still there); chains
// whose rules changed are flushed and refilled, new objects are added and
// objects no longer needed are deleted, all in the same transaction. The first
// sync of a process (and the first after a failed one) adopts whatever an
// earlier weft left: `add table; delete table; add table; ...everything` in one
// transaction, which the kernel commits atomically, so isolated pods are never
// open for a moment. A transaction the kernel rejects changes nothing; the
// error quotes nft's message and the offending line.
package nftables
