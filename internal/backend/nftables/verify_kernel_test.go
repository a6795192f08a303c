package nftables

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
)

// TestKernelVerifyFindsAndRepairsDrift changes weft's table behind its back
// in each way Verify must notice, checks that it names exactly those
// changes, and that the repair puts back exactly them.
func TestKernelVerifyFindsAndRepairsDrift(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	rs := exampleRuleset()
	rs.Log = ir.DefaultLog
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
		t.Fatalf("right after Apply: drift %v, error %v; want none", drift, err)
	}
	views, err := b.Lookup(ctx, []netip.Addr{addr("10.32.0.7"), addr("10.32.9.9")})
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.AddressView{
		// (allow-weft-g-*-4 hold 0.0.0.0/0 on some ports: every address.)
		{Addr: "10.32.0.7", Groups: []string{"ingress weft-g-a"}, Sets: []string{"allow-any-weft-g-b-4", "allow-weft-g-a-4", "allow-weft-g-b-4", "self-ip4", "weft-http4"}},
		{Addr: "10.32.9.9", Groups: []string{}, Sets: []string{"allow-weft-g-a-4", "allow-weft-g-b-4"}},
	}
	if diff := cmp.Diff(want, views); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		tamper string // nft commands
		want   []string
	}{
		{"set element removed", "delete element inet weft allow-weft-g-a-4 { 10.32.0.9 . tcp . 80 }",
			[]string{"missing element allow-weft-g-a-4: 10.32.0.9 . tcp . 80"}},
		{"set elements added", "add element inet weft weft-ext { 10.40.1.0/25 }; add element inet weft allow-weft-g-a-4 { 10.32.3.3 . tcp . 1-65535 }",
			[]string{"extra element weft-ext: 10.40.1.0/25", "extra element allow-weft-g-a-4: 10.32.3.3 . tcp . 1-65535"}},
		{"named-port element removed", "delete element inet weft weft-http4 { 10.32.0.7 . tcp . 8080 }",
			[]string{"missing element weft-http4: 10.32.0.7 . tcp . 8080"}},
		{"pod taken out of its group", "delete element inet weft ingress-ip4 { 10.32.0.7 }",
			[]string{"missing map-element ingress-ip4: 10.32.0.7 : jump weft-g-a"}},
		{"rule inserted", "insert rule inet weft weft-g-a accept",
			[]string{"extra rule weft-g-a: rule 1: accept"}},
		{"rule replaced", "flush chain inet weft weft-g-b; add rule inet weft weft-g-b accept",
			append([]string{"extra rule weft-g-b: rule 1: accept"}, slices.Repeat([]string{"missing rule weft-g-b: rule"}, 6)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nftScript(t, tc.tamper)
			drift, err := b.Verify(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if !driftMatches(drift, tc.want) {
				t.Fatalf("drift %q, want lines starting %q", drift, tc.want)
			}
			repaired, err := b.Verify(ctx, true)
			if err != nil {
				t.Fatalf("repair: %v", err)
			}
			if !driftMatches(repaired, tc.want) {
				t.Errorf("repair found %q, want %q", repaired, tc.want)
			}
			if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
				t.Fatalf("after the repair: drift %q, error %v; want none", drift, err)
			}
			kernelMatches(t, rs)
		})
	}

	t.Run("drift kept across an apply elsewhere", func(t *testing.T) {
		nftScript(t, "insert rule inet weft weft-g-a accept")
		other := exampleRuleset()
		other.Log = ir.DefaultLog
		// A rule that drops: weft-g-b's rules change, weft-g-a's do not.
		other.Chains[2].Rules = append(other.Chains[2].Rules, ir.Rule{Family: ir.IPv4, PeerSet: "weft-ext", Verdict: ir.Drop, Comment: "y/egress-dns egress[2]"})
		if err := b.Apply(ctx, other); err != nil {
			t.Fatal(err)
		}
		if st := b.LastSync(); st.Full || st.ChainsWritten == 0 {
			t.Fatalf("want an incremental apply that writes a chain, got %+v", st)
		}
		drift, err := b.Verify(ctx, true)
		if err != nil || !driftMatches(drift, []string{"extra rule weft-g-a: rule 1: accept"}) {
			t.Fatalf("drift %q, error %v", drift, err)
		}
		kernelMatches(t, other)
		if err := b.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("table deleted", func(t *testing.T) {
		nftScript(t, "delete table inet weft")
		drift, err := b.Verify(ctx, true)
		if err != nil || !driftMatches(drift, []string{"missing table inet weft"}) {
			t.Fatalf("drift %q, error %v", drift, err)
		}
		kernelMatches(t, rs)
	})
}

// TestKernelVerifyAtScaleSeesNoDrift checks that weft reads back exactly what
// it wrote for a generated cluster (merged sets of peers, protocols and port
// ranges, IPv6, log sets filled by packets): no false drift.
func TestKernelVerifyAtScaleSeesNoDrift(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 200, Policies: 400, LocalPods: 100, Seed: 2})
	rs := compile.CompileWith(c.Snapshot, compile.Options{Node: clustergen.NodeName(0), Log: ir.DefaultLog})
	b := newKernelBackend(t)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	drift, err := b.Verify(ctx, true)
	if err != nil || len(drift) != 0 {
		t.Fatalf("drift %q, error %v; want none", drift, err)
	}
}

// driftMatches reports whether drift has one line per want, in order, each
// starting with it.
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

// TestKernelVerifyBesideApply: Verify reads the kernel without holding the
// backend, so an Apply may land while it reads; such a read is stale and is
// taken again. Here an Apply lands during the first read: Verify finds no
// drift against the ruleset applied, and an Apply landing during every read
// makes it say it could not tell (backend.ErrBusy), never a false drift.
func TestKernelVerifyBesideApply(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	rs, other := exampleRuleset(), exampleRuleset()
	other.Sets[2].Addrs = append(other.Sets[2].Addrs, addr("10.32.0.10"))
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	read := b.list
	reads, landing, cur := 0, 1, rs
	b.list = func(ctx context.Context, args ...string) ([]byte, error) {
		out, err := read(ctx, args...)
		if reads++; reads <= landing {
			// An Apply that changes something lands after the read:
			// what was read is stale.
			if cur = other; reads%2 == 0 {
				cur = rs
			}
			if err := b.Apply(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}
		return out, err
	}
	drift, err := b.Verify(ctx, false)
	if err != nil || len(drift) != 0 {
		t.Fatalf("an Apply landed during the read: drift %v, error %v; want none", drift, err)
	}
	if reads != 2 {
		t.Errorf("the kernel was read %d times, want 2 (the stale read again)", reads)
	}
	reads, landing = 1, backend.VerifyAttempts+1 // (other is in force: the next Apply is rs)
	drift, err = b.Verify(ctx, true)
	if !errors.Is(err, backend.ErrBusy) || len(drift) != 0 {
		t.Fatalf("an Apply landed during every read: drift %v, error %v; want backend.ErrBusy and no drift", drift, err)
	}
	b.list = read
	if drift, err := b.Verify(ctx, false); err != nil || len(drift) != 0 {
		t.Fatalf("after: drift %v, error %v", drift, err)
	}
}
