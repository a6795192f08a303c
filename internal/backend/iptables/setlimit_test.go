package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
)

// sharedRuleset is mergedRuleset with n more ingress groups that share the
// first group's chains (pods with other labels that the same policies
// select): walking, they use the same peer sets; merged, each has sets of
// its own. So the merged layout needs more sets than the walking one.
func sharedRuleset(n int) *ir.Ruleset {
	rs := mergedRuleset()
	for i := range n {
		rs.Groups = append(rs.Groups, ir.Group{Name: fmt.Sprintf("weft-g-shared%02daaaaaaaaa", i), Direction: ir.Ingress,
			Chains: []string{chainIngA, chainIngA2}, Policies: []string{"x/one", "x/two"},
			Members: []ir.Member{{Addr: netip.AddrFrom4([4]byte{10, 32, 1, byte(20 + i)}), Pod: fmt.Sprintf("x/s%d", i)}}})
	}
	return rs
}

// layouts renders rs merged (the default budget) and walking every chain.
func layouts(t *testing.T, rs *ir.Ruleset) (merged, walked *state) {
	t.Helper()
	merged, err := renderBudget(rs, DefaultMergeBudget, nil)
	if err != nil {
		t.Fatal(err)
	}
	if walked, err = renderBudget(rs, -1, nil); err != nil {
		t.Fatal(err)
	}
	return merged, walked
}

// setsToCreate is how many sets an apply from the state from to the
// rendering to creates in its first step, temporary ones included: the
// room it needs in the kernel's set table.
func setsToCreate(t *testing.T, from, to *state) int {
	t.Helper()
	temps := 0
	p, err := planApply(from, to, func() string { temps++; return fmt.Sprintf("%sc%d", tempSetPrefix, temps) })
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, op := range p.create {
		if strings.HasPrefix(op.do, "create ") {
			n++
		}
	}
	return n
}

// checkVerdicts runs packets between the ruleset's addresses (and some
// others) through each state's rules and checks that every one gives the
// ir's verdict (ir.Tracer).
func checkVerdicts(t *testing.T, rs *ir.Ruleset, states map[string]*state) {
	t.Helper()
	seen := map[netip.Addr]bool{}
	var addrs []netip.Addr
	add := func(a netip.Addr) {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, g := range rs.Groups {
		for _, m := range g.Members {
			add(m.Addr)
		}
	}
	for _, s := range rs.Sets {
		for _, a := range s.Addrs {
			add(a)
		}
		for _, p := range s.Prefixes {
			add(p.Addr().Next())
		}
		for _, e := range s.Endpoints {
			add(e.Addr)
		}
	}
	for _, a := range []string{"10.32.9.9", "10.33.1.7", "200.1.1.1", "fd00::9:9"} {
		add(netip.MustParseAddr(a))
	}
	tr := ir.NewTracer(rs)
	interps := map[string]*interp{}
	for name, st := range states {
		interps[name] = newInterp(t, st)
	}
	var flows, drops int
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			for _, proto := range []uint8{protoTCP, protoUDP} {
				for _, port := range []uint16{53, 80, 81, 83, 443, 3000, 8080, 9000} {
					p := ir.Packet{Src: src, Dst: dst, Protocol: proto, Port: port}
					want := tr.Trace(p)
					flows++
					if !want.Accepted {
						drops++
					}
					for name, in := range interps {
						if got := in.run("FORWARD", p); got.dropped == want.Accepted {
							t.Errorf("%s: %v -> %v %d/%d: dropped=%v, the ir says accepted=%v", name, src, dst, proto, port, got.dropped, want.Accepted)
						}
					}
				}
			}
		}
	}
	if drops == 0 || drops == flows {
		t.Fatalf("the packets do not exercise both verdicts: %d of %d dropped", drops, flows)
	}
}

// TestSetLimitFallsBackToWalking: when the ipset table has room for the
// walking layout but not the merged one, Apply applies the walking one and
// says so; it keeps walking until the merged layout needs fewer sets or
// the retry time has come, and tries merging again then; when not even the
// walking layout fits, the apply fails and the kernel keeps what it held.
func TestSetLimitFallsBackToWalking(t *testing.T) {
	ctx := context.Background()
	rs := sharedRuleset(4)
	merged, walked := layouts(t, rs)
	if len(walked.sets) >= len(merged.sets) {
		t.Fatalf("the merged layout has %d sets, the walking one %d: the test needs fewer walking", len(merged.sets), len(walked.sets))
	}
	k := newFakeKernel(t)
	const foreign = 5
	for i := range foreign {
		k.sets[fmt.Sprintf("foreign-%d", i)] = &fakeSet{typ: "hash:ip", family: "inet", hashSize: 64, maxElem: 65536}
	}
	b := newFakeBackend(k, 0)

	// Not even the walking layout fits: the apply fails, nothing changed.
	k.maxSets = foreign + len(walked.sets) - 1
	before := k.dump()
	err := b.Apply(ctx, rs)
	if err == nil {
		t.Fatal("apply succeeded with no room for either layout")
	}
	for _, want := range []string{setTableFullMsg, "without merged sets", fmt.Sprintf("%d sets instead of %d", len(walked.sets), len(merged.sets)), "previous ruleset is in place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if diff := cmp.Diff(before, k.dump()); diff != "" {
		t.Errorf("a failed apply changed the kernel (-before +after):\n%s", diff)
	}
	if fb := b.SetLimitFallback(); fb != nil {
		t.Errorf("nothing applied, yet a fallback is reported: %+v", fb)
	}

	// Room for the walking layout only: it is applied and reported.
	k.maxSets++
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if diff := k.sameAs(walked); diff != "" {
		t.Fatalf("the kernel does not hold the walking layout:\n%s", diff)
	}
	checkFallbackReport(t, b, merged, walked, foreign)
	checkVerdicts(t, rs, map[string]*state{"kernel": k.state(), "merged": merged})

	// The same again: merged is not tried, nothing is sent.
	k.commands = nil
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStats(); s.SetsBytes != 0 || s.RulesBytes != 0 {
		t.Errorf("re-applying in the fallback sent %d bytes of sets and %d of rules, want none", s.SetsBytes, s.RulesBytes)
	}
	if b.SetLimitFallback() == nil {
		t.Error("the fallback ended although nothing changed")
	}

	// Room, but the merged layout needs as many sets as when it was
	// refused: it is not tried before its retry time.
	k.maxSets += 100
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if diff := k.sameAs(walked); diff != "" {
		t.Errorf("before the retry time the merged layout was tried:\n%s", diff)
	}
	// A ruleset whose merged layout needs fewer sets is merged at once.
	smaller := sharedRuleset(3)
	smallMerged, _ := layouts(t, smaller)
	if err := b.Apply(ctx, smaller); err != nil {
		t.Fatal(err)
	}
	if diff := k.sameAs(smallMerged); diff != "" {
		t.Errorf("a ruleset needing fewer sets than the refused one is not merged:\n%s", diff)
	}
	if fb := b.SetLimitFallback(); fb != nil {
		t.Errorf("merged again, yet a fallback is reported: %+v", fb)
	}

	// Again from nothing weft holds, in the fallback: at the retry time
	// merged is tried again, refused again (the fallback stays, the
	// kernel unchanged), then, with room, taken.
	k = newFakeKernel(t)
	k.maxSets = len(walked.sets)
	b = newFakeBackend(k, 0)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if diff := k.sameAs(walked); diff != "" || b.SetLimitFallback() == nil {
		t.Fatalf("the kernel does not hold the walking layout (fallback %+v):\n%s", b.SetLimitFallback(), diff)
	}
	b.limit.retryAt = time.Now().Add(-time.Second)
	k.commands = nil
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(k.commands, "\n"), "create weft-m-") {
		t.Error("at the retry time the merged layout was not tried")
	}
	if diff := k.sameAs(walked); diff != "" {
		t.Errorf("after the refused retry the kernel does not hold the walking layout:\n%s", diff)
	}
	if fb := b.SetLimitFallback(); fb == nil || time.Until(b.limit.retryAt) < mergedRetry-time.Minute {
		t.Errorf("after a refused retry: fallback %+v, next retry in %v; want a fallback and the retry time moved on", fb, time.Until(b.limit.retryAt))
	}
	k.maxSets = 0
	b.limit.retryAt = time.Now().Add(-time.Second)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if diff := k.sameAs(merged); diff != "" {
		t.Errorf("with room at the retry time the merged layout was not applied:\n%s", diff)
	}
	if fb := b.SetLimitFallback(); fb != nil {
		t.Errorf("merged again, yet a fallback is reported: %+v", fb)
	}
}

// checkFallbackReport checks what b reports after falling back from the
// merged layout to walked, with others sets of other tools in the table.
func checkFallbackReport(t *testing.T, b *Backend, merged, walked *state, others int) {
	t.Helper()
	want := &backend.SetLimitFallback{Merged: len(merged.sets), Applied: len(walked.sets), InNamespace: others + len(walked.sets), Others: others, Retry: mergedRetry}
	fb := b.SetLimitFallback()
	if diff := cmp.Diff(want, fb, cmpopts.IgnoreFields(backend.SetLimitFallback{}, "Refusal")); diff != "" {
		t.Errorf("fallback reported (-want +got):\n%s", diff)
	}
	if fb != nil && !strings.Contains(fb.Refusal, setTableFullMsg) {
		t.Errorf("the refusal reported is not the kernel's: %q", fb.Refusal)
	}
	if over := b.OverBudget(); len(over) != 0 {
		t.Errorf("no group is over the element budget, yet OverBudget says %v", over)
	}
}
