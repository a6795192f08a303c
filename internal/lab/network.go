package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
)

// Addressing, all inside weave's 10.32.0.0/12 and fd00::/8, and only in
// namespaces the lab created. It matches the standard model of
// internal/scenarios, so its scenarios run unchanged on the lab:
//
//	node i (1…8)         10.32.0.i and fd00::i, named node-i
//	pods                 any address given in PodSpec; by default the next of
//	                     10.(40+i).0.0/16 and fd00::4i:0:0/96 of their node
//	service cluster IPs  10.46.0.0/16 (never routed; the API server wants one)
//
// Every address is a host route (/32, /128): the node routes each of its pods
// to its bridge and each remote pod to that pod's node; a pod routes its
// same-node peers directly over the bridge (bridged traffic, seen by
// netfilter through br_netfilter) and everything else to its node. Neighbour
// entries are permanent, with fixed MAC addresses.
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

func familyIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// Node is a lab node: a network namespace holding a bridge for its pods and a
// link to the other nodes. weft for the node runs inside it, and so do
// servers on ServePorts that answer with the node's name.
type Node struct {
	// Name is the Kubernetes node name ("node-1", …), for --node-name.
	Name string
	// NetNS is the network namespace's name (for ip netns exec).
	NetNS string
	// IPs are the node's addresses, IPv4 first: its pods' host IPs and the
	// source of the node's own connections.
	IPs []netip.Addr

	index    int
	ns       *netNS
	nextHost int
	closers  []io.Closer
}

// IP returns the node's address of family f.
func (n *Node) IP(f Family) netip.Addr { return n.IPs[familyIndex(f)] }

// sameFamily returns the node's address of ip's family.
func (n *Node) sameFamily(ip netip.Addr) netip.Addr {
	if ip.Is4() {
		return n.IPs[0]
	}
	return n.IPs[1]
}

func nodeIPs(i int) []netip.Addr {
	return []netip.Addr{
		netip.AddrFrom4([4]byte{10, 32, 0, byte(i)}),
		netip.MustParseAddr(fmt.Sprintf("fd00::%x", i)),
	}
}

// PodCIDRs are the node's pod ranges (its Node's spec.podCIDRs), IPv4
// first: those of its default pod addresses, 10.(40+i).0.0/16 and
// fd00::4i:0:0/96. Pods given other addresses (PodSpec.IPv4/IPv6) are
// outside them.
func (n *Node) PodCIDRs() []netip.Prefix {
	b6 := [16]byte{0: 0xfd}
	b6[11] = byte(0x40 + n.index)
	return []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(40 + n.index), 0, 0}), 16),
		netip.PrefixFrom(netip.AddrFrom16(b6), 96),
	}
}

// nextPodAddrs returns the node's next free default pod addresses.
func (n *Node) nextPodAddrs() (v4, v6 netip.Addr) {
	h := n.nextHost
	n.nextHost++
	v4 = netip.AddrFrom4([4]byte{10, byte(40 + n.index), byte(h >> 8), byte(h)})
	b6 := [16]byte{0: 0xfd}
	b6[11] = byte(0x40 + n.index) // reads as fd00::4i:…
	b6[14], b6[15] = byte(h>>8), byte(h)
	return v4, netip.AddrFrom16(b6)
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
// bridge, a veth into the fabric holding the node's addresses, and servers.
func setUpNode(ctx context.Context, prefix string, i int, fabric *netNS) (*Node, error) {
	n := &Node{
		Name:     fmt.Sprintf("node-%d", i),
		NetNS:    fmt.Sprintf("%snode-%d", prefix, i),
		IPs:      nodeIPs(i),
		index:    i,
		nextHost: 2,
	}
	ns, err := createNetNS(ctx, n.NetNS)
	if err != nil {
		return nil, err
	}
	n.ns = ns
	fail := func(err error) (*Node, error) {
		n.teardown()
		return nil, fmt.Errorf("set up node %s: %w", n.Name, err)
	}
	if err := sysctl(ctx, n.NetNS,
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.bridge.bridge-nf-call-iptables=1",
		"net.bridge.bridge-nf-call-ip6tables=1",
	); err != nil {
		return fail(fmt.Errorf("%w (the kernel needs br_netfilter: modprobe br_netfilter)", err))
	}
	err = ipBatch(ctx, n.NetNS, []string{
		"link set lo up",
		"link add " + bridgeName + " address " + bridgeMAC(i).String() + " type bridge",
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
		fmt.Sprintf("addr add %s/32 dev %s", n.IPs[0], fabricLink),
		fmt.Sprintf("addr add %s/128 dev %s nodad", n.IPs[1], fabricLink),
		"link set " + fabricLink + " up",
	})
	if err != nil {
		return fail(err)
	}
	if n.closers, err = serve(n.ns, servedPorts(nil), n.Name); err != nil {
		return fail(err)
	}
	return n, nil
}

func (n *Node) teardown() error {
	for _, c := range n.closers {
		c.Close()
	}
	n.closers = nil
	return n.ns.delete()
}

// linkNodes gives every node host routes and permanent neighbour entries for
// the others' addresses on the fabric.
func linkNodes(ctx context.Context, nodes []*Node) error {
	for _, n := range nodes {
		var cmds []string
		for _, o := range nodes {
			if o == n {
				continue
			}
			for _, ip := range o.IPs {
				cmds = append(cmds,
					fmt.Sprintf("route replace %s dev %s", hostPrefix(ip), fabricLink),
					neighCmd(ip, fabricMAC(o.index), fabricLink))
			}
		}
		if err := ipBatch(ctx, n.NetNS, cmds); err != nil {
			return fmt.Errorf("link node %s to the others: %w", n.Name, err)
		}
	}
	return nil
}

func hostPrefix(ip netip.Addr) netip.Prefix {
	return netip.PrefixFrom(ip, ip.BitLen())
}

func neighCmd(ip netip.Addr, mac net.HardwareAddr, dev string) string {
	return fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", ip, mac, dev)
}
