package nftables

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
)

// The cluster of the benchmarks, the same as compile's and the iptables
// backend's: 10,000 pods in 1,000 namespaces, 2,000 policies; node-1 runs 100
// of the pods (a node of a 100-node cluster) or all of them (the worst case).
var benchLocal = []int{100, 0}

func benchCluster(local int) (*clustergen.Cluster, string) {
	name := "local=all"
	if local > 0 {
		name = fmt.Sprintf("local=%d", local)
	}
	return clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: local, Seed: 1}), name
}

// benchInnerEnv marks the re-run of a benchmark inside a private namespace.
const benchInnerEnv = "WEFT_NFTABLES_BENCH_INNER"

// enterNetnsBench returns true when the benchmark runs inside a private
// network namespace and should go on. Otherwise it re-runs just this
// benchmark there under `unshare --net` (its figures print as lines of their
// own) and skips the outer one. Kernel benchmarks never touch the host's
// firewall.
func enterNetnsBench(b *testing.B) bool {
	b.Helper()
	if os.Getenv(benchInnerEnv) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"unshare", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s on PATH", tool)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"--net", exe, "-test.run=^$", "-test.bench=^" + b.Name() + "$", "-test.benchmem"}
	for _, f := range []string{"test.benchtime", "test.count", "test.cpu"} {
		if fl := flag.Lookup(f); fl != nil && fl.Value.String() != fl.DefValue {
			args = append(args, "-"+f+"="+fl.Value.String())
		}
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), benchInnerEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("benchmark inside a private network namespace: %v", err)
	}
	b.Skip("ran inside a private network namespace: see the lines above")
	return false
}

// BenchmarkRender is the backend's own CPU work of a full sync, without nft:
// render the ruleset, build the transaction, and write its text.
func BenchmarkRender(b *testing.B) {
	for _, local := range benchLocal {
		c, name := benchCluster(local)
		rs := compile.Compile(c.Snapshot, "node-1")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var st SyncStats
			for i := 0; i < b.N; i++ {
				d, err := render(rs)
				if err != nil {
					b.Fatal(err)
				}
				tx := knftables.NewFake(knftables.InetFamily, tableName).NewTransaction()
				st = SyncStats{}
				writeFull(tx, d, &st, elementBatch)
				st.Operations, st.Bytes = tx.NumOperations(), len(tx.String())
			}
			b.ReportMetric(float64(st.Operations), "nft-ops")
			b.ReportMetric(float64(st.Bytes), "tx-bytes")
		})
	}
}

// BenchmarkKernelFullSync: the first sync of a process (adopt and replace the
// whole table) in the real kernel, nft included. tx-bytes is the size of the
// transaction; retained-bytes the Go heap the backend keeps to diff the next
// sync against.
func BenchmarkKernelFullSync(b *testing.B) {
	if !enterNetnsBench(b) {
		return
	}
	type scale struct {
		c    *clustergen.Cluster
		name string
	}
	var scales []scale
	for _, local := range benchLocal {
		c, name := benchCluster(local)
		scales = append(scales, scale{c, name})
	}
	// The same cluster with 100 ClusterNetworkPolicies beside the 2,000
	// NetworkPolicies, for 100 local pods.
	scales = append(scales, scale{clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: 100, Seed: 1, ClusterPolicies: 100}), "local=100/cnps=100"})
	for _, sc := range scales {
		rs := compile.Compile(sc.c.Snapshot, "node-1")
		b.Run(sc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			var st SyncStats
			var retained uint64
			for i := 0; i < b.N; i++ {
				before := heapInUse()
				be, err := New(Config{Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				if err := be.Apply(ctx, rs); err != nil {
					b.Fatal(err)
				}
				st = be.LastSync()
				if after := heapInUse(); after > before {
					retained = after - before
				}
				runtime.KeepAlive(be)
			}
			b.ReportMetric(float64(st.Operations), "nft-ops")
			b.ReportMetric(float64(st.Bytes), "tx-bytes")
			b.ReportMetric(float64(st.Duration.Nanoseconds()), "nft-ns")
			b.ReportMetric(float64(retained), "retained-bytes")
		})
	}
}

// BenchmarkKernelOnePodChange: one pod's change after a full sync at 10,000
// pods, in the real kernel. Each iteration applies the ruleset with the
// change, or back without it; render, diff and nft included, compile not
// (see compile's BenchmarkPodLabelChange).
func BenchmarkKernelOnePodChange(b *testing.B) {
	if !enterNetnsBench(b) {
		return
	}
	for _, local := range benchLocal {
		c, name := benchCluster(local)
		node := "node-1"
		base := compile.Compile(c.Snapshot, node)
		for _, change := range []struct {
			name string
			pods []*corev1.Pod
		}{
			{"add-local-pod", addLocalPod(c, node)},
			{"relabel-pod", relabelOnePod(c, node)},
		} {
			changed := compile.Compile(rebuild(c, change.pods), node)
			b.Run(name+"/"+change.name, func(b *testing.B) {
				ctx := context.Background()
				be, err := New(Config{Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				if err := be.Apply(ctx, base); err != nil {
					b.Fatal(err)
				}
				rulesets := [2]*ir.Ruleset{changed, base}
				var ops, bytes int
				var inNft time.Duration
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := be.Apply(ctx, rulesets[i%2]); err != nil {
						b.Fatal(err)
					}
					st := be.LastSync()
					if !st.ElementsOnly() {
						b.Fatalf("one pod change rewrote more than elements: %+v", st)
					}
					ops += st.Operations
					bytes += st.Bytes
					inNft += st.Duration
				}
				b.ReportMetric(float64(ops)/float64(b.N), "nft-ops/op")
				b.ReportMetric(float64(bytes)/float64(b.N), "tx-bytes/op")
				b.ReportMetric(float64(inNft.Nanoseconds())/float64(b.N), "nft-ns/op")
			})
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkKernelReadBack: what reading the table back costs at 10,000 pods
// (100 local): the rules alone (the baseline taken after each apply that
// writes a chain), and a whole Verify (rules, sets and elements, compared).
func BenchmarkKernelReadBack(b *testing.B) {
	if !enterNetnsBench(b) {
		return
	}
	c, _ := benchCluster(100)
	rs := compile.Compile(c.Snapshot, "node-1")
	ctx := context.Background()
	be, err := New(Config{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Apply(ctx, rs); err != nil {
		b.Fatal(err)
	}
	b.Run("rules", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := be.takeBaseline(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			drift, err := be.Verify(ctx, false)
			if err != nil || len(drift) > 0 {
				b.Fatalf("drift %v, %v", drift, err)
			}
		}
	})
}
