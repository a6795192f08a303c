package iptables

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
)

// inNamespace runs f in a private network namespace. Every kernel test is a
// pair of top-level tests, one per mode, because netnstest.Enter does not
// re-run subtests correctly yet (it appends the subtest pattern to -test.v).
func inNamespace(t *testing.T, mode Mode, f func(t *testing.T, mode Mode)) {
	if !netnstest.Enter(t, "ipset", "iptables-"+string(mode)+"-restore") {
		return
	}
	f(t, mode)
}

func newTestBackend(t *testing.T, mode Mode) *Backend {
	t.Helper()
	b, err := New(Config{Mode: mode, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func shIn(t *testing.T, input, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s\ninput:\n%s", name, strings.Join(args, " "), err, out, input)
	}
}

// filterTable returns the filter table of a family as iptables-save prints
// it, without comment lines (which hold a timestamp).
func filterTable(t *testing.T, mode Mode, fam ir.Family) string {
	t.Helper()
	out := sh(t, toolsFor(mode).save[famIndex(fam)], "-t", "filter")
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// setMembers returns every ipset and its members, sorted: "name: m1 m2".
func setMembers(t *testing.T) map[string][]string {
	t.Helper()
	sets := map[string][]string{}
	for _, l := range strings.Split(sh(t, "ipset", "save"), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "create":
			sets[f[1]] = []string{}
		case len(f) >= 3 && f[0] == "add":
			sets[f[1]] = append(sets[f[1]], f[2])
		}
	}
	for _, m := range sets {
		sort.Strings(m)
	}
	return sets
}

// kernelState is everything a test compares before and after a failure.
func kernelState(t *testing.T, mode Mode) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range families {
		fmt.Fprintf(&b, "## IPv%d\n%s\n", fam, filterTable(t, mode, fam))
	}
	sets := setMembers(t)
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "set %s: %s\n", n, strings.Join(sets[n], " "))
	}
	return b.String()
}

// wantSets returns the members the ruleset's rendering puts in each weft set.
func wantSets(t *testing.T, st *state) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, s := range st.sets {
		m := slices.Clone(s.Members)
		if m == nil {
			m = []string{}
		}
		sort.Strings(m)
		out[name] = m
	}
	return out
}

func weftSets(all map[string][]string) map[string][]string {
	out := map[string][]string{}
	for n, m := range all {
		if ownedSet(n) {
			out[n] = m
		}
	}
	return out
}

// checkKernelHolds asserts that the kernel holds exactly rs: weft's chains
// with as many rules as rendered, the hooks on top, and the sets' members.
func checkKernelHolds(t *testing.T, mode Mode, rs *ir.Ruleset) {
	t.Helper()
	checkKernelHoldsBudget(t, mode, rs, DefaultMergeBudget)
}

// checkKernelHoldsBudget is checkKernelHolds for a backend with a merge budget.
func checkKernelHoldsBudget(t *testing.T, mode Mode, rs *ir.Ruleset, budget int) {
	t.Helper()
	st, err := renderBudget(rs, budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	for fi, fam := range families {
		got, err := parseFilter(filterTable(t, mode, fam))
		if err != nil {
			t.Fatal(err)
		}
		want := st.tables[fi]
		gotCount, wantCount := map[string]int{}, map[string]int{}
		for c, r := range got.chains {
			gotCount[c] = len(r)
		}
		for c, r := range want.chains {
			wantCount[c] = len(r)
		}
		if diff := cmp.Diff(wantCount, gotCount); diff != "" {
			t.Errorf("IPv%d: weft chains and their rule counts differ (-want +got):\n%s", fam, diff)
		}
		for _, h := range hooks {
			if len(got.hooks[h]) != 1 || !got.hookFirst[h] {
				t.Errorf("IPv%d: want exactly one jump to WEFT, first in %s; got %q (first: %v)", fam, h, got.hooks[h], got.hookFirst[h])
			}
		}
	}
	if diff := cmp.Diff(wantSets(t, st), weftSets(setMembers(t))); diff != "" {
		t.Errorf("weft's ipsets differ (-want +got):\n%s", diff)
	}
}

func TestKernelApplyNFT(t *testing.T)    { inNamespace(t, ModeNFT, testApply) }
func TestKernelApplyLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testApply) }

func testApply(t *testing.T, mode Mode) {
	b := newTestBackend(t, mode)
	if b.Mode() != mode {
		t.Fatalf("mode %s, want %s", b.Mode(), mode)
	}
	rs := sampleRuleset()
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	checkKernelHolds(t, mode, rs)
	v6 := filterTable(t, mode, ir.IPv6)
	if !strings.Contains(v6, "weft-g-ingressaaaaaaaaaa-v6 dst") {
		t.Errorf("IPv6 table does not dispatch the group's IPv6 members:\n%s", v6)
	}
	if !strings.Contains(sh(t, "ipset", "list", "-t", "weft-peers6aaaaaaaaaaaaa"), "family inet6") {
		t.Errorf("IPv6 peer set is not an inet6 set")
	}
	// Applying the same ruleset again sends nothing.
	before := kernelState(t, mode)
	if err := b.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStats(); s.RulesBytes != 0 || s.SetsBytes != 0 {
		t.Errorf("re-applying the same ruleset sent %d bytes of rules and %d of sets, want none", s.RulesBytes, s.SetsBytes)
	}
	if diff := cmp.Diff(before, kernelState(t, mode)); diff != "" {
		t.Errorf("re-applying the same ruleset changed the kernel:\n%s", diff)
	}
}

func TestKernelMembershipChangeTouchesOnlySetsNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testMembershipChangeTouchesOnlySets)
}
func TestKernelMembershipChangeTouchesOnlySetsLegacy(t *testing.T) {
	inNamespace(t, ModeLegacy, testMembershipChangeTouchesOnlySets)
}

func testMembershipChangeTouchesOnlySets(t *testing.T, mode Mode) {
	b := newTestBackend(t, mode)
	rs := sampleRuleset()
	// a larger peer set, so that one change is patched in place
	for i := 0; i < 40; i++ {
		rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, netip.AddrFrom4([4]byte{10, 32, 3, byte(i)}))
	}
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	rules := [2]string{filterTable(t, mode, ir.IPv4), filterTable(t, mode, ir.IPv6)}

	// one pod more in the peer set (patched), a new member of the
	// ingress group, and the IPv6 peer set replaced whole (swapped)
	rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, podD)
	rs.Groups[1].Members = append(rs.Groups[1].Members, ir.Member{Addr: netip.MustParseAddr("10.32.1.9"), Pod: "x/a2"})
	rs.Sets[3].Addrs = []netip.Addr{netip.MustParseAddr("fd00::9:1"), netip.MustParseAddr("fd00::9:2")}
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	s := b.LastStats()
	if s.Restores != 0 || s.RulesBytes != 0 {
		t.Errorf("a membership change ran iptables-restore %d times (%d bytes), want 0", s.Restores, s.RulesBytes)
	}
	if s.SetsPatched == 0 || s.SetsSwapped == 0 {
		t.Errorf("want both a patched and a swapped set, stats %+v", s)
	}
	if got := [2]string{filterTable(t, mode, ir.IPv4), filterTable(t, mode, ir.IPv6)}; got != rules {
		t.Errorf("rules changed on a membership change:\n%s", cmp.Diff(rules, got))
	}
	checkKernelHolds(t, mode, rs)
	if sets := setMembers(t); slices.ContainsFunc(keys(sets), func(n string) bool { return strings.HasPrefix(n, tempSetPrefix) }) {
		t.Errorf("temporary sets left behind: %v", keys(sets))
	}
}

func keys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// otherRuleset differs from sampleRuleset: the egress policy is gone, a new
// ingress policy with a new set runs for the group, a peer set changed.
func otherRuleset() *ir.Ruleset {
	rs := sampleRuleset()
	rs.Chains = slices.DeleteFunc(rs.Chains, func(c ir.Chain) bool { return c.Name == chainEgB })
	rs.Groups = slices.DeleteFunc(rs.Groups, func(g ir.Group) bool { return g.Name == groupEgB })
	rs.Sets = append(rs.Sets, ir.Set{Name: "weft-newsetaaaaaaaaaaaaa", Family: ir.IPv4, Kind: ir.AddrSet, Addrs: []netip.Addr{podD}})
	rs.Chains = append(rs.Chains, ir.Chain{Name: "weft-p-newaaaaaaaaaaaaaa", Policy: "x/new", Direction: ir.Ingress, Rules: []ir.Rule{
		{Family: ir.IPv4, PeerSet: "weft-newsetaaaaaaaaaaaaa", Verdict: ir.Accept, Comment: "x/new ingress[0]"},
	}})
	rs.Groups[0].Chains = append(rs.Groups[0].Chains, "weft-p-newaaaaaaaaaaaaaa")
	rs.Groups[0].Policies = append(rs.Groups[0].Policies, "x/new")
	rs.Sets[2].Addrs = append(rs.Sets[2].Addrs, netip.MustParseAddr("10.32.2.9"))
	return rs
}

func TestKernelAdoptsWhatAPreviousProcessLeftNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testAdoptsWhatAPreviousProcessLeft)
}
func TestKernelAdoptsWhatAPreviousProcessLeftLegacy(t *testing.T) {
	inNamespace(t, ModeLegacy, testAdoptsWhatAPreviousProcessLeft)
}

func testAdoptsWhatAPreviousProcessLeft(t *testing.T, mode Mode) {
	old := newTestBackend(t, mode)
	if err := old.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	// What a crash or an older version may leave: a temporary set, a
	// second jump below a foreign rule, a chain the new state lacks.
	sh(t, "ipset", "create", tempSetPrefix+"1", "hash:ip")
	save := toolsFor(mode).save[0]
	restore := strings.Replace(save, "-save", "-restore", 1)
	shIn(t, "*filter\n:FOREIGN - [0:0]\n-I FORWARD 1 -j FOREIGN\n-A FORWARD -j WEFT\n:weft-p-stale - [0:0]\n-A weft-p-stale -j RETURN\nCOMMIT\n", restore, "--noflush")

	b := newTestBackend(t, mode) // a new process knows nothing
	rs := otherRuleset()
	if err := b.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if !b.LastStats().Adopted {
		t.Error("first apply of a new backend did not adopt")
	}
	checkKernelHolds(t, mode, rs)
	v4 := filterTable(t, mode, ir.IPv4)
	for _, gone := range []string{"weft-p-stale", chainEgB, groupEgB} {
		if strings.Contains(v4, gone) {
			t.Errorf("chain %s of the previous process survived:\n%s", gone, v4)
		}
	}
	if !strings.Contains(v4, "-A FORWARD -j FOREIGN") {
		t.Errorf("the foreign rule in FORWARD is gone:\n%s", v4)
	}
	// and a third process finds it all in order and changes nothing but
	// what it must: no set (it reads their members), rules only where
	// iptables-save prints them otherwise than weft writes them
	third := newTestBackend(t, mode)
	before := kernelState(t, mode)
	if err := third.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, kernelState(t, mode)); diff != "" {
		t.Errorf("adopting an identical state changed the kernel:\n%s", diff)
	}
	if s := third.LastStats(); !s.Adopted || s.SetsBytes != 0 || s.SetsDestroyed != 0 {
		t.Errorf("adopting an identical state: stats %+v, want no set changed", s)
	}
}

func TestKernelRefusedSetLeavesPreviousStateNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testRefusedSetLeavesPreviousState)
}
func TestKernelRefusedSetLeavesPreviousStateLegacy(t *testing.T) {
	inNamespace(t, ModeLegacy, testRefusedSetLeavesPreviousState)
}

func testRefusedSetLeavesPreviousState(t *testing.T, mode Mode) {
	b := newTestBackend(t, mode)
	// Walk every chain, so that the next state renders the new policy's own
	// peer set (merged, its members would go into an existing merged set).
	b.budget = -1
	if err := b.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	// Someone else made a set with the name weft's next state needs.
	sh(t, "ipset", "create", "weft-newsetaaaaaaaaaaaaa", "hash:net")
	before := kernelState(t, mode)
	err := b.Apply(context.Background(), otherRuleset())
	if err == nil {
		t.Fatal("apply succeeded although a foreign set holds a name it needs")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"ipset restore", "create weft-newsetaaaaaaaaaaaaa hash:ip", "already exists", "ipset destroy weft-newsetaaaaaaaaaaaaa", "previous ruleset is in place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if diff := cmp.Diff(before, kernelState(t, mode)); diff != "" {
		t.Errorf("a failed apply changed the kernel (-before +after):\n%s", diff)
	}
	// Once the foreign set is gone, the same apply goes through.
	sh(t, "ipset", "destroy", "weft-newsetaaaaaaaaaaaaa")
	if err := b.Apply(context.Background(), otherRuleset()); err != nil {
		t.Fatal(err)
	}
	checkKernelHoldsBudget(t, mode, otherRuleset(), -1)
}

func TestKernelRefusedRuleLeavesPreviousStateNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testRefusedRuleLeavesPreviousState)
}
func TestKernelRefusedRuleLeavesPreviousStateLegacy(t *testing.T) {
	inNamespace(t, ModeLegacy, testRefusedRuleLeavesPreviousState)
}

func testRefusedRuleLeavesPreviousState(t *testing.T, mode Mode) {
	b := newTestBackend(t, mode)
	if err := b.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	// A foreign rule jumps to weft's egress policy chain, so the kernel
	// refuses to delete that chain, which the next state drops. The next
	// state also changes sets, which must be rolled back.
	restore := toolsFor(mode).restore[0]
	shIn(t, "*filter\n:FOREIGN - [0:0]\n-A FOREIGN -j "+chainEgB+"\nCOMMIT\n", restore, "--noflush")
	before := kernelState(t, mode)
	err := b.Apply(context.Background(), otherRuleset())
	if err == nil {
		t.Fatal("apply succeeded although the kernel cannot delete a chain in use")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{restore, "-X " + chainEgB, "previous ruleset is in place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if diff := cmp.Diff(before, kernelState(t, mode)); diff != "" {
		t.Errorf("a failed apply changed the kernel (-before +after):\n%s", diff)
	}
	// The backend still knows the state: removing the foreign rule is enough.
	shIn(t, "*filter\n:FOREIGN - [0:0]\n-X FOREIGN\nCOMMIT\n", restore, "--noflush")
	if err := b.Apply(context.Background(), otherRuleset()); err != nil {
		t.Fatal(err)
	}
	checkKernelHolds(t, mode, otherRuleset())
}

func TestKernelCleanupRemovesOnlyWeftNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testCleanupRemovesOnlyWeft)
}
func TestKernelCleanupRemovesOnlyWeftLegacy(t *testing.T) {
	inNamespace(t, ModeLegacy, testCleanupRemovesOnlyWeft)
}

func testCleanupRemovesOnlyWeft(t *testing.T, mode Mode) {
	tools := toolsFor(mode)
	for fi := range families {
		shIn(t, "*filter\n:FOREIGN - [0:0]\n-A FOREIGN -j RETURN\n-A FORWARD -j FOREIGN\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n", tools.restore[fi], "--noflush")
	}
	sh(t, "ipset", "create", "foreign", "hash:ip")
	sh(t, "ipset", "create", "weftish", "hash:ip") // not weft- : not weft's
	want := [2]string{filterTable(t, mode, ir.IPv4), filterTable(t, mode, ir.IPv6)}

	b := newTestBackend(t, mode)
	if err := b.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := [2]string{filterTable(t, mode, ir.IPv4), filterTable(t, mode, ir.IPv6)}; got != want {
		t.Errorf("filter tables after cleanup differ from before weft (-want +got):\n%s", cmp.Diff(want, got))
	}
	if got := keys(setMembers(t)); !slices.Equal(got, []string{"foreign", "weftish"}) {
		t.Errorf("sets after cleanup: %v, want only the foreign ones", got)
	}
	if err := b.Cleanup(context.Background()); err != nil {
		t.Errorf("a second cleanup: %v", err)
	}
	// the backend can start over after a cleanup
	if err := b.Apply(context.Background(), sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	checkKernelHolds(t, mode, sampleRuleset())
}

// TestKernelSetLimit fills the namespace's ipset table to the limit ipset
// reports (on this kernel the table grows to 65,472 sets; filling it takes
// most of a minute) and checks that an apply that needs more sets than
// either layout has room for fails clearly and leaves the previous ruleset
// whole; that an apply whose merged layout does not fit but whose walking
// one does applies the walking one, reports it and gives the ir's verdicts;
// and that, with room again, a ruleset needing fewer sets is merged again.
func TestKernelSetLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the kernel's ipset table: most of a minute; not with -short")
	}
	if !netnstest.Enter(t, "ipset", "iptables-nft-restore") {
		return
	}
	ctx := context.Background()
	b := newTestBackend(t, ModeNFT)
	if err := b.Apply(ctx, sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	var fill strings.Builder
	for i := range 70000 {
		fmt.Fprintf(&fill, "create fill-%d hash:ip hashsize 64\n", i)
	}
	cmd := exec.Command("ipset", "restore")
	cmd.Stdin = strings.NewReader(fill.String())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "maximal number of sets") {
		t.Skipf("ipset took 70,000 sets without reporting a limit (%v: %s)", err, out)
	}
	t.Logf("ipset reports its limit: %s", strings.TrimSpace(string(out)))
	m := lineNumber.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ipset did not say which line it refused: %s", out)
	}
	filled, _ := strconv.Atoi(m[1])
	filled-- // the sets fill-0 .. fill-(filled-1) were made
	freed := 0
	free := func(n int) {
		t.Helper()
		var lines strings.Builder
		for range n {
			fmt.Fprintf(&lines, "destroy fill-%d\n", freed)
			freed++
		}
		shIn(t, lines.String(), "ipset", "restore")
	}

	// Room for one more set; the next state needs a new set and temporary
	// sets for its changed ones, in either layout.
	otherMerged, otherWalked := layouts(t, otherRuleset())
	if n, w := setsToCreate(t, b.applied, otherMerged), setsToCreate(t, b.applied, otherWalked); n <= 1 || w <= 1 {
		t.Fatalf("the next state creates %d sets merged, %d walking: the test needs more than one each", n, w)
	}
	free(1)
	before := kernelState(t, ModeNFT)
	err = b.Apply(ctx, otherRuleset())
	if err == nil {
		t.Fatal("apply succeeded beyond the set limit")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{setTableFullMsg, "limit on the number of ipsets", "previous ruleset is in place", "create weft-", "without merged sets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if diff := cmp.Diff(before, kernelState(t, ModeNFT)); diff != "" {
		t.Errorf("a failed apply changed the kernel (-before +after):\n%s", diff)
	}

	// Room for what the walking layout creates, not the merged one.
	rs := sharedRuleset(4)
	merged, walked := layouts(t, rs)
	needMerged, needWalked := setsToCreate(t, b.applied, merged), setsToCreate(t, b.applied, walked)
	t.Logf("from the sample ruleset, merged: %d sets, %d created; walking: %d sets, %d created", len(merged.sets), needMerged, len(walked.sets), needWalked)
	if needWalked >= needMerged {
		t.Fatalf("the walking layout creates %d sets, the merged one %d: the test needs fewer walking", needWalked, needMerged)
	}
	free(needWalked - 1)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("with room for the walking layout: %v", err)
	}
	checkKernelHoldsBudget(t, ModeNFT, rs, -1)
	checkFallbackReport(t, b, merged, walked, filled-freed)
	// What the kernel holds (the walking render, checked above) and the
	// merged render give the ir's verdicts.
	checkVerdicts(t, rs, map[string]*state{"walking": walked, "merged": merged})

	// Room again: the same ruleset needs as many sets as when it was
	// refused, so it keeps walking (nothing changes); one that needs
	// fewer is merged.
	smaller := sharedRuleset(3)
	smallMerged, _ := layouts(t, smaller)
	free(setsToCreate(t, b.applied, smallMerged))
	before = kernelState(t, ModeNFT)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, kernelState(t, ModeNFT)); diff != "" {
		t.Errorf("re-applying the ruleset in the fallback changed the kernel (-before +after):\n%s", diff)
	}
	if err := b.Apply(ctx, smaller); err != nil {
		t.Fatal(err)
	}
	checkKernelHolds(t, ModeNFT, smaller)
	if fb := b.SetLimitFallback(); fb != nil {
		t.Errorf("merged again, yet a fallback is reported: %+v", fb)
	}
}

func TestKernelFollowsIncrementalCompileNFT(t *testing.T) {
	inNamespace(t, ModeNFT, testFollowsIncrementalCompile)
}

// testFollowsIncrementalCompile: 40 random changes (clustergen's Stream),
// compiled incrementally (sets kept and patched, so an unchanged set is the
// same slice and its rendered members are reused) and applied one by one:
// after each the kernel holds exactly what a fresh render of that ruleset
// says.
func testFollowsIncrementalCompile(t *testing.T, mode Mode) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(29, 1))
	st := clustergen.NewStream(clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 3, Pods: 24, Policies: 6, Nodes: 2}))
	inc := compile.NewIncremental()
	b := newTestBackend(t, mode)
	opts := compile.Options{Node: "node-1"}
	what := "start"
	for range 40 {
		rs := inc.Compile(st.Snapshot(), opts)
		if err := b.Apply(ctx, rs); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		checkKernelHolds(t, mode, rs)
		if t.Failed() {
			t.Fatalf("after %s the kernel differs from the ruleset", what)
		}
		what = st.Next(rng)
	}
}
