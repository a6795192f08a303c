package compile

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"reflect"
	"slices"
	"testing"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/policy"
)

// BenchmarkCompile compiles 10,000 pods / 1,000 namespaces / 2,000 policies
// (70% podSelector peers, 20% namespaceSelector, 10% ipBlock) for one node,
// with every pod local (the worst case) and with 100 local pods (a node of a
// 100-node cluster).
func BenchmarkCompile(b *testing.B) {
	for _, local := range []int{0, 100} {
		c := clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: local, Seed: 1})
		name := "local=all"
		if local > 0 {
			name = fmt.Sprintf("local=%d", local)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var members int
			for i := 0; i < b.N; i++ {
				rs := Compile(c.Snapshot, "node-1")
				members = 0
				for _, s := range rs.Sets {
					members += s.Len()
				}
			}
			b.ReportMetric(float64(members), "set-members")
		})
	}
}

// BenchmarkCompileClusterPolicies is BenchmarkCompile with 100
// ClusterNetworkPolicies beside the 2,000 NetworkPolicies (half Admin, half
// Baseline: monitoring accepted, databases guarded, own team passed, other
// teams denied by baseline), for 100 local pods; "none" is the same cluster
// without them, for the ratio.
func BenchmarkCompileClusterPolicies(b *testing.B) {
	for _, n := range []int{0, 100} {
		c := clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: 100, Seed: 1, ClusterPolicies: n})
		b.Run(fmt.Sprintf("cnps=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var chains, rules int
			for i := 0; i < b.N; i++ {
				rs := Compile(c.Snapshot, "node-1")
				chains, rules = len(rs.Chains), 0
				for _, ch := range rs.Chains {
					rules += len(ch.Rules)
				}
			}
			b.ReportMetric(float64(chains), "chains")
			b.ReportMetric(float64(rules), "rules")
		})
	}
}

// BenchmarkPodLabelChange is the work of one pod's label change: build the
// new snapshot (reusing the normalised objects that did not change) and
// compile it.
func BenchmarkPodLabelChange(b *testing.B) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, Seed: 1})
	s := c.Snapshot
	nss := make([]*policy.Namespace, 0, len(s.Namespaces))
	for _, ns := range s.Namespaces {
		nss = append(nss, ns)
	}
	pods := append([]*policy.Pod(nil), s.Pods...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		changed := c.Pods[i%len(c.Pods)].DeepCopy()
		changed.Labels["app"] = fmt.Sprintf("app-%d", i%8)
		p := policy.PodFromAPI(changed)
		for j := range pods {
			if pods[j].Namespace == p.Namespace && pods[j].Name == p.Name {
				pods[j] = p
			}
		}
		Compile(policy.BuildSnapshot(nss, pods, s.Policies), "node-1")
	}
}

// scales are the cluster sizes: S1, S2, S3 (most pods on 19 other
// nodes; 60 or 100 local pods).
var scales = []struct {
	name string
	cfg  clustergen.ScaleConfig
}{
	{"S1", clustergen.ScaleConfig{Pods: 1000, Namespaces: 100, Policies: 200, LocalPods: 60, Nodes: 20, Seed: 1}},
	{"S2", clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: 60, Nodes: 20, Seed: 1}},
	{"S3", clustergen.ScaleConfig{Pods: 100000, Namespaces: 10000, Policies: 10000, LocalPods: 100, Nodes: 20, Seed: 1}},
}

// BenchmarkOneChange is the in-process work of one pod relabel on one node
// at S1, S2 and S3, from the changed pod to the ruleset and the answer to
// "did it change": "full" builds the snapshot from every object, compiles
// it and compares whole rulesets (weft before incremental sync);
// "incremental" derives the snapshot from the one before and compiles
// incrementally. No kernel, no API server: the end-to-end figures are
// make bench-scale's.
func BenchmarkOneChange(b *testing.B) {
	for _, sc := range scales {
		c := clustergen.Scale(sc.cfg)
		st := clustergen.NewStream(c)
		opts := Options{Node: "node-1"}
		relabel := func(i int) (string, *corev1.Pod) {
			p := c.Pods[(i*7919)%len(c.Pods)].DeepCopy()
			p.Labels["app"] = fmt.Sprintf("app-%d", i%8)
			return p.Namespace + "/" + p.Name, p
		}
		b.Run(sc.name+"/full", func(b *testing.B) {
			snap := st.Snapshot()
			nss := make([]*policy.Namespace, 0, len(snap.Namespaces))
			for _, ns := range snap.Namespaces {
				nss = append(nss, ns)
			}
			pods := slices.Clone(snap.Pods)
			prev := CompileWith(snap, opts)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				key, p := relabel(i)
				i++
				j := slices.IndexFunc(pods, func(q *policy.Pod) bool { return q.Key() == key })
				pods[j] = st.Pod(p)
				rs := CompileWith(policy.BuildSnapshot(nss, pods, snap.Policies), opts)
				_ = reflect.DeepEqual(prev, rs)
				prev = rs
			}
		})
		b.Run(sc.name+"/incremental", func(b *testing.B) {
			inc := NewIncremental()
			prev := inc.Compile(st.Snapshot(), opts)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				key, p := relabel(i)
				i++
				st.ApplyPods(map[string]*corev1.Pod{key: p})
				rs := inc.Compile(st.Snapshot(), opts)
				_ = reflect.DeepEqual(prev, rs)
				prev = rs
			}
		})
	}
}
