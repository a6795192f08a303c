package iptables

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
)

// The node side of every pod's veth has these addresses; pods route through them.
var (
	nodeAddr  = netip.MustParseAddr("10.32.255.1")
	nodeAddr6 = netip.MustParseAddr("fd00::ff:1")
)

// pod is a network namespace held open by a sleeping process, linked to the
// test's namespace (the node) by a veth pair, with routes through the node.
type pod struct {
	name string
	pid  int
}

func startPod(t *testing.T, name string, addrs ...netip.Addr) *pod {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pod{name: name, pid: cmd.Process.Pid}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; ; i++ { // until unshare has made the namespace
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.pid)); err == nil && ns != self {
			break
		}
		if i == 1000 {
			t.Fatalf("pod %s: no namespace of its own after 1s", name)
		}
		time.Sleep(time.Millisecond)
	}
	// No duplicate address detection on the new links: a tentative
	// link-local address delays neighbour discovery, and the first IPv6
	// packets would look dropped.
	p.sh(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	host := "v-" + name
	sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(p.pid))
	sh(t, "ip", "link", "set", host, "up")
	sh(t, "ip", "addr", "add", nodeAddr.String()+"/32", "dev", host)
	sh(t, "ip", "addr", "add", nodeAddr6.String()+"/128", "dev", host, "nodad")
	p.sh(t, "ip", "link", "set", "lo", "up")
	p.sh(t, "ip", "link", "set", "eth0", "up")
	for _, a := range addrs {
		if a.Is4() {
			p.sh(t, "ip", "addr", "add", a.String()+"/32", "dev", "eth0")
			sh(t, "ip", "route", "add", a.String()+"/32", "dev", host)
		} else {
			p.sh(t, "ip", "addr", "add", a.String()+"/128", "dev", "eth0", "nodad")
			sh(t, "ip", "-6", "route", "add", a.String()+"/128", "dev", host)
		}
	}
	p.sh(t, "ip", "route", "add", nodeAddr.String(), "dev", "eth0")
	p.sh(t, "ip", "route", "add", "default", "via", nodeAddr.String(), "dev", "eth0")
	p.sh(t, "ip", "-6", "route", "add", nodeAddr6.String(), "dev", "eth0")
	p.sh(t, "ip", "-6", "route", "add", "default", "via", nodeAddr6.String(), "dev", "eth0")
	return p
}

func (p *pod) sh(t *testing.T, args ...string) string {
	t.Helper()
	return sh(t, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(p.pid) + "/ns/net"}, args...)...)
}

// connect opens a TCP connection from p (nil: the node itself) to dst:port
// with bash's /dev/tcp. Nothing listens, so a SYN that gets through is
// answered by a reset ("refused"): passed; a dropped one times out.
func connect(t *testing.T, p *pod, dst netip.Addr, port uint16) (passed bool) {
	t.Helper()
	return connectWithin(t, p, dst, port, "0.8")
}

// connectWithin is connect that gives up after timeout seconds.
func connectWithin(t *testing.T, p *pod, dst netip.Addr, port uint16, timeout string) (passed bool) {
	t.Helper()
	// Forget the neighbours first, so every connection needs ARP or IPv6
	// neighbour discovery, which weft must let through.
	if p != nil {
		p.sh(t, "ip", "neigh", "flush", "all")
		p.sh(t, "ip", "-6", "neigh", "flush", "all")
	}
	sh(t, "ip", "neigh", "flush", "all")
	sh(t, "ip", "-6", "neigh", "flush", "all")
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", dst, port)
	args := []string{timeout, "bash", "-c", script}
	name := "timeout"
	if p != nil {
		args = append([]string{"--net=/proc/" + strconv.Itoa(p.pid) + "/ns/net", "timeout"}, args...)
		name = "nsenter"
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	switch {
	case strings.Contains(string(out), "refused"):
		return true
	case err == nil:
		t.Fatalf("connect %s:%d: something listens there, the test assumes nothing does", dst, port)
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 124 {
		return false
	}
	t.Fatalf("connect to %s:%d: %v: %s", dst, port, err, out)
	return false
}

// dropCounts reads the packet counters of the two drop chains.
func dropCounts(t *testing.T, mode Mode, fam ir.Family) (egress, ingress int) {
	t.Helper()
	out := sh(t, toolsFor(mode).save[famIndex(fam)], "-c", "-t", "filter")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		var pkts, bytes int
		var chain string
		if _, err := fmt.Sscanf(line, "[%d:%d] -A %s -j DROP", &pkts, &bytes, &chain); err != nil {
			continue
		}
		switch chain {
		case chainEgressDrop:
			egress = pkts
		case chainIngressDrop:
			ingress = pkts
		}
	}
	return egress, ingress
}

func TestKernelPacketsNFT(t *testing.T)    { inNamespace(t, ModeNFT, testPackets) }
func TestKernelPacketsLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testPackets) }

// testPackets sends real TCP SYNs between pod namespaces through the node's
// FORWARD hook (and some to the node itself) and checks that the kernel passes or drops each
// as the ir's Tracer says, and that a drop counts in its direction's chain.
func testPackets(t *testing.T, mode Mode) {
	sh(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	sh(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	podD6 := netip.MustParseAddr("fd00::2:3")
	podE := netip.MustParseAddr("10.33.0.5") // in the ipBlock set: Pass in one chain, Accept in the next, Drop for egress
	pods := map[string]*pod{
		"a": startPod(t, "a", podA, podA6),
		"b": startPod(t, "b", podB, podB6),
		"c": startPod(t, "c", podC, podC6),
		"d": startPod(t, "d", podD, podD6),
		"e": startPod(t, "e", podE),
	}
	rs := sampleRuleset()
	b := newTestBackend(t, mode)
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	tracer := ir.NewTracer(rs)
	const (
		pass          = "pass"
		dropByEgress  = "egress"
		dropByIngress = "ingress"
	)
	// A service address that the node sends back to pod a (a hairpin):
	// a's packets to itself then cross FORWARD, and must pass.
	vip := netip.MustParseAddr("10.32.254.1")
	tool := "iptables-" + string(mode)
	sh(t, tool, "-t", "nat", "-A", "PREROUTING", "-d", vip.String(), "-p", "tcp", "-j", "DNAT", "--to-destination", podA.String())
	sh(t, tool, "-t", "nat", "-A", "POSTROUTING", "-s", podA.String(), "-d", podA.String(), "-j", "MASQUERADE")
	for _, tc := range []struct {
		from string // "" is the node
		src  netip.Addr
		dst  netip.Addr
		port uint16
		want string
	}{
		{"a", podA, vip, 80, pass},             // a to itself through a service: the node sends it back
		{"b", podB6, podC6, 80, pass},          // IPv6 egress allowed: needs neighbour discovery with the node
		{"b", podB6, podC6, 81, dropByEgress},  // IPv6 egress, another port
		{"b", podB6, nodeAddr6, 80, pass},      // IPv6 to its node
		{"c", podC, podA, 80, pass},            // allowed peer, port in range
		{"d", podD, podA, 80, dropByIngress},   // not an allowed peer
		{"d", podD, podA, 8080, pass},          // named port, any peer
		{"e", podE, podA, 80, pass},            // Pass in the first chain, Accept in the second
		{"b", podB, podC, 80, dropByEgress},    // b may only reach c on udp/53
		{"b", podB, podA, 443, dropByIngress},  // egress allows 443, a's ingress does not
		{"b", podB, podD, 443, pass},           // egress 443 to the world, d is not isolated
		{"b", podB, podE, 443, dropByEgress},   // the Drop rule comes before the 443 Accept
		{"c", podC, podD, 80, pass},            // nobody isolated
		{"c", podC6, podA6, 85, pass},          // IPv6 allowed peer
		{"d", podD6, podA6, 85, dropByIngress}, // IPv6 other peer
		{"", nodeAddr, podA, 22, pass},         // the node itself is never filtered
		{"b", podB, nodeAddr, 22, pass},        // a pod and its node may always talk (INPUT is not hooked)
		{"a", podA, podD, 9999, pass},          // a is not isolated for egress
		{"d", podD6, podC6, 9999, pass},        // IPv6, nobody isolated
		{"b", podB, podA, 8080, dropByEgress},  // egress allows only 443 to the world: a named port of a does not help
	} {
		name := fmt.Sprintf("%s→%s:%d", tc.src, tc.dst, tc.port)
		dst := tc.dst // as FORWARD sees it
		if dst == vip {
			dst = podA
		}
		tr := tracer.Trace(ir.Packet{Src: tc.src, Dst: dst, Protocol: protoTCP, Port: tc.port, FromHost: tc.from == "", ToHost: tc.dst == nodeAddr || tc.dst == nodeAddr6})
		traced := pass
		if !tr.Accepted {
			traced = tr.Direction.String()
		}
		want := tc.want
		if traced != want {
			// the table is wrong, or the tracer is: the kernel must follow the ir
			t.Errorf("%s: table says %s, ir.Tracer says %s; checking the kernel against the tracer", name, want, traced)
			want = traced
		}
		fam := ir.FamilyOf(tc.dst)
		eg0, in0 := dropCounts(t, mode, fam)
		got := connect(t, pods[tc.from], tc.dst, tc.port)
		eg1, in1 := dropCounts(t, mode, fam)
		switch {
		case want == pass && !got:
			t.Errorf("%s: dropped, want passed", name)
		case want != pass && got:
			t.Errorf("%s: passed, want dropped by %s", name, want)
		case want == dropByEgress && (eg1 == eg0 || in1 != in0):
			t.Errorf("%s: drop counters egress %d→%d ingress %d→%d, want only egress to grow", name, eg0, eg1, in0, in1)
		case want == dropByIngress && (in1 == in0 || eg1 != eg0):
			t.Errorf("%s: drop counters egress %d→%d ingress %d→%d, want only ingress to grow", name, eg0, eg1, in0, in1)
		case want == pass && (in1 != in0 || eg1 != eg0):
			t.Errorf("%s: passed, but a drop counter grew", name)
		}
	}
}

func TestKernelPacketMembershipChange(t *testing.T) {
	if !netnstest.Enter(t, "ipset", "iptables-nft-restore", "nsenter") {
		return
	}
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	a, d := startPod(t, "a", podA), startPod(t, "d", podD)
	_ = a
	rs := sampleRuleset()
	b := newTestBackend(t, ModeNFT)
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if connect(t, d, podA, 80) {
		t.Fatal("d reaches a:80 before it is an allowed peer")
	}
	rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, podD) // d joins the allowed peers
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if !connect(t, d, podA, 80) {
		t.Error("d does not reach a:80 after it joined the allowed peers")
	}
	rs.Groups[1].Members = rs.Groups[1].Members[1:] // a's IPv4 address is no longer isolated
	rs.Sets[2].Addrs = rs.Sets[2].Addrs[:1]
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if !connect(t, d, podA, 81) {
		t.Error("d does not reach a:81 after a left the isolating group")
	}
}
