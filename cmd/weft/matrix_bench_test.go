package main

import (
	"fmt"
	"testing"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/manifest"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/watch"
)

// BenchmarkMatrix is the cost of a matrix (pods² evaluator decisions) in a
// cluster of 2,000 pods and 1,000 policies: one namespace's 40 pods, and
// 200 pods across namespaces.
func BenchmarkMatrix(b *testing.B) {
	c := clustergen.Scale(clustergen.ScaleConfig{Pods: 2000, Namespaces: 50, Policies: 1000, Seed: 1})
	snap := watch.NewSnapshot(&manifest.Objects{Namespaces: c.Namespaces, Pods: c.Pods, Policies: c.Policies})
	for _, n := range []int{40, 200} {
		var pods []*policy.Pod
		if n == 40 {
			pods = snap.PodsIn("ns-0")
		} else {
			pods = snap.Pods[:n]
		}
		q := matrixQuery{family: 4, protocol: policy.TCP, port: 80}
		b.Run(fmt.Sprintf("pods=%d", len(pods)), func(b *testing.B) {
			for b.Loop() {
				q.compute(snap, pods)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pods)*len(pods)), "ns/cell")
		})
	}
}
