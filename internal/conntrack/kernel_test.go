package conntrack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/internal/netnstest"
)

// The real-kernel test. The test's private namespace is a router between two
// namespaces it creates, "client" and "server":
//
//	client 10.32.1.2 fd00:1::2 ── router (ip_forward, conntrack, DNAT) ── server 10.32.2.2 fd00:2::2
//
// The router DNATs the service address 10.32.9.9:80 / [fd00:9::9]:80 to the
// server's port 8080. The server echoes TCP and UDP on ports 8080 and 8081.
// The new ruleset revokes port 8080 and keeps 8081.
const (
	revokedPort = 8080
	keptPort    = 8081
	servicePort = 80
)

type side struct{ client, server, router, service netip.Addr }

var sides = map[string]side{
	"IPv4": {netip.MustParseAddr("10.32.1.2"), netip.MustParseAddr("10.32.2.2"), netip.MustParseAddr("10.32.1.1"), netip.MustParseAddr("10.32.9.9")},
	"IPv6": {netip.MustParseAddr("fd00:1::2"), netip.MustParseAddr("fd00:2::2"), netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:9::9")},
}

// revokeNewRuleset is the new ruleset the router applies: established flows
// pass, new TCP and UDP flows are dropped and counted per family and
// protocol, so the test sees each drop instead of inferring it from silence.
const revokeNewRuleset = `
add counter inet weftct new-tcp-IPv4
add counter inet weftct new-tcp-IPv6
add counter inet weftct new-udp-IPv4
add counter inet weftct new-udp-IPv6
add rule inet weftct forward meta nfproto ipv4 ct state new meta l4proto tcp counter name "new-tcp-IPv4" drop
add rule inet weftct forward meta nfproto ipv6 ct state new meta l4proto tcp counter name "new-tcp-IPv6" drop
add rule inet weftct forward meta nfproto ipv4 ct state new meta l4proto udp counter name "new-udp-IPv4" drop
add rule inet weftct forward meta nfproto ipv6 ct state new meta l4proto udp counter name "new-udp-IPv6" drop
`

func TestCutRevokedConnections(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	start := time.Now()
	clientNS, serverNS := buildTopology(t)
	startServer(t, serverNS)

	type conn struct {
		name    string
		c       net.Conn
		flow    Flow
		revoked bool
	}
	var conns []conn
	for _, famName := range []string{"IPv4", "IPv6"} {
		s := sides[famName]
		for _, tc := range []struct {
			network string
			dial    netip.AddrPort
			port    uint16
		}{
			{"tcp", netip.AddrPortFrom(s.service, servicePort), revokedPort}, // through DNAT
			{"tcp", netip.AddrPortFrom(s.server, keptPort), keptPort},
			{"udp", netip.AddrPortFrom(s.server, revokedPort), revokedPort},
			{"udp", netip.AddrPortFrom(s.server, keptPort), keptPort},
		} {
			c := dialFrom(t, clientNS, tc.network, tc.dial)
			local := netip.MustParseAddrPort(c.LocalAddr().String())
			conns = append(conns, conn{
				name:    fmt.Sprintf("%s %s to %s (port %d)", famName, tc.network, tc.dial, tc.port),
				c:       c,
				flow:    Flow{Src: s.client, SrcPort: local.Port(), Dst: s.server, DstPort: tc.port, Protocol: protocolNumber(tc.network)},
				revoked: tc.port == revokedPort,
			})
		}
	}
	for _, cn := range conns {
		if err := echo(cn.c, 5*time.Second); err != nil {
			t.Fatalf("%s does not echo before the cut: %v", cn.name, err)
		}
	}
	// ICMP entries: never judged, never deleted.
	for _, famName := range []string{"IPv4", "IPv6"} {
		ping(t, clientNS, sides[famName])
	}
	// SCTP entries, one revoked (through a DNAT-shaped entry) and one kept per
	// family. This kernel has no SCTP sockets, so they are created through
	// ctnetlink.
	var sctpFlows []Flow
	for _, famName := range []string{"IPv4", "IPv6"} {
		s := sides[famName]
		revoked := createEntry(t, 132, s.client, 5000, s.service, servicePort, s.server, revokedPort)
		kept := createEntry(t, 132, s.client, 5001, s.server, keptPort, s.server, keptPort)
		sctpFlows = append(sctpFlows, revoked, kept)
	}

	// The new ruleset drops new flows, yet established ones still pass:
	// what the cut is for.
	nft(t, revokeNewRuleset)
	for _, cn := range conns {
		if err := echo(cn.c, 5*time.Second); err != nil {
			t.Fatalf("%s stopped echoing before the cut: %v", cn.name, err)
		}
	}

	var asked []Flow
	cutStart := time.Now()
	n, err := New(nil).Cut(func(f Flow) bool {
		asked = append(asked, f)
		return f.DstPort != revokedPort
	})
	cutTook := time.Since(cutStart)
	if err != nil {
		t.Fatalf("Cut: %v", err)
	}

	var wantAsked []Flow
	wantCut := 0
	for _, cn := range conns {
		wantAsked = append(wantAsked, cn.flow)
	}
	wantAsked = append(wantAsked, sctpFlows...)
	for _, f := range wantAsked {
		if f.DstPort == revokedPort {
			wantCut++
		}
	}
	sortFlows(asked)
	sortFlows(wantAsked)
	if diff := cmp.Diff(flowStrings(wantAsked), flowStrings(asked)); diff != "" {
		t.Errorf("keep was asked about other flows than the TCP, UDP and SCTP ones (-want +got):\n%s", diff)
	}
	if n != wantCut {
		t.Errorf("Cut deleted %d entries, want %d", n, wantCut)
	}

	// The table, read with the netlink library's own parser (no SCTP ports).
	left := listEntries(t)
	for _, cn := range conns {
		if got := left[entryKey(cn.flow)]; got == cn.revoked {
			t.Errorf("%s: entry present = %v after the cut, want %v", cn.name, got, !cn.revoked)
		}
	}
	for _, p := range []string{"icmp IPv4", "icmp IPv6"} {
		if !left[p] {
			t.Errorf("the %s entry is gone: Cut must leave other protocols alone", p)
		}
	}
	if got := left["sctp count"]; !got {
		t.Errorf("no SCTP entries left: the kept ones must stay")
	}
	sctpLeft := countSCTP(t)
	if sctpLeft != 2 {
		t.Errorf("%d SCTP entries left, want the 2 kept ones", sctpLeft)
	}

	// End to end: kept connections go on; the next packet of a cut one is
	// new to conntrack, meets the new ruleset, and is dropped.
	for _, cn := range conns {
		if !cn.revoked {
			if err := echo(cn.c, 5*time.Second); err != nil {
				t.Errorf("%s was kept but no longer echoes: %v", cn.name, err)
			}
			continue
		}
		fam := "IPv4"
		if cn.flow.Src.Is6() {
			fam = "IPv6"
		}
		counter := fmt.Sprintf("new-%s-%s", cn.c.LocalAddr().Network(), fam)
		before := readCounter(t, counter)
		cn.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := cn.c.Write([]byte("after the cut\n")); err != nil {
			t.Errorf("%s: write: %v", cn.name, err)
			continue
		}
		if err := waitCounterAbove(t, counter, before, 5*time.Second); err != nil {
			t.Errorf("%s: %v", cn.name, err)
			continue
		}
		// The packet was dropped; nothing can answer it.
		cn.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if b, err := io.ReadAll(io.LimitReader(cn.c, 1)); len(b) > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s was cut, yet read %q, %v", cn.name, b, err)
		}
	}
	t.Logf("Cut judged %d entries and deleted %d in %v; whole test %v", len(asked), n, cutTook, time.Since(start))
}

// TestCutWithoutCapNetAdminSaysSo runs Cut on a thread without
// CAP_NET_ADMIN in its effective set (capabilities are per thread), or
// directly when the test does not run as root.
func TestCutWithoutCapNetAdminSaysSo(t *testing.T) {
	var err error
	if os.Geteuid() != 0 {
		_, err = New(nil).Cut(func(Flow) bool { return true })
	} else {
		if !netnstest.Enter(t) {
			return
		}
		err = onThreadWithout(t, unix.CAP_NET_ADMIN, func() error {
			_, err := New(nil).Cut(func(Flow) bool { return true })
			return err
		})
	}
	if err == nil {
		t.Fatal("Cut without CAP_NET_ADMIN succeeded")
	}
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "needs CAP_NET_ADMIN") || !strings.Contains(err.Error(), "(IPv4)") {
		t.Fatalf("error does not say what is missing: %v", err)
	}
	t.Log(err)
}

// onThreadWithout runs fn on a thread of its own whose effective
// capabilities lack capability. The thread is never handed back to the
// runtime: it ends with its goroutine.
func onThreadWithout(t *testing.T, capability int, fn func() error) error {
	t.Helper()
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			result <- fmt.Errorf("capget: %w", err)
			return
		}
		data[capability/32].Effective &^= 1 << (capability % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			result <- fmt.Errorf("capset: %w", err)
			return
		}
		result <- fn()
	}()
	return <-result
}

// buildTopology creates the client and server namespaces, wires them to the
// test's namespace with veths and makes it a router with conntrack and DNAT.
func buildTopology(t *testing.T) (clientNS, serverNS string) {
	t.Helper()
	prefix := fmt.Sprintf("weftct-%d-", os.Getpid())
	clientNS, serverNS = prefix+"client", prefix+"server"
	// Addresses are usable at once: no duplicate address detection anywhere.
	writeSysctl(t, "net/ipv6/conf/default/accept_dad", "0")
	writeSysctl(t, "net/ipv6/conf/all/accept_dad", "0")
	writeSysctl(t, "net/ipv4/ip_forward", "1")
	writeSysctl(t, "net/ipv6/conf/all/forwarding", "1")
	for i, ns := range []string{clientNS, serverNS} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete namespace %s: %v: %s", ns, err, out)
			}
		})
		ip(t, "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
		host := fmt.Sprintf("veth%d", i+1)
		subnet := i + 1
		ip(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "addr", "add", fmt.Sprintf("10.32.%d.1/24", subnet), "dev", host)
		ip(t, "addr", "add", fmt.Sprintf("fd00:%d::1/64", subnet), "dev", host, "nodad")
		ip(t, "link", "set", host, "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
		ip(t, "-n", ns, "addr", "add", fmt.Sprintf("10.32.%d.2/24", subnet), "dev", "eth0")
		ip(t, "-n", ns, "addr", "add", fmt.Sprintf("fd00:%d::2/64", subnet), "dev", "eth0", "nodad")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "route", "add", "default", "via", fmt.Sprintf("10.32.%d.1", subnet))
		ip(t, "-n", ns, "-6", "route", "add", "default", "via", fmt.Sprintf("fd00:%d::1", subnet))
	}
	// A ct expression turns conntrack on in this namespace (it is enabled per
	// namespace, on first use); weft's own rules do the same on a node.
	nft(t, fmt.Sprintf(`
add table inet weftct
add chain inet weftct prerouting { type nat hook prerouting priority dstnat; policy accept; }
add rule inet weftct prerouting ip daddr %[1]s tcp dport %[3]d dnat ip to %[2]s:%[4]d
add rule inet weftct prerouting ip6 daddr %[5]s tcp dport %[3]d dnat ip6 to [%[6]s]:%[4]d
add chain inet weftct forward { type filter hook forward priority filter; policy accept; }
add rule inet weftct forward ct state established,related accept
`, sides["IPv4"].service, sides["IPv4"].server, servicePort, revokedPort, sides["IPv6"].service, sides["IPv6"].server))
	return clientNS, serverNS
}

// startServer echoes lines over TCP and datagrams over UDP on the revoked
// and the kept port, IPv4 and IPv6.
func startServer(t *testing.T, ns string) {
	t.Helper()
	for _, port := range []int{revokedPort, keptPort} {
		addr := fmt.Sprintf(":%d", port)
		var (
			ln  net.Listener
			pc  net.PacketConn
			err error
		)
		inNamespace(t, ns, func() error {
			if ln, err = net.Listen("tcp", addr); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp", addr)
			return err
		})
		t.Cleanup(func() { ln.Close(); pc.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}
}

func dialFrom(t *testing.T, ns, network string, to netip.AddrPort) net.Conn {
	t.Helper()
	var c net.Conn
	inNamespace(t, ns, func() (err error) {
		c, err = net.DialTimeout(network, to.String(), 5*time.Second)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// echo sends a line and waits for it to come back.
func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echoed %q", got)
	}
	return nil
}

// ping sends one ICMP echo request from the client namespace to the server
// through the router and waits for the reply.
func ping(t *testing.T, ns string, s side) {
	t.Helper()
	network, typ, replyType := "ip4:icmp", byte(8), byte(0)
	if s.client.Is6() {
		network, typ, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var c net.PacketConn
	inNamespace(t, ns, func() (err error) {
		c, err = net.ListenPacket(network, s.client.String())
		return err
	})
	defer c.Close()
	req := []byte{typ, 0, 0, 0, 0x77, 0x65, 0, 1, 'w', 'e', 'f', 't'}
	if s.client.Is4() {
		binary.BigEndian.PutUint16(req[2:], icmpChecksum(req))
	} // The kernel fills in ICMPv6 checksums.
	if _, err := c.WriteTo(req, &net.IPAddr{IP: s.server.AsSlice()}); err != nil {
		t.Fatalf("ping %s: %v", s.server, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ping %s: no reply: %v", s.server, err)
		}
		if n > 0 && buf[0] == replyType {
			return
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// createEntry adds a conntrack entry through ctnetlink, as if the client had
// sent to dst and realDst answered (DNAT when they differ), and returns the
// Flow that Cut should see for it.
func createEntry(t testing.TB, protocol uint8, client netip.Addr, clientPort uint16, dst netip.Addr, dstPort uint16, realDst netip.Addr, realPort uint16) Flow {
	t.Helper()
	fam := uint8(unix.AF_INET)
	if client.Is6() {
		fam = unix.AF_INET6
	}
	flow := &netlink.ConntrackFlow{
		FamilyType: fam,
		Forward:    netlink.IPTuple{SrcIP: client.AsSlice(), DstIP: dst.AsSlice(), Protocol: protocol, SrcPort: clientPort, DstPort: dstPort},
		Reverse:    netlink.IPTuple{SrcIP: realDst.AsSlice(), DstIP: client.AsSlice(), Protocol: protocol, SrcPort: realPort, DstPort: clientPort},
		TimeOut:    600,
	}
	if err := netlink.ConntrackCreate(netlink.ConntrackTable, netlink.InetFamily(fam), flow); err != nil {
		t.Fatalf("create conntrack entry %v: %v", flow, err)
	}
	return Flow{Src: client, SrcPort: clientPort, Dst: realDst, DstPort: realPort, Protocol: protocol}
}

// listEntries reads the table with the netlink library's parser, which is
// independent of this package's. Keys: entryKey of TCP and UDP entries,
// "icmp IPv4"/"icmp IPv6", and "sctp count" when SCTP entries exist (the
// library does not read SCTP ports).
func listEntries(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	for _, fam := range families {
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, netlink.InetFamily(fam.number))
		if err != nil {
			t.Fatalf("list conntrack entries (%s): %v", fam.name, err)
		}
		for _, f := range flows {
			switch f.Forward.Protocol {
			case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
				found["icmp "+fam.name] = true
			case unix.IPPROTO_SCTP:
				found["sctp count"] = true
			default:
				src, _ := netip.AddrFromSlice(f.Forward.SrcIP)
				dst, _ := netip.AddrFromSlice(f.Reverse.SrcIP)
				found[entryKey(Flow{Src: src, SrcPort: f.Forward.SrcPort, Dst: dst, DstPort: f.Reverse.SrcPort, Protocol: f.Forward.Protocol})] = true
			}
		}
	}
	return found
}

// countSCTP counts SCTP entries with the conntrack tool when it is
// installed, else with a dump through this package.
func countSCTP(t *testing.T) int {
	t.Helper()
	if _, err := exec.LookPath("conntrack"); err == nil {
		n := 0
		for _, fam := range []string{"ipv4", "ipv6"} {
			out, err := exec.Command("conntrack", "-L", "-f", fam, "-p", "sctp").Output()
			if err != nil {
				t.Fatalf("conntrack -L -f %s -p sctp: %v", fam, err)
			}
			n += strings.Count(string(out), "sctp ")
		}
		return n
	}
	n := 0
	if _, err := New(nil).Cut(func(f Flow) bool {
		if f.Protocol == unix.IPPROTO_SCTP {
			n++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func entryKey(f Flow) string {
	return fmt.Sprintf("%s %s -> %s", protocolName(f.Protocol), netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort))
}

func flowStrings(flows []Flow) []string {
	var s []string
	for _, f := range flows {
		s = append(s, entryKey(f))
	}
	return s
}

func sortFlows(flows []Flow) {
	slices.SortFunc(flows, func(a, b Flow) int { return strings.Compare(entryKey(a), entryKey(b)) })
}

func protocolNumber(network string) uint8 {
	if network == "tcp" {
		return unix.IPPROTO_TCP
	}
	return unix.IPPROTO_UDP
}

var counterPackets = regexp.MustCompile(`packets (\d+) bytes`)

func readCounter(t *testing.T, name string) int {
	t.Helper()
	out, err := exec.Command("nft", "list", "counter", "inet", "weftct", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list counter %s: %v: %s", name, err, out)
	}
	m := counterPackets.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no packet count in:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// waitCounterAbove polls until the counter exceeds before.
func waitCounterAbove(t *testing.T, name string, before int, timeout time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if n := readCounter(t, name); n > before {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new ruleset dropped nothing within %v (counter %s stayed at %d)", timeout, name, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inNamespace runs fn on a thread that has entered the named network
// namespace; sockets fn opens stay in that namespace. The thread is never
// handed back to the runtime, so no other goroutine runs in the namespace.
func inNamespace(t *testing.T, name string, fn func() error) {
	t.Helper()
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			result <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			result <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		result <- fn()
	}()
	if err := <-result; err != nil {
		t.Fatalf("in namespace %s: %v", name, err)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func nft(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, script)
	}
}

func writeSysctl(t testing.TB, key, value string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, value, err)
	}
}

// TestCutSparesAnEntryReplacedSinceTheDump replaces a refused entry by a new
// one with the same tuple while Cut is still dumping, as a new connection
// reusing the tuple would. The delete names the old entry's id, so the
// kernel refuses it and the new connection, which the ruleset judged on its
// own first packet, stays.
func TestCutSparesAnEntryReplacedSinceTheDump(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	client, server := netip.MustParseAddr("10.32.1.2"), netip.MustParseAddr("10.32.2.2")
	createEntry(t, unix.IPPROTO_UDP, client, 4000, server, 53, server, 53)
	replaced := false
	n, err := New(nil).Cut(func(f Flow) bool {
		if replaced {
			return true // an entry made below, should the dump reach it
		}
		replaced = true
		filter := &netlink.ConntrackFilter{}
		if err := filter.AddProtocol(unix.IPPROTO_UDP); err != nil {
			t.Fatal(err)
		}
		if m, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filter); err != nil || m != 1 {
			t.Fatalf("delete the entry behind Cut's back: %d, %v", m, err)
		}
		// The kernel recycles a freed entry's memory first, and an entry's
		// id derives from its address: let another entry take that memory.
		createEntry(t, unix.IPPROTO_TCP, client, 4001, server, 53, server, 53)
		createEntry(t, unix.IPPROTO_UDP, client, 4000, server, 53, server, 53)
		return false
	})
	if err != nil || n != 0 {
		t.Fatalf("Cut = %d, %v; want 0 deleted, no error", n, err)
	}
	if left := listEntries(t); !left[entryKey(Flow{Src: client, SrcPort: 4000, Dst: server, DstPort: 53, Protocol: unix.IPPROTO_UDP})] {
		t.Fatal("the new entry with the old tuple was deleted")
	}
}
