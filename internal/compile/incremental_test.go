package compile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// incrementalCase is one random cluster and the options it is compiled with.
type incrementalCase struct {
	cfg  clustergen.RandomConfig
	opts Options
}

func randomIncrementalCase(rng *rand.Rand) incrementalCase {
	ic := incrementalCase{cfg: clustergen.RandomConfig{
		Namespaces: 2 + rng.IntN(4), Pods: 6 + rng.IntN(30), Policies: 2 + rng.IntN(8), Nodes: 1 + rng.IntN(3),
	}}
	if rng.IntN(3) == 0 {
		ic.cfg.ClusterPolicies = 1 + rng.IntN(4)
	}
	switch rng.IntN(3) {
	case 0:
		ic.opts.Node = "node-1"
	case 1:
		ic.opts.Node = "node-1"
		ic.opts.PodRanges = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16"), netip.MustParsePrefix("fd00:32::/64")}
		ic.opts.NodeAddrs = []netip.Addr{netip.MustParseAddr("10.32.0.1")}
	}
	if rng.IntN(3) == 0 {
		ic.opts.Log = ir.DefaultLog
		ic.opts.Mode = policy.Enforcement(rng.IntN(2))
	}
	return ic
}

// runIncremental applies steps random changes to a random cluster and
// checks, after each, that the incremental compile equals Compile of the
// same snapshot, and that the derived snapshot compiles as one built anew.
// It returns how many changes it checked.
func runIncremental(t testing.TB, rng *rand.Rand, steps int) int {
	ic := randomIncrementalCase(rng)
	c := clustergen.Random(rng, ic.cfg)
	var audit []string
	if ic.opts.Log.Enabled {
		for _, ns := range c.Namespaces {
			if rng.IntN(3) == 0 {
				audit = append(audit, ns.Name)
			}
		}
	}
	st := clustergen.NewStream(c, audit...)
	inc := NewIncremental()
	check := func(what string) {
		t.Helper()
		snap := st.Snapshot()
		got := inc.Compile(snap, ic.opts)
		want := CompileWith(snap, ic.opts)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s (cluster %+v, options %+v): the incremental compile differs from Compile:\n%s", what, ic.cfg, ic.opts, rulesetDiff(want, got))
		}
		full := st.Full()
		if d := policy.Diff(full, snap); d != "" {
			t.Fatalf("after %s: the derived snapshot differs from one built anew: %s", what, d)
		}
		if fresh := CompileWith(full, ic.opts); !reflect.DeepEqual(want, fresh) {
			t.Fatalf("after %s (cluster %+v, options %+v): the derived snapshot compiles otherwise than one built anew:\n%s", what, ic.cfg, ic.opts, rulesetDiff(fresh, want))
		}
	}
	check("start")
	for range steps {
		check(st.Next(rng))
	}
	return steps
}

// rulesetDiff says where two rulesets differ.
func rulesetDiff(want, got *ir.Ruleset) string {
	var out string
	sets := func(rs *ir.Ruleset) map[string]ir.Set {
		m := map[string]ir.Set{}
		for _, s := range rs.Sets {
			m[s.Name] = s
		}
		return m
	}
	ws, gs := sets(want), sets(got)
	for name, s := range ws {
		if g, ok := gs[name]; !ok {
			out += fmt.Sprintf("  missing set %s (%s)\n", name, s.Comment)
		} else if !reflect.DeepEqual(s, g) {
			out += fmt.Sprintf("  set %s (%s): want %v %v %v, got %v %v %v\n", name, s.Comment, s.Addrs, s.Prefixes, s.Endpoints, g.Addrs, g.Prefixes, g.Endpoints)
		}
	}
	for name, s := range gs {
		if _, ok := ws[name]; !ok {
			out += fmt.Sprintf("  extra set %s (%s)\n", name, s.Comment)
		}
	}
	if !reflect.DeepEqual(want.Chains, got.Chains) {
		out += fmt.Sprintf("  chains: want %d, got %d\n", len(want.Chains), len(got.Chains))
	}
	if !reflect.DeepEqual(want.Groups, got.Groups) {
		out += fmt.Sprintf("  groups: want %+v\n          got %+v\n", want.Groups, got.Groups)
	}
	if !reflect.DeepEqual(want.UnknownRanges, got.UnknownRanges) {
		out += fmt.Sprintf("  unknown ranges: want %v, got %v\n", want.UnknownRanges, got.UnknownRanges)
	}
	if out == "" {
		out = "  (elsewhere)"
	}
	return out
}

// TestIncrementalEqualsCompile: over 10,000 random changes (pods created,
// relabelled, moved through their phases, deleted, addresses reused;
// namespaces relabelled, created, deleted; policies created, edited,
// deleted; cluster policies and nodes changed), the incremental compile
// equals Compile after every change.
func TestIncrementalEqualsCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	want := 10000
	if testing.Short() {
		want = 1000 // (make race: the full run is make unit's)
	}
	total := 0
	for total < want {
		total += runIncremental(t, rng, 200)
	}
	t.Logf("%d changes, incremental compile equal to Compile after each", total)
}

// FuzzIncremental is TestIncrementalEqualsCompile from a fuzzed seed.
func FuzzIncremental(f *testing.F) {
	f.Add(uint64(1), uint8(30))
	f.Add(uint64(99), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		runIncremental(t, rand.New(rand.NewPCG(seed, 3)), int(steps))
	})
}

// TestIncrementalReuses: a pod relabel patches the sets it touches and
// reuses the chains; an unrelated change recomputes no set.
func TestIncrementalReuses(t *testing.T) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 100, Policies: 400, LocalPods: 60, Nodes: 20, Seed: 1})
	st := clustergen.NewStream(c)
	inc := NewIncremental()
	opts := Options{Node: "node-1"}
	inc.Compile(st.Snapshot(), opts)
	if !inc.Stats.Full {
		t.Fatal("the first compile was not a full one")
	}
	// Relabel a remote pod.
	i := slices.IndexFunc(c.Pods, func(p *corev1.Pod) bool { return p.Spec.NodeName != "node-1" })
	p := c.Pods[i].DeepCopy()
	p.Labels["app"] = "app-7"
	c.Pods[i] = p
	st.ApplyPods(map[string]*corev1.Pod{p.Namespace + "/" + p.Name: p})
	snap := st.Snapshot()
	got := inc.Compile(snap, opts)
	if inc.Stats.Full || inc.Stats.SetsBuilt != 0 || inc.Stats.ChainsReused == 0 {
		t.Fatalf("a relabel compiled %+v; want no set built and chains reused", inc.Stats)
	}
	if want := CompileWith(snap, opts); !reflect.DeepEqual(got, want) {
		t.Fatalf("differs from Compile:\n%s", rulesetDiff(want, got))
	}
}
