package iptables

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/weftnet/weft/internal/ir"
)

// TestCheckHooksPutsTheJumpBackOnTop: on the fake kernel, a rule another
// tool inserts above weft's jump (IPv4), or a jump someone deleted (IPv6),
// is repaired by CheckHooks and by Apply, also when the ruleset did not
// change; when all is in order the check reads only rule 1 of each family;
// when weft's chains are gone the check says so and the next Apply
// rewrites them.
func TestCheckHooksPutsTheJumpBackOnTop(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	b := newFakeBackend(k, 0)
	if r, err := b.CheckHooks(ctx); r != nil || err != nil || len(k.commands) != 0 {
		t.Fatalf("before any apply: CheckHooks = %q, %v after commands %q; want nothing done", r, err, k.commands)
	}
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	k.commands = nil
	if r, err := b.CheckHooks(ctx); r != nil || err != nil {
		t.Fatalf("all in order: CheckHooks = %q, %v", r, err)
	}
	if want := []string{"iptables-nft -w -S FORWARD 1", "ip6tables-nft -w -S FORWARD 1"}; !slices.Equal(k.commands, want) {
		t.Errorf("all in order, the check ran %q, want only %q", k.commands, want)
	}

	foreign := func() {
		t.Helper()
		for _, c := range []struct{ tool, payload string }{
			{"iptables-nft-restore", "*filter\n-A FORWARD -j DROP\n-I FORWARD 1 -j ACCEPT\nCOMMIT\n"},
			{"ip6tables-nft-restore", "*filter\n-D FORWARD " + hookRuleArg + "\n-A FORWARD -p tcp -j ACCEPT\nCOMMIT\n"},
		} {
			if _, err := k.run(c.tool, []string{"-w", "--noflush"}, c.payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	foreign()
	// d reaches a:80 through the foreign ACCEPT
	flow := ir.Packet{Src: podD, Dst: podA, Protocol: protoTCP, Port: 80}
	if !acceptedFlows(t, k.state(), []ir.Packet{flow})[0] {
		t.Fatal("test setup: the foreign ACCEPT on top should let d reach a:80")
	}
	k.commands = nil
	r, err := b.CheckHooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"IPv4: -A FORWARD -j ACCEPT", "IPv6: -A FORWARD -p tcp -j ACCEPT (weft's jump was gone)"}, r); diff != "" {
		t.Errorf("repaired (-want +got):\n%s", diff)
	}
	wantForward := [2][]string{{hookRuleArg, "-j ACCEPT", "-j DROP"}, {hookRuleArg, "-p tcp -j ACCEPT"}}
	for fi := range families {
		if got := k.tables[fi].rules["FORWARD"]; !slices.Equal(got, wantForward[fi]) {
			t.Errorf("IPv%d FORWARD after the repair: %q, want %q", families[fi], got, wantForward[fi])
		}
	}
	if acceptedFlows(t, k.state(), []ir.Packet{flow})[0] {
		t.Error("after the repair d still reaches a:80")
	}
	// One restore per family moves the jump: deleted and inserted together.
	var restores []string
	for _, c := range k.commands {
		if strings.Contains(c, "-restore") {
			restores = append(restores, c)
		}
	}
	wantRestores := []string{
		"iptables-nft-restore -w --noflush\n*filter\n-D FORWARD " + hookRuleArg + "\n-I FORWARD 1 " + hookRuleArg + "\nCOMMIT",
		"ip6tables-nft-restore -w --noflush\n*filter\n-I FORWARD 1 " + hookRuleArg + "\nCOMMIT",
	}
	if diff := cmp.Diff(wantRestores, restores); diff != "" {
		t.Errorf("repair restores (-want +got):\n%s", diff)
	}
	if n := b.HookRepairs(); n != 2 {
		t.Errorf("HookRepairs = %d, want 2", n)
	}

	// Apply checks too, also when the ruleset is the same.
	if _, err := k.run("iptables-nft-restore", []string{"-w", "--noflush"}, "*filter\n-I FORWARD 1 -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStats(); !slices.Equal(s.HookRepaired, []string{"IPv4: -A FORWARD -j ACCEPT"}) || s.Adopted || s.RulesBytes != 0 {
		t.Errorf("Apply of the same ruleset: stats %+v, want the IPv4 hook repaired and nothing else sent", s)
	}
	if got := k.tables[0].rules["FORWARD"]; got[0] != hookRuleArg {
		t.Errorf("IPv4 FORWARD after Apply: %q", got)
	}

	// Someone removed weft's chains: the check cannot put the jump back,
	// says so, and the next Apply rewrites everything.
	k.tables[0] = &fakeTable{rules: map[string][]string{"INPUT": nil, "FORWARD": {"-j ACCEPT"}, "OUTPUT": nil}}
	if _, err := b.CheckHooks(ctx); err == nil || !strings.Contains(err.Error(), "next apply reads and replaces") {
		t.Errorf("CheckHooks with weft's chains gone: %v, want an error saying the next apply rewrites all", err)
	}
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if !b.LastStats().Adopted {
		t.Error("the Apply after a failed check did not read the kernel again")
	}
	st, _ := render(sampleRuleset())
	if diff := k.sameAs(st); diff != "" {
		t.Errorf("after the Apply the kernel differs from the ruleset:\n%s", diff)
	}
}

// TestApplyAdoptionReportsAJumpNotOnTop: a new process finds weft's jump
// below another rule; its first Apply puts it back and says what stood
// in front.
func TestApplyAdoptionReportsAJumpNotOnTop(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	if err := newFakeBackend(k, 0).Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if _, err := k.run("iptables-nft-restore", []string{"-w", "--noflush"}, "*filter\n-I FORWARD 1 -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	b := newFakeBackend(k, 0)
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStats(); !s.Adopted || !slices.Equal(s.HookRepaired, []string{"IPv4: -A FORWARD -j ACCEPT"}) {
		t.Errorf("stats %+v, want adopted with the IPv4 hook repaired", s)
	}
	if got := k.tables[0].rules["FORWARD"]; !slices.Equal(got, []string{hookRuleArg, "-j ACCEPT"}) {
		t.Errorf("IPv4 FORWARD: %q", got)
	}
}

func TestKernelHookCheckNFT(t *testing.T)    { inNamespace(t, ModeNFT, testHookCheck) }
func TestKernelHookCheckLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testHookCheck) }

// testHookCheck: in the kernel, rules another tool inserts on top of
// FORWARD let d reach a; CheckHooks puts weft's jump back on top, keeps the
// foreign rules below it, and d is blocked again. It logs what a check costs
// when there is nothing to repair.
func testHookCheck(t *testing.T, mode Mode) {
	ctx := context.Background()
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	startPod(t, "a", podA)
	d := startPod(t, "d", podD)
	b := newTestBackend(t, mode)
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if connectWithin(t, d, podA, 80, "0.3") {
		t.Fatal("d reaches a:80 before anything happened")
	}
	sh(t, "iptables-"+string(mode), "-w", "-I", "FORWARD", "1", "-j", "ACCEPT")
	sh(t, "ip6tables-"+string(mode), "-w", "-I", "FORWARD", "1", "-p", "tcp", "-j", "ACCEPT")
	if !connect(t, d, podA, 80) {
		t.Fatal("test setup: the foreign ACCEPT on top should let d reach a:80")
	}
	r, err := b.CheckHooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"IPv4: -A FORWARD -j ACCEPT", "IPv6: -A FORWARD -p tcp -j ACCEPT"}, r); diff != "" {
		t.Errorf("repaired (-want +got):\n%s", diff)
	}
	for _, fam := range families {
		var forward []string
		for _, l := range strings.Split(filterTable(t, mode, fam), "\n") {
			if strings.HasPrefix(l, "-A FORWARD ") {
				forward = append(forward, l)
			}
		}
		if len(forward) != 2 || forward[0] != "-A FORWARD "+hookRuleArg || !strings.Contains(forward[1], "-j ACCEPT") {
			t.Errorf("IPv%d FORWARD after the repair: %q, want weft's jump, then the foreign rule", fam, forward)
		}
	}
	if connectWithin(t, d, podA, 80, "0.3") {
		t.Error("after the repair d still reaches a:80")
	}
	const n = 20
	start := time.Now()
	for range n {
		if r, err := b.CheckHooks(ctx); r != nil || err != nil {
			t.Fatalf("CheckHooks with nothing to repair: %q, %v", r, err)
		}
	}
	t.Logf("CheckHooks with nothing to repair (%s, both families): %v per call", mode, time.Since(start)/n)
}
