package nftables

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/nflog/nflogtest"
	"github.com/weftnet/weft/internal/policy"
)

// TestKernelLog applies a ruleset with ir.DefaultLog (and Allowed) and
// checks that nft takes it, that the kernel holds what was rendered, and
// that real connections reach an NFLOG socket of group 86 with the right
// prefix and the packet's addresses: a dropped one into an isolated pod, an
// accepted one (Allowed), one to an unknown address of the pod ranges; and
// that Cleanup removes it all.
func TestKernelLog(t *testing.T) {
	if !netnstest.Enter(t, "nft", "nsenter") {
		return
	}
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Fatalf("enable forwarding in the test namespace: %v", err)
		}
	}
	a, bPod, c := startPod(t, 1, "a"), startPod(t, 2, "b"), startPod(t, 3, "c")
	pods := []*podNet{a, bPod, c}
	listenIn(t, a.pid, 80)
	// An address of the pod ranges that no pod holds, routed to c's link
	// so that packets to it cross the forward hook.
	unknownAddr := netip.MustParseAddr("10.32.9.9")
	run(t, "ip", "route", "add", unknownAddr.String()+"/32", "dev", "wp3")

	l := ir.DefaultLog
	l.Allowed = true
	rs := compile.CompileWith(packetTestSnapshot(pods, map[string]string{"a": "a", "b": "b", "c": "c"}), compile.Options{
		Node: "node-1", Log: l,
		PodRanges: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/48")},
	})
	be := newKernelBackend(t)
	if err := be.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply with logging: %v", err)
	}
	kernelMatches(t, rs)
	nfl := nflogtest.Listen(t, l.Group)

	for _, tc := range []struct {
		name     string
		from     *podNet
		dst      netip.AddrPort
		src      netip.Addr
		connects bool
		prefix   string
	}{
		{"c to isolated a: dropped", c, netip.AddrPortFrom(a.v4, 80), c.v4, false, ir.LogPrefix(ir.Dropped, ir.Ingress)},
		{"c to isolated a over v6: dropped", c, netip.AddrPortFrom(a.v6, 80), c.v6, false, ir.LogPrefix(ir.Dropped, ir.Ingress)},
		{"b to a: allowed", bPod, netip.AddrPortFrom(a.v4, 80), bPod.v4, true, ir.LogPrefix(ir.Accepted, ir.Ingress)},
		{"c to an unknown address", c, netip.AddrPortFrom(unknownAddr, 80), c.v4, false, ir.LogPrefix(ir.Unknown, ir.Ingress)},
	} {
		ok, err := connects(tc.from.pid, tc.dst)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ok != tc.connects {
			t.Errorf("%s: connected=%v, want %v", tc.name, ok, tc.connects)
		}
		m, found := nfl.Wait(tc.prefix, tc.src, tc.dst.Addr())
		if !found {
			t.Errorf("%s: no NFLOG message %q %s -> %s; got %+v", tc.name, tc.prefix, tc.src, tc.dst.Addr(), nfl.Messages())
			continue
		}
		if m.Length == 0 || m.Length > int(l.SnapLen) {
			t.Errorf("%s: %d bytes of the packet copied, want 1 to %d", tc.name, m.Length, l.SnapLen)
		}
	}
	// The source of the drops has its element, with its limit, in the
	// ingress drop set.
	if out := nftCmd(t, "list", "set", "inet", tableName, logSetName(ir.Dropped, ir.Ingress, ir.IPv4)); !strings.Contains(out, c.v4.String()) {
		t.Errorf("log-drop-in4 does not hold %s:\n%s", c.v4, out)
	}
	for _, m := range nfl.Messages() {
		if _, _, ok := ir.ParseLogPrefix(m.Prefix); !ok {
			t.Errorf("message with prefix %q, which ir.ParseLogPrefix does not read", m.Prefix)
		}
	}
	t.Logf("%d NFLOG messages", len(nfl.Messages()))

	if err := be.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := nftCmd(t, "list", "tables"); strings.Contains(out, tableName) {
		t.Errorf("table left after Cleanup:\n%s", out)
	}
}

// TestKernelAudit compiles the packet test's cluster with namespace y
// audited: nft takes it, the kernel holds what was rendered, a connection
// policy would drop into a passes and reaches NFLOG as "weft audit
// ingress", b's egress that policy would drop passes as "weft audit
// egress", and an unknown address is still dropped.
func TestKernelAudit(t *testing.T) {
	if !netnstest.Enter(t, "nft", "nsenter") {
		return
	}
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Fatalf("enable forwarding in the test namespace: %v", err)
		}
	}
	a, bPod, c := startPod(t, 1, "a"), startPod(t, 2, "b"), startPod(t, 3, "c")
	pods := []*podNet{a, bPod, c}
	listenIn(t, a.pid, 80)
	listenIn(t, c.pid, 80)
	unknownAddr := netip.MustParseAddr("10.32.9.9")
	run(t, "ip", "route", "add", unknownAddr.String()+"/32", "dev", "wp3")

	snap := packetTestSnapshot(pods, map[string]string{"a": "a", "b": "b", "c": "c"})
	snap.Namespaces["y"].Annotations = map[string]string{policy.EnforcementAnnotation: "audit"}
	rs := compile.CompileWith(snap, compile.Options{
		Node: "node-1", Log: ir.DefaultLog,
		PodRanges: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/48")},
	})
	be := newKernelBackend(t)
	if err := be.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply with audit: %v", err)
	}
	kernelMatches(t, rs)
	// weft status --verify reads the audit rules back as written.
	if drift, err := be.Verify(context.Background(), false); err != nil || len(drift) != 0 {
		t.Fatalf("Verify right after Apply with audit: drift %v, error %v; want none", drift, err)
	}
	nfl := nflogtest.Listen(t, ir.DefaultLog.Group)
	for _, tc := range []struct {
		name     string
		from     *podNet
		dst      netip.AddrPort
		src      netip.Addr
		connects bool
		prefix   string
	}{
		{"c to audited a: would be dropped, passes", c, netip.AddrPortFrom(a.v4, 80), c.v4, true, ir.LogPrefix(ir.Audited, ir.Ingress)},
		{"c to audited a over v6", c, netip.AddrPortFrom(a.v6, 80), c.v6, true, ir.LogPrefix(ir.Audited, ir.Ingress)},
		{"b's audited egress to c", bPod, netip.AddrPortFrom(c.v4, 80), bPod.v4, true, ir.LogPrefix(ir.Audited, ir.Egress)},
		{"c to an unknown address: still dropped", c, netip.AddrPortFrom(unknownAddr, 80), c.v4, false, ir.LogPrefix(ir.Unknown, ir.Ingress)},
	} {
		// A connection that must pass gets three tries: the kernel's
		// neighbour table is shared with whatever else runs on the
		// machine, and a first IPv6 packet can be lost to it.
		var ok bool
		for try := 0; try < 3 && !ok; try++ {
			var err error
			if ok, err = connects(tc.from.pid, tc.dst); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !tc.connects {
				break
			}
		}
		if ok != tc.connects {
			t.Errorf("%s: connected=%v, want %v", tc.name, ok, tc.connects)
		}
		if _, found := nfl.Wait(tc.prefix, tc.src, tc.dst.Addr()); !found {
			t.Errorf("%s: no NFLOG message %q %s -> %s; got %+v", tc.name, tc.prefix, tc.src, tc.dst.Addr(), nfl.Messages())
		}
	}
	for _, m := range nfl.Messages() {
		if a, _, _ := ir.ParseLogPrefix(m.Prefix); a == ir.Dropped {
			t.Errorf("a drop was logged with every pod audited: %+v", m)
		}
	}
}
