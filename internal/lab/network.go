package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
)

// Addressing, all inside weave's 10.32.0.0/12 and fd00::/8, and only in
// namespaces the lab created:
//
//	node i (1…8) pods    10.(32+i).0.0/16, fd00:10:(32+i)::/64, gateway .1 / ::1 on br0
//	inter-node fabric    10.47.0.0/16, fd00:10:47::/64; node i is 10.47.0.i / fd00:10:47::i
//	service cluster IPs  10.46.0.0/16 (never routed; the API server wants a range)
const (
	maxNodes           = 8
	serviceClusterCIDR = "10.46.0.0/16"
	bridgeName         = "br0"
	fabricBridge       = "fab"
	fabricLink         = "fab0" // a node's end of its link to the fabric
	// podIface is the pod's end of its veth.
	podIface = "eth0"
)

// Family is an IP family: 4 or 6.
type Family int

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// Node is a lab node: a network namespace holding a bridge for its pods and a
// link to the other nodes. weft for this node runs inside it.
type Node struct {
	// Name is the Kubernetes node name ("node1", …), for --node-name.
	Name string
	// NetNS is the network namespace's name (for ip netns exec).
	NetNS string
	// PodCIDRs are the node's pod subnets, IPv4 first.
	PodCIDRs []netip.Prefix
	// Gateways are the node's addresses on its pod bridge, IPv4 first.
	Gateways []netip.Addr
	// InternalIPs are the node's addresses on the inter-node fabric, IPv4
	// first; pods of the node have them as host IPs.
	InternalIPs []netip.Addr

	index    int
	ns       *netNS
	nextHost int
}

func nodeAddrs(i int) (cidrs []netip.Prefix, gws, internal []netip.Addr) {
	cidrs = []netip.Prefix{
		netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 32+i)),
		netip.MustParsePrefix(fmt.Sprintf("fd00:10:%d::/64", 32+i)),
	}
	gws = []netip.Addr{
		netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", 32+i)),
		netip.MustParseAddr(fmt.Sprintf("fd00:10:%d::1", 32+i)),
	}
	internal = []netip.Addr{
		netip.MustParseAddr(fmt.Sprintf("10.47.0.%d", i)),
		netip.MustParseAddr(fmt.Sprintf("fd00:10:47::%d", i)),
	}
	return cidrs, gws, internal
}

// hostAddrs returns the addresses of host number h (h ≥ 2) in the node's pod
// subnets.
func (n *Node) hostAddrs(h int) (v4, v6 netip.Addr) {
	b4 := n.PodCIDRs[0].Addr().As4()
	b4[2], b4[3] = byte(h>>8), byte(h)
	b6 := n.PodCIDRs[1].Addr().As16()
	b6[14], b6[15] = byte(h>>8), byte(h)
	return netip.AddrFrom4(b4), netip.AddrFrom16(b6)
}

// Locally administered MAC addresses, fixed so that neighbour entries can be
// written before a device exists: 02:77:TT:xx:xx:xx with TT the kind.
func bridgeMAC(node int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x77, 0x01, 0, 0, byte(node)}
}

func fabricMAC(node int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x77, 0x02, 0, 0, byte(node)}
}

func podMAC(serial int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x77, 0x03, byte(serial >> 16), byte(serial >> 8), byte(serial)}
}

// Exec runs a command inside the node's network namespace and returns its
// combined output.
func (n *Node) Exec(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NetNS, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in node %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// DialContext opens a connection from inside the node's network namespace.
// The lab's API client uses it to reach the API server, which listens only
// there.
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := n.ns.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	return conn, err
}

// setUpFabric creates the namespace that links the nodes: one bridge.
func setUpFabric(ctx context.Context, name string) (*netNS, error) {
	ns, err := createNetNS(ctx, name)
	if err != nil {
		return nil, err
	}
	err = ipBatch(ctx, name, []string{
		"link set lo up",
		"link add " + fabricBridge + " type bridge",
		"link set " + fabricBridge + " up",
	})
	if err != nil {
		ns.delete()
		return nil, fmt.Errorf("set up fabric: %w", err)
	}
	return ns, nil
}

// setUpNode creates node i's namespace: forwarding and br_netfilter on, a pod
// bridge with the gateway addresses, and a veth into the fabric.
func setUpNode(ctx context.Context, prefix string, i int, fabric *netNS) (*Node, error) {
	cidrs, gws, internal := nodeAddrs(i)
	n := &Node{
		Name:        fmt.Sprintf("node%d", i),
		NetNS:       fmt.Sprintf("%snode%d", prefix, i),
		PodCIDRs:    cidrs,
		Gateways:    gws,
		InternalIPs: internal,
		index:       i,
		nextHost:    2,
	}
	ns, err := createNetNS(ctx, n.NetNS)
	if err != nil {
		return nil, err
	}
	n.ns = ns
	fail := func(err error) (*Node, error) {
		ns.delete()
		return nil, fmt.Errorf("set up node %s: %w", n.Name, err)
	}
	if err := sysctl(ctx, n.NetNS,
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
		"net.ipv6.conf.default.accept_dad=0",
		"net.bridge.bridge-nf-call-iptables=1",
		"net.bridge.bridge-nf-call-ip6tables=1",
	); err != nil {
		return fail(fmt.Errorf("%w (the kernel needs br_netfilter: modprobe br_netfilter)", err))
	}
	err = ipBatch(ctx, n.NetNS, []string{
		"link set lo up",
		"link add " + bridgeName + " address " + bridgeMAC(i).String() + " type bridge",
		fmt.Sprintf("addr add %s/16 dev %s", gws[0], bridgeName),
		fmt.Sprintf("addr add %s/64 dev %s nodad", gws[1], bridgeName),
		"link set " + bridgeName + " up",
	})
	if err != nil {
		return fail(err)
	}
	peer := fmt.Sprintf("n%d", i)
	if err := runIP(ctx, fabric.name, "link", "add", peer, "type", "veth", "peer", "name", fabricLink,
		"address", fabricMAC(i).String(), "netns", n.NetNS); err != nil {
		return fail(err)
	}
	if err := ipBatch(ctx, fabric.name, []string{"link set " + peer + " master " + fabricBridge, "link set " + peer + " up"}); err != nil {
		return fail(err)
	}
	err = ipBatch(ctx, n.NetNS, []string{
		fmt.Sprintf("addr add %s/16 dev %s", internal[0], fabricLink),
		fmt.Sprintf("addr add %s/64 dev %s nodad", internal[1], fabricLink),
		"link set " + fabricLink + " up",
	})
	if err != nil {
		return fail(err)
	}
	return n, nil
}

// linkNodes gives every node routes to the others' pod subnets and permanent
// neighbour entries for the others' fabric addresses.
func linkNodes(ctx context.Context, nodes []*Node) error {
	for _, n := range nodes {
		var cmds []string
		for _, o := range nodes {
			if o == n {
				continue
			}
			for f := range 2 {
				cmds = append(cmds,
					fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", o.InternalIPs[f], fabricMAC(o.index), fabricLink),
					fmt.Sprintf("route replace %s via %s dev %s", o.PodCIDRs[f], o.InternalIPs[f], fabricLink))
			}
		}
		if err := ipBatch(ctx, n.NetNS, cmds); err != nil {
			return fmt.Errorf("link node %s to the others: %w", n.Name, err)
		}
	}
	return nil
}
