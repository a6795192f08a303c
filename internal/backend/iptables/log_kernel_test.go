package iptables

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/nflog/nflogtest"
)

func TestKernelLogNFT(t *testing.T)    { inNamespace(t, ModeNFT, testKernelLog) }
func TestKernelLogLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testKernelLog) }

// testKernelLog applies a ruleset with ir.DefaultLog (and Allowed): the
// tools take it, iptables-save prints the log chains exactly as rendered (so
// a later process adopts them unchanged), real connections reach an NFLOG
// socket of group 86 with the right prefix and the packet's addresses, and
// Cleanup removes every chain.
func testKernelLog(t *testing.T, mode Mode) {
	sh(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	sh(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	podD6 := netip.MustParseAddr("fd00::2:3")
	pods := map[string]*pod{
		"a": startPod(t, "a", podA, podA6),
		"c": startPod(t, "c", podC, podC6),
		"d": startPod(t, "d", podD, podD6),
	}
	// packets to the unknown address cross FORWARD towards d's link
	sh(t, "ip", "route", "add", unknown.String()+"/32", "dev", "v-d")

	l := ir.DefaultLog
	l.Allowed = true
	rs := logRuleset(l)
	b := newTestBackend(t, mode)
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply with logging: %v", err)
	}
	checkKernelHolds(t, mode, rs)
	st, err := render(rs)
	if err != nil {
		t.Fatal(err)
	}
	for fi, fam := range families {
		got, err := parseFilter(filterTable(t, mode, fam))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{chainEgressDrop, chainIngressDrop, chainEgressUnknown, chainIngressUnknown, chainIngressAccept, chainIngressAllow} {
			if diff := cmp.Diff(st.tables[fi].chains[c], got.chains[c]); diff != "" {
				t.Errorf("IPv%d: iptables-save prints %s otherwise than rendered (-rendered +saved):\n%s", fam, c, diff)
			}
		}
	}
	nfl := nflogtest.Listen(t, l.Group)

	for _, tc := range []struct {
		name     string
		from     string
		src, dst netip.Addr
		port     uint16
		passes   bool
		prefix   string
	}{
		{"d to isolated a: dropped", "d", podD, podA, 80, false, ir.LogPrefix(ir.Dropped, ir.Ingress)},
		{"d to isolated a over v6: dropped", "d", podD6, podA6, 85, false, ir.LogPrefix(ir.Dropped, ir.Ingress)},
		{"c to a: allowed", "c", podC, podA, 80, true, ir.LogPrefix(ir.Accepted, ir.Ingress)},
		{"d to an unknown address", "d", podD, unknown, 80, false, ir.LogPrefix(ir.Unknown, ir.Ingress)},
	} {
		if got := connect(t, pods[tc.from], tc.dst, tc.port); got != tc.passes {
			t.Errorf("%s: passed=%v, want %v", tc.name, got, tc.passes)
		}
		m, found := nfl.Wait(tc.prefix, tc.src, tc.dst)
		if !found {
			t.Errorf("%s: no NFLOG message %q %s -> %s; got %+v", tc.name, tc.prefix, tc.src, tc.dst, nfl.Messages())
			continue
		}
		if m.Length == 0 || m.Length > int(l.SnapLen) {
			t.Errorf("%s: %d bytes of the packet copied, want 1 to %d", tc.name, m.Length, l.SnapLen)
		}
	}
	t.Logf("%d NFLOG messages", len(nfl.Messages()))

	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		got, err := parseFilter(filterTable(t, mode, fam))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.chains) > 0 {
			t.Errorf("IPv%d: chains left after Cleanup: %v", fam, got.chains)
		}
	}
}

func TestKernelAuditNFT(t *testing.T)    { inNamespace(t, ModeNFT, testKernelAudit) }
func TestKernelAuditLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testKernelAudit) }

// auditAll makes every isolating group of rs audited, as compile does for
// audited pods: the group flag, and Audit for the Drop rules of its chains.
func auditAll(rs *ir.Ruleset) {
	for i := range rs.Groups {
		if len(rs.Groups[i].Policies) > 0 {
			rs.Groups[i].Audit = true
		}
	}
	for i := range rs.Chains {
		for j := range rs.Chains[i].Rules {
			if rs.Chains[i].Rules[j].Verdict == ir.Drop {
				rs.Chains[i].Rules[j].Verdict = ir.Audit
			}
		}
	}
}

// testKernelAudit applies the log test's ruleset with every isolated pod
// audited: the tools take it, iptables-save prints the audit chains exactly
// as rendered, a connection policy would drop passes and reaches NFLOG as
// "weft audit ingress", and an unknown address is still dropped.
func testKernelAudit(t *testing.T, mode Mode) {
	sh(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	sh(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	pods := map[string]*pod{
		"a": startPod(t, "a", podA, podA6),
		"c": startPod(t, "c", podC, podC6),
		"d": startPod(t, "d", podD, netip.MustParseAddr("fd00::2:3")),
	}
	sh(t, "ip", "route", "add", unknown.String()+"/32", "dev", "v-d")
	rs := logRuleset(ir.DefaultLog)
	auditAll(rs)
	b := newTestBackend(t, mode)
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply with audit: %v", err)
	}
	checkKernelHolds(t, mode, rs)
	// weft status --verify reads the audit rules back as written.
	if drift, err := b.Verify(context.Background(), false); err != nil || len(drift) != 0 {
		t.Fatalf("Verify right after Apply with audit: drift %v, error %v; want none", drift, err)
	}
	st, err := render(rs)
	if err != nil {
		t.Fatal(err)
	}
	for fi, fam := range families {
		got, err := parseFilter(filterTable(t, mode, fam))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{chainEgressAudit, chainIngressAudit} {
			if len(st.tables[fi].chains[c]) == 0 {
				t.Fatalf("IPv%d: no %s rendered", fam, c)
			}
			if diff := cmp.Diff(st.tables[fi].chains[c], got.chains[c]); diff != "" {
				t.Errorf("IPv%d: iptables-save prints %s otherwise than rendered (-rendered +saved):\n%s", fam, c, diff)
			}
		}
	}
	nfl := nflogtest.Listen(t, ir.DefaultLog.Group)
	for _, tc := range []struct {
		name     string
		from     string
		src, dst netip.Addr
		port     uint16
		passes   bool
		prefix   string
	}{
		{"d to audited a: would be dropped, passes", "d", podD, podA, 80, true, ir.LogPrefix(ir.Audited, ir.Ingress)},
		{"d to an unknown address: still dropped", "d", podD, unknown, 80, false, ir.LogPrefix(ir.Unknown, ir.Ingress)},
	} {
		if got := connect(t, pods[tc.from], tc.dst, tc.port); got != tc.passes {
			t.Errorf("%s: passed=%v, want %v", tc.name, got, tc.passes)
		}
		if _, found := nfl.Wait(tc.prefix, tc.src, tc.dst); !found {
			t.Errorf("%s: no NFLOG message %q %s -> %s; got %+v", tc.name, tc.prefix, tc.src, tc.dst, nfl.Messages())
		}
	}
	for _, m := range nfl.Messages() {
		if a, _, _ := ir.ParseLogPrefix(m.Prefix); a == ir.Dropped {
			t.Errorf("a drop was logged with every isolated pod audited: %+v", m)
		}
	}
}
