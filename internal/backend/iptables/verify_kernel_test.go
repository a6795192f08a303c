package iptables

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
)

func TestKernelVerifyNFT(t *testing.T)    { inNamespace(t, ModeNFT, testVerify) }
func TestKernelVerifyLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testVerify) }

// testVerify changes weft's rules and sets behind its back in each way
// Verify must notice, checks that it names exactly those changes and that
// the repair puts back exactly them; then that a generated cluster reads
// back without false drift.
func testVerify(t *testing.T, mode Mode) {
	ctx := context.Background()
	b := newTestBackend(t, mode)
	rs := sampleRuleset()
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
		t.Fatalf("right after Apply: drift %q, error %v; want none", drift, err)
	}
	views, err := b.Lookup(ctx, []netip.Addr{netip.MustParseAddr("10.32.1.2")})
	if err != nil || len(views) != 1 || !slices.Equal(views[0].Groups, []string{"ingress weft-g-ingressaaaaaaaaaa"}) {
		t.Errorf("Lookup 10.32.1.2: %+v, %v; want it in the ingress group", views, err)
	}
	ipt := "iptables-" + string(mode)
	for _, tc := range []struct {
		name   string
		tamper [][]string
		want   []string
	}{
		{"set member removed", [][]string{{"ipset", "del", "weft-g-ingressaaaaaaaaaa-v4", "10.32.1.2"}},
			[]string{"missing element weft-g-ingressaaaaaaaaaa-v4: 10.32.1.2"}},
		{"set member added", [][]string{{"ipset", "add", "weft-blockaaaaaaaaaaaaaa", "10.33.1.0/24"}},
			[]string{"extra element weft-blockaaaaaaaaaaaaaa: 10.33.1.0/24"}},
		{"rule inserted", [][]string{{ipt, "-I", "weft-g-ingressaaaaaaaaaa", "1", "-j", "RETURN"}},
			[]string{"extra rule IPv4 weft-g-ingressaaaaaaaaaa: rule 1: -A weft-g-ingressaaaaaaaaaa -j RETURN"}},
		{"rule deleted", [][]string{{ipt, "-D", "WEFT-EGRESS-DROP", "1"}},
			[]string{"missing rule IPv4 WEFT-EGRESS-DROP: rule 1"}},
		{"jump displaced", [][]string{{ipt, "-I", "FORWARD", "1", "-j", "ACCEPT"}},
			[]string{"displaced hook IPv4 FORWARD: -A FORWARD -j ACCEPT"}},
	} {
		for _, c := range tc.tamper {
			sh(t, c[0], c[1:]...)
		}
		drift, err := b.Verify(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if !driftMatches(drift, tc.want) {
			t.Fatalf("%s: drift %q, want lines starting %q", tc.name, drift, tc.want)
		}
		repaired, err := b.Verify(ctx, true)
		if err != nil {
			t.Fatalf("%s: repair: %v", tc.name, err)
		}
		if !driftMatches(repaired, tc.want) {
			t.Errorf("%s: repair found %q, want %q", tc.name, repaired, tc.want)
		}
		if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
			t.Fatalf("%s: after the repair: drift %q, error %v; want none", tc.name, drift, err)
		}
		checkKernelHolds(t, mode, rs)
		if tc.name == "rule inserted" {
			if st := b.LastStats(); st.ChainsWritten != 1 || st.SetsSwapped+st.SetsCreated+st.SetsPatched != 0 {
				t.Errorf("repairing one rule wrote %d chains and touched %d sets, want 1 chain and no set", st.ChainsWritten, st.SetsSwapped+st.SetsCreated+st.SetsPatched)
			}
		}
	}

	// A change behind weft's back in a chain that a later apply leaves
	// alone is still found after that apply.
	sh(t, ipt, "-w", "-I", "weft-g-egressaaaaaaaaaaa", "1", "-j", "RETURN")
	other := sampleRuleset()
	other.Chains[0].Rules[0].PortMin, other.Chains[0].Rules[0].PortMax = 54, 54
	if err := b.Apply(ctx, other); err != nil {
		t.Fatal(err)
	}
	drift, err := b.Verify(ctx, true)
	if want := []string{"extra rule IPv4 weft-g-egressaaaaaaaaaaa: rule 1: -A weft-g-egressaaaaaaaaaaa -j RETURN"}; err != nil || !driftMatches(drift, want) {
		t.Fatalf("after an apply elsewhere: drift %q, %v; want %q", drift, err, want)
	}
	checkKernelHolds(t, mode, other)
	// The repair put weft's jump back on top; the foreign ACCEPT stays
	// below it (not weft's to remove).
	sh(t, ipt, "-D", "FORWARD", "-j", "ACCEPT")

	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 200, Policies: 400, LocalPods: 100, Seed: 2})
	big := compile.CompileWith(c.Snapshot, compile.Options{Node: clustergen.NodeName(0), Log: ir.DefaultLog})
	if err := b.Apply(ctx, big); err != nil {
		t.Fatal(err)
	}
	if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
		t.Fatalf("generated cluster: drift %q, error %v; want none", drift, err)
	}
}

// driftMatches reports whether drift has one line per want, each starting
// with it (both sorted).
func driftMatches(drift []backend.Drift, want []string) bool {
	got := make([]string, len(drift))
	for i, d := range drift {
		got[i] = d.String()
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}
