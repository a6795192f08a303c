package nftables

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/policy"
)

// These tests program the real kernel through the real nft binary, each in a
// private network namespace of its own (netnstest.Enter), never the host's.

func nftCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nftScript(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s\nscript:\n%s", err, out, script)
	}
}

func newKernelBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := New(Config{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// kernelMatches checks, through a second knftables interface reading the
// kernel, that table inet weft holds exactly the chains, sets, maps and
// elements that rs renders to.
func kernelMatches(t *testing.T, rs *ir.Ruleset) {
	t.Helper()
	kernelMatchesBudget(t, rs, DefaultMergeBudget)
}

// kernelMatchesBudget is kernelMatches for a backend with merge budget budget.
func kernelMatchesBudget(t *testing.T, rs *ir.Ruleset, budget int) {
	t.Helper()
	ctx := context.Background()
	want, err := renderWith(rs, budget)
	if err != nil {
		t.Fatal(err)
	}
	nft, err := knftables.New(knftables.InetFamily, tableName)
	if err != nil {
		t.Fatal(err)
	}
	for kind, names := range map[string][]string{"chain": sortedKeys(want.chains), "set": sortedKeys(want.sets), "map": sortedKeys(want.maps)} {
		got, err := nft.List(ctx, kind)
		if err != nil {
			t.Fatalf("list %ss: %v", kind, err)
		}
		slices.Sort(got)
		if diff := cmp.Diff(names, got); diff != "" {
			t.Errorf("%ss in the kernel (-want +got):\n%s", kind, diff)
		}
	}
	for name, s := range want.sets {
		var wantKeys []string
		added, _ := setKeyDiff(nil, s)
		for _, k := range added {
			key := strings.Join(k, " . ")
			if p, err := netip.ParsePrefix(key); err == nil && p.IsSingleIP() {
				key = p.Addr().String() // nft lists a single address bare
			}
			wantKeys = append(wantKeys, key)
		}
		gotKeys := kernelSetKeys(t, name)
		slices.Sort(wantKeys)
		slices.Sort(gotKeys)
		if diff := cmp.Diff(wantKeys, gotKeys); diff != "" {
			t.Errorf("set %s in the kernel (-want +got):\n%s", name, diff)
		}
	}
	for name, m := range want.maps {
		var wantElems, gotElems []string
		for _, e := range m.elems {
			wantElems = append(wantElems, e.addr.String()+" : jump "+e.chain)
		}
		elems, err := nft.ListElements(ctx, "map", name)
		if err != nil {
			t.Fatalf("list map %s: %v", name, err)
		}
		for _, e := range elems {
			gotElems = append(gotElems, strings.Join(e.Key, " . ")+" : "+strings.Join(e.Value, " . "))
		}
		slices.Sort(wantElems)
		slices.Sort(gotElems)
		if diff := cmp.Diff(wantElems, gotElems); diff != "" {
			t.Errorf("map %s in the kernel (-want +got):\n%s", name, diff)
		}
	}
	for name, c := range want.chains {
		rules, err := nft.ListRules(ctx, name)
		if err != nil {
			t.Fatalf("list rules of %s: %v", name, err)
		}
		if len(rules) != len(c.rules) {
			t.Errorf("chain %s holds %d rules in the kernel, want %d", name, len(rules), len(c.rules))
		}
	}
}

// kernelSetKeys lists the elements of a set of table inet weft as nft -j
// gives them, written as the backend writes keys ("a . tcp . 80-90"):
// knftables' ListElements drops port ranges inside concatenations.
func kernelSetKeys(t *testing.T, name string) []string {
	t.Helper()
	var out struct {
		Nftables []struct {
			Set *struct {
				Elem []any `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nftCmd(t, "-j", "list", "set", "inet", tableName, name)), &out); err != nil {
		t.Fatalf("list set %s: %v", name, err)
	}
	var part func(v any) string
	part = func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case float64:
			return strconv.Itoa(int(v))
		case map[string]any:
			if p, ok := v["prefix"].(map[string]any); ok {
				return fmt.Sprintf("%v/%v", p["addr"], p["len"])
			}
			if r, ok := v["range"].([]any); ok && len(r) == 2 {
				return part(r[0]) + "-" + part(r[1])
			}
			if c, ok := v["concat"].([]any); ok {
				parts := make([]string, len(c))
				for i, x := range c {
					parts[i] = part(x)
				}
				return strings.Join(parts, " . ")
			}
		}
		t.Fatalf("set %s: element %v not understood", name, v)
		return ""
	}
	var keys []string
	for _, o := range out.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			keys = append(keys, part(e))
		}
	}
	return keys
}

func TestKernelApplyAndIncrementalUpdate(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	rs := exampleRuleset()
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if !b.LastSync().Full {
		t.Errorf("first sync of a process was not full: %+v", b.LastSync())
	}
	kernelMatches(t, rs)
	listing := nftCmd(t, "list", "table", "inet", tableName)
	for _, want := range []string{
		"type filter hook forward priority filter + 5; policy accept;",
		"ip saddr . meta l4proto . th dport @allow-weft-g-a-4 accept",
		"ip daddr @allow-any-weft-g-b-4 accept",
		"ip saddr @weft-ext ip daddr . meta l4proto . tcp dport @weft-http4 accept",
		"0.0.0.0/0 . udp . 5000-5010",
		`10.32.0.7 comment "y/a" : jump weft-g-a`,
		"10.40.128.0/17",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("kernel listing lacks %q:\n%s", want, listing)
		}
	}

	// Membership only: a pod joins a peer set (and so the merged set of
	// group a), another pod joins group a (and the self set), b leaves group
	// b (and the self sets).
	rs2 := exampleRuleset()
	rs2.Sets[2].Addrs = append(rs2.Sets[2].Addrs, addr("10.32.0.10")) // weft-web4
	rs2.Groups[0].Members = append(rs2.Groups[0].Members, ir.Member{Addr: addr("10.32.0.11"), Pod: "y/a2"})
	rs2.Groups[1].Members = nil
	if err := b.Apply(ctx, rs2); err != nil {
		t.Fatalf("incremental Apply: %v", err)
	}
	st := b.LastSync()
	if !st.ElementsOnly() || st.ElementsAdded != 3 || st.ElementsDeleted != 4 || st.Operations != 7 {
		t.Errorf("membership change: want a transaction of 3 element adds and 4 deletes, got %+v", st)
	}
	kernelMatches(t, rs2)

	// A merged policy's port range grows: the old element goes and the new,
	// overlapping one comes in the same transaction (the kernel refuses
	// the new one while the old is there); no chain is rewritten.
	rs3 := exampleRuleset()
	rs3.Chains[1].Rules[1].PortMax = 5020 // weft-p-allow-ext
	if err := b.Apply(ctx, rs3); err != nil {
		t.Fatalf("Apply after a rule change: %v", err)
	}
	st = b.LastSync()
	if !st.ElementsOnly() || st.GroupsMerged != 2 {
		t.Errorf("port range change of a merged policy: want elements only, got %+v", st)
	}
	kernelMatches(t, rs3)
	if l := nftCmd(t, "list", "set", "inet", tableName, "allow-weft-g-a-4"); !strings.Contains(l, "0.0.0.0/0 . udp . 5000-5020") {
		t.Errorf("merged set not updated:\n%s", l)
	}

	// Many members of one set go: one batched command.
	rs4 := exampleRuleset()
	rs4.Chains[1].Rules[1].PortMax = 5020
	rs4.Sets[1].Prefixes = rs4.Sets[1].Prefixes[:2] // weft-ext loses 6 of 8
	if err := b.Apply(ctx, rs4); err != nil {
		t.Fatalf("Apply after deleting set members: %v", err)
	}
	if st := b.LastSync(); !st.ElementsOnly() || st.ElementsDeleted != 6 || st.Operations != 1 {
		t.Errorf("deleting 6 members of one set: want one batched command, got %+v", st)
	}
	kernelMatches(t, rs4)
	rs3 = rs4

	// An unchanged ruleset sends nothing.
	if err := b.Apply(ctx, rs3); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(); st.Operations != 0 {
		t.Errorf("unchanged ruleset sent %d operations", st.Operations)
	}

	// Over the merge budget, the groups walk their policy chains.
	walker, err := New(Config{Logger: quietLogger(), MergeBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := walker.Apply(ctx, rs3); err != nil {
		t.Fatalf("Apply over budget: %v", err)
	}
	if st := walker.LastSync(); !st.Full || st.GroupsWalked != 2 || st.GroupsMerged != 0 {
		t.Errorf("over budget: want a full sync with both groups walking, got %+v", st)
	}
	if over := walker.OverBudget(); len(over) != 2 || walker.Budget() != 1 {
		t.Errorf("over budget: OverBudget says %v (budget %d), want both groups (budget 1)", over, walker.Budget())
	}
	if over := b.OverBudget(); len(over) != 0 {
		t.Errorf("within the default budget, OverBudget says %v", over)
	}
	kernelMatchesBudget(t, rs3, 1)
	listing = nftCmd(t, "list", "table", "inet", tableName)
	for _, want := range []string{"jump weft-p-allow-web", "ip saddr @weft-web4 tcp dport 80 accept", "udp dport 5000-5020 accept"} {
		if !strings.Contains(listing, want) {
			t.Errorf("kernel listing over budget lacks %q:\n%s", want, listing)
		}
	}
	if strings.Contains(listing, "allow-weft-g-a") {
		t.Errorf("merged sets left over budget:\n%s", listing)
	}
}

// TestKernelAdoptsPreviousProcess: a new weft process replaces whatever an
// earlier one left, in one transaction, leaving nothing stale behind.
func TestKernelAdoptsPreviousProcess(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	c1 := clustergen.Random(rng, clustergen.RandomConfig{Pods: 40, Policies: 8, Nodes: 1})
	c2 := clustergen.Random(rng, clustergen.RandomConfig{Pods: 40, Policies: 8, Nodes: 1})
	rs1, rs2 := compile.Compile(c1.Snapshot, clustergen.NodeName(0)), compile.Compile(c2.Snapshot, clustergen.NodeName(0))
	if len(rs1.Chains) == 0 || len(rs2.Chains) == 0 {
		t.Fatal("generated rulesets hold no chains; pick another seed")
	}
	first := newKernelBackend(t)
	if err := first.Apply(ctx, rs1); err != nil {
		t.Fatal(err)
	}
	// Leftovers an older weft version might have had: a chain and a set
	// this version does not know.
	nftScript(t, "add chain inet weft weft-old-chain\nadd set inet weft weft-old-set { type ipv4_addr ; }\nadd element inet weft weft-old-set { 10.32.9.9 }\n")

	second := newKernelBackend(t)
	if err := second.Apply(ctx, rs2); err != nil {
		t.Fatal(err)
	}
	if !second.LastSync().Full {
		t.Errorf("first sync of the new process was not full")
	}
	kernelMatches(t, rs2)
	// The old process, still running, would notice nothing; its next
	// incremental sync would be computed against its own memory. That is
	// why only one weft runs per node; here we only check the adoption.
}

// TestKernelRejectedTransaction: the kernel refuses a transaction (the table
// was changed behind weft's back); nothing changes, the error quotes nft and
// the offending line, and the next sync repairs the table with a full one.
func TestKernelRejectedTransaction(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	if err := b.Apply(ctx, exampleRuleset()); err != nil {
		t.Fatal(err)
	}
	// Someone else dispatches 10.32.0.20 to group b.
	nftScript(t, "add element inet weft ingress-ip4 { 10.32.0.20 : jump weft-g-b }\n")
	before := nftCmd(t, "list", "table", "inet", tableName)

	rs := exampleRuleset()
	rs.Groups[0].Members = append(rs.Groups[0].Members, ir.Member{Addr: addr("10.32.0.20"), Pod: "y/c"})
	err := b.Apply(ctx, rs)
	if err == nil {
		t.Fatal("Apply succeeded although the kernel holds a conflicting element")
	}
	for _, want := range []string{"File exists", "add element inet weft ingress-ip4 { 10.32.0.20", "previous ruleset stays in place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if after := nftCmd(t, "list", "table", "inet", tableName); after != before {
		t.Errorf("a rejected transaction changed the table (-before +after):\n%s", cmp.Diff(before, after))
	}
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("the sync after a failure should replace the whole table: %v", err)
	}
	if !b.LastSync().Full {
		t.Errorf("the sync after a failure was not full")
	}
	kernelMatches(t, rs)
}

// TestKernelBadInputChangesNothing: a ruleset weft cannot render is refused
// before nft runs, with the object named, and the rules stay.
func TestKernelBadInputChangesNothing(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	if err := b.Apply(ctx, exampleRuleset()); err != nil {
		t.Fatal(err)
	}
	before := nftCmd(t, "list", "table", "inet", tableName)
	rs := exampleRuleset()
	rs.Chains[1].Rules[0].PeerSet = "weft-missing"
	err := b.Apply(ctx, rs)
	if err == nil || !strings.Contains(err.Error(), "weft-missing") || !strings.Contains(err.Error(), "not defined") {
		t.Fatalf("want an error naming the missing set, got %v", err)
	}
	if after := nftCmd(t, "list", "table", "inet", tableName); after != before {
		t.Errorf("bad input changed the table")
	}
}

// TestKernelCleanupLeavesOtherTables: cleanup removes table inet weft only.
func TestKernelCleanupLeavesOtherTables(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	nftScript(t, `add table inet filter
add chain inet filter forward { type filter hook forward priority 0 ; policy accept ; }
add rule inet filter forward ip saddr 10.32.7.7 drop
add table ip nat
add chain ip nat post { type nat hook postrouting priority 100 ; }
`)
	others := nftCmd(t, "list", "table", "inet", "filter") + nftCmd(t, "list", "table", "ip", "nat")
	b := newKernelBackend(t)
	if err := b.Apply(ctx, exampleRuleset()); err != nil {
		t.Fatal(err)
	}
	if err := b.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if out, err := exec.Command("nft", "list", "table", "inet", tableName).CombinedOutput(); err == nil {
		t.Errorf("table inet weft still there after Cleanup:\n%s", out)
	}
	if after := nftCmd(t, "list", "table", "inet", "filter") + nftCmd(t, "list", "table", "ip", "nat"); after != others {
		t.Errorf("Cleanup changed other tables (-before +after):\n%s", cmp.Diff(others, after))
	}
	if err := b.Cleanup(ctx); err != nil {
		t.Errorf("Cleanup with nothing to remove: %v", err)
	}
	// After a cleanup, Apply builds the table again from nothing.
	if err := b.Apply(ctx, exampleRuleset()); err != nil {
		t.Fatalf("Apply after Cleanup: %v", err)
	}
	kernelMatches(t, exampleRuleset())
}

// TestKernelAvailability: Available accepts this kernel and nft, and refuses,
// with a clear reason, a missing or too old nft.
func TestKernelAvailability(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	if err := Available(ctx); err != nil {
		t.Fatalf("Available on a kernel with nf_tables: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	err := Available(ctx)
	if err == nil || !strings.Contains(err.Error(), "nft not found") || !strings.Contains(err.Error(), "--backend iptables") {
		t.Errorf("without nft: want a clear error, got %v", err)
	}
	old := "#!/bin/sh\necho 'nftables v0.9.8 (E.D.S.)'\n"
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(old), 0o755); err != nil {
		t.Fatal(err)
	}
	err = Available(ctx)
	if err == nil || !strings.Contains(err.Error(), "v0.9.8 is too old") {
		t.Errorf("with nft v0.9.8: want a too-old error, got %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("New succeeded with nft v0.9.8")
	}
}

// TestKernelScaleMembershipChange applies a 2,000-pod cluster, then changes
// membership only (a remote pod's labels; a new local pod like an existing
// one): each transaction holds only element changes, and the kernel holds
// exactly the new ruleset.
func TestKernelScaleMembershipChange(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 200, Policies: 400, LocalPods: 100, Seed: 1})
	node := clustergen.NodeName(0)
	b := newKernelBackend(t)
	rs := compile.Compile(c.Snapshot, node)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	kernelMatches(t, rs)
	t.Logf("full sync: %+v", b.LastSync())
	for _, change := range []struct {
		name string
		pods []*corev1.Pod
	}{
		{"relabel a pod", relabelOnePod(c, node)},
		{"add a local pod", addLocalPod(c, node)},
	} {
		rs2 := compile.Compile(rebuild(c, change.pods), node)
		if err := b.Apply(ctx, rs2); err != nil {
			t.Fatal(err)
		}
		st := b.LastSync()
		if !st.ElementsOnly() || st.Operations == 0 {
			t.Errorf("%s: want element changes only, got %+v", change.name, st)
		}
		kernelMatches(t, rs2)
		t.Logf("%s: %+v", change.name, st)
		// and back
		if err := b.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		if st := b.LastSync(); !st.ElementsOnly() {
			t.Errorf("%s, undone: want element changes only, got %+v", change.name, st)
		}
	}
}

// relabelOnePod returns c's pods with one pod's app label changed such that
// node's ruleset changes in membership only: the pod leaves or joins peer
// sets (or moves to another existing group), and no chain or group appears
// or goes. Remote pods are tried first.
func relabelOnePod(c *clustergen.Cluster, node string) []*corev1.Pod {
	before := compile.Compile(c.Snapshot, node)
	addrEq := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	prefixEq := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	var order []int
	for _, remote := range []bool{true, false} {
		for i, p := range c.Pods {
			if (p.Spec.NodeName != node) == remote {
				order = append(order, i)
			}
		}
	}
	for _, i := range order[:min(len(order), 300)] {
		p := c.Pods[i]
		for _, app := range []string{"app-1", "app-2", "app-3"} {
			if p.Labels["app"] == app {
				continue
			}
			pods := slices.Clone(c.Pods)
			q := p.DeepCopy()
			q.Labels["app"] = app
			pods[i] = q
			after := compile.Compile(rebuild(c, pods), node)
			if !cmp.Equal(before.Chains, after.Chains) || !sameNames(before.Groups, after.Groups) || !sameSetNames(before.Sets, after.Sets) {
				continue
			}
			if !cmp.Equal(before, after, addrEq, prefixEq) {
				return pods
			}
		}
	}
	panic("no pod whose relabelling changes membership only")
}

func sameNames(a, b []ir.Group) bool {
	return slices.EqualFunc(a, b, func(x, y ir.Group) bool { return x.Name == y.Name })
}

func sameSetNames(a, b []ir.Set) bool {
	return slices.EqualFunc(a, b, func(x, y ir.Set) bool { return x.Name == y.Name })
}

// addLocalPod returns c's pods plus a new local pod with the labels and ports
// of an existing one: it joins that pod's groups and peer sets.
func addLocalPod(c *clustergen.Cluster, node string) []*corev1.Pod {
	for _, p := range c.Pods {
		if p.Spec.NodeName == node {
			q := p.DeepCopy()
			q.Name += "-new"
			q.Status.PodIPs = []corev1.PodIP{{IP: "10.45.0.1"}}
			q.Status.PodIP = ""
			return append(slices.Clone(c.Pods), q)
		}
	}
	panic("no local pod")
}

func rebuild(c *clustergen.Cluster, pods []*corev1.Pod) *policy.Snapshot {
	return policy.NewSnapshot(c.Namespaces, pods, c.Policies)
}

// TestKernelForgetRepairs: after someone removes weft's chain rules and
// elements behind its back, an Apply after Forget writes everything again.
func TestKernelForgetRepairs(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	b := newKernelBackend(t)
	rs := exampleRuleset()
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	nftCmd(t, "flush", "table", "inet", tableName)
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("Apply without Forget: %v", err)
	}
	if st := b.LastSync(); st.Operations != 0 {
		t.Fatalf("an unchanged ruleset should send nothing before Forget, sent %+v", st)
	}
	b.Forget()
	if err := b.Apply(ctx, rs); err != nil {
		t.Fatalf("Apply after Forget: %v", err)
	}
	if !b.LastSync().Full {
		t.Errorf("Apply after Forget was not a full sync: %+v", b.LastSync())
	}
	kernelMatches(t, rs)
}

// TestKernelFollowsIncrementalCompile: 60 random changes (clustergen's
// Stream), compiled incrementally (sets kept and patched, so unchanged sets
// are the same slices) and applied one by one: after each the kernel holds
// exactly what a fresh render of that ruleset says.
func TestKernelFollowsIncrementalCompile(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 1))
	st := clustergen.NewStream(clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 3, Pods: 24, Policies: 6, Nodes: 2}))
	inc := compile.NewIncremental()
	b := newKernelBackend(t)
	opts := compile.Options{Node: "node-1"}
	what := "start"
	incremental := 0
	for range 60 {
		rs := inc.Compile(st.Snapshot(), opts)
		if err := b.Apply(ctx, rs); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		if !b.LastSync().Full {
			incremental++
		}
		kernelMatches(t, rs)
		if t.Failed() {
			t.Fatalf("after %s the kernel differs from the ruleset", what)
		}
		what = st.Next(rng)
	}
	if incremental == 0 {
		t.Fatal("no sync was incremental")
	}
}
