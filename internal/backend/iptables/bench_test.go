package iptables

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// The benchmark cluster: 10,000 pods in 1,000 namespaces, 2,000 policies,
// seen from node-1 holding either every pod or 100 of them.
var benchScales = []struct {
	name  string
	local int
}{{"local=100", 100}, {"local=all", 0}}

func scaleCluster(local int) *clustergen.Cluster {
	return clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, Node: "node-1", LocalPods: local, Seed: 1})
}

// scaleClusterCNPs is scaleCluster(100) with 100 ClusterNetworkPolicies
// beside the 2,000 NetworkPolicies.
func scaleClusterCNPs() *clustergen.Cluster {
	return clustergen.Scale(clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, Node: "node-1", LocalPods: 100, Seed: 1, ClusterPolicies: 100})
}

func rulesetStats(rs *ir.Ruleset) (rules, members int) {
	for _, c := range rs.Chains {
		rules += len(c.Rules)
	}
	for _, s := range rs.Sets {
		members += s.Len()
	}
	for _, g := range rs.Groups {
		members += len(g.Members)
	}
	return rules, members
}

// BenchmarkRender is the pure part of a full sync: ir to payloads.
func BenchmarkRender(b *testing.B) {
	for _, sc := range benchScales {
		rs := compile.Compile(scaleCluster(sc.local).Snapshot, "node-1")
		b.Run(sc.name, func(b *testing.B) {
			b.ReportAllocs()
			var p *Payload
			for i := 0; i < b.N; i++ {
				var err error
				if p, err = Render(rs); err != nil {
					b.Fatal(err)
				}
			}
			rules, members := rulesetStats(rs)
			b.ReportMetric(float64(len(p.IPv4)+len(p.IPv6)), "rules-bytes")
			b.ReportMetric(float64(len(p.IPSet)), "set-bytes")
			b.ReportMetric(float64(rules), "ir-rules")
			b.ReportMetric(float64(members), "set-members")
		})
	}
}

// privateNetns moves the calling goroutine's thread into a new network
// namespace for the rest of the goroutine's life (the thread is never
// unlocked, so Go retires it afterwards). Tools the backend starts from this
// goroutine inherit the namespace. It skips the benchmark when it cannot.
func privateNetns(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a network namespace")
	}
	holder := exec.Command("unshare", "--net", "sleep", "3600")
	if err := holder.Start(); err != nil {
		b.Skipf("needs unshare: %v", err)
	}
	b.Cleanup(func() {
		_ = holder.Process.Signal(syscall.SIGKILL)
		_ = holder.Wait()
	})
	self, _ := os.Readlink("/proc/self/ns/net")
	path := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net"
	for i := 0; ; i++ {
		if ns, err := os.Readlink(path); err == nil && ns != self {
			break
		}
		if i == 1000 {
			b.Fatal("unshare made no namespace within 1s")
		}
		time.Sleep(time.Millisecond)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.LockOSThread()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		b.Fatalf("setns: %v", err)
	}
}

func benchBackend(b *testing.B, mode Mode) *Backend {
	b.Helper()
	if len(missing(append(toolsFor(mode).all(), "ipset")...)) > 0 {
		b.Skipf("needs iptables-%s and ipset", mode)
	}
	be, err := New(Config{Mode: mode, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return be
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// kernelSetBytes sums what ipset reports as the sets' memory.
func kernelSetBytes(b *testing.B) int {
	out, err := exec.Command("ipset", "list", "-t").Output()
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Size in memory: "); ok {
			n, _ := strconv.Atoi(v)
			total += n
		}
	}
	return total
}

// BenchmarkApplyFull is a full sync on a node where weft holds nothing:
// render, create every set, one restore per family. Between iterations (not
// timed) everything is cleaned up.
func BenchmarkApplyFull(b *testing.B) {
	for _, mode := range []Mode{ModeNFT, ModeLegacy} {
		for _, sc := range append(slices.Clone(benchScales), struct {
			name  string
			local int
		}{"local=100/cnps=100", -1}) {
			var c *clustergen.Cluster
			if sc.local >= 0 {
				c = scaleCluster(sc.local)
			} else {
				c = scaleClusterCNPs()
			}
			rs := compile.Compile(c.Snapshot, "node-1")
			b.Run(string(mode)+"/"+sc.name, func(b *testing.B) {
				privateNetns(b)
				be := benchBackend(b, mode)
				b.ReportAllocs()
				var stats Stats
				var retained uint64
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if err := be.Cleanup(context.Background()); err != nil {
						b.Fatal(err)
					}
					before := heapInUse()
					b.StartTimer()
					if err := be.Apply(context.Background(), rs); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					retained = heapInUse() - before
					stats = be.LastStats()
					b.StartTimer()
				}
				b.StopTimer()
				b.ReportMetric(float64(stats.RulesBytes), "rules-bytes")
				b.ReportMetric(float64(stats.SetsBytes), "set-bytes")
				b.ReportMetric(float64(retained)/(1<<20), "retained-MiB")
				b.ReportMetric(float64(kernelSetBytes(b))/(1<<20), "ipset-kernel-MiB")
				_ = be.Cleanup(context.Background())
			})
		}
	}
}

// The one-pod changes, the same two as the nftables backend's benchmarks
// (so the figures compare): a new pod on the node (a copy of its first pod,
// with a new name and address), and a pod whose new app label changes only
// set members (no rule, group or set name).
func addLocalPod(b *testing.B, c *clustergen.Cluster) *ir.Ruleset {
	for _, p := range c.Pods {
		if p.Spec.NodeName == "node-1" {
			q := p.DeepCopy()
			q.Name += "-new"
			q.Status.PodIP, q.Status.PodIPs = "", []corev1.PodIP{{IP: "10.45.0.1"}}
			return compile.Compile(policy.NewSnapshot(c.Namespaces, append(slices.Clone(c.Pods), q), c.Policies), "node-1")
		}
	}
	b.Fatal("no pod on node-1")
	return nil
}

func relabelPod(b *testing.B, c *clustergen.Cluster, base *ir.Ruleset) *ir.Ruleset {
	st, err := render(base)
	if err != nil {
		b.Fatal(err)
	}
	for i, p := range c.Pods[:min(len(c.Pods), 300)] {
		for _, app := range []string{"app-1", "app-2", "app-3"} {
			if p.Labels["app"] == app {
				continue
			}
			pods := slices.Clone(c.Pods)
			q := p.DeepCopy()
			q.Labels["app"] = app
			pods[i] = q
			rs := compile.Compile(policy.NewSnapshot(c.Namespaces, pods, c.Policies), "node-1")
			next, err := render(rs)
			if err != nil {
				b.Fatal(err)
			}
			if tableDiff(st.tables[0], next.tables[0]) != "" || tableDiff(st.tables[1], next.tables[1]) != "" {
				continue // rules changed: not a membership-only change
			}
			p, err := planApply(st, next, func() string { return tempSetPrefix + "x" })
			onlyTemps := !slices.ContainsFunc(p.destroy, func(n string) bool { return !strings.HasPrefix(n, tempSetPrefix) })
			if err == nil && len(p.narrow)+len(p.widen) > 0 && p.newSets == 0 && p.staged == 0 && onlyTemps {
				return rs
			}
		}
	}
	b.Fatal("no label change of one pod changes only set members")
	return nil
}

// BenchmarkApplyOnePodChange is the update after one pod changed;
// iterations alternate between the two rulesets, so every one is a real
// change. Reported: time, the bytes sent to each tool, restores per update.
func BenchmarkApplyOnePodChange(b *testing.B) {
	for _, mode := range []Mode{ModeNFT, ModeLegacy} {
		for _, sc := range benchScales {
			c := scaleCluster(sc.local)
			base := compile.Compile(c.Snapshot, "node-1")
			for _, change := range []struct {
				name string
				rs   *ir.Ruleset
			}{
				{"add-local-pod", addLocalPod(b, c)},
				{"relabel-pod", relabelPod(b, c, base)},
			} {
				b.Run(string(mode)+"/"+sc.name+"/"+change.name, func(b *testing.B) {
					privateNetns(b)
					be := benchBackend(b, mode)
					defer func() { _ = be.Cleanup(context.Background()) }()
					if err := be.Apply(context.Background(), base); err != nil {
						b.Fatal(err)
					}
					rulesets := [2]*ir.Ruleset{change.rs, base}
					b.ReportAllocs()
					b.ResetTimer()
					var rulesBytes, setBytes, restores int
					for i := 0; i < b.N; i++ {
						if err := be.Apply(context.Background(), rulesets[i%2]); err != nil {
							b.Fatal(err)
						}
						s := be.LastStats()
						rulesBytes += s.RulesBytes
						setBytes += s.SetsBytes
						restores += s.Restores
					}
					b.StopTimer()
					b.ReportMetric(float64(rulesBytes)/float64(b.N), "rules-bytes/op")
					b.ReportMetric(float64(setBytes)/float64(b.N), "set-bytes/op")
					b.ReportMetric(float64(restores)/float64(b.N), "restores/op")
				})
			}
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkCheckHooks is the check of weft's jump that runs on every sync,
// with the benchmark cluster's ruleset (local=100) applied and nothing to
// repair: one `iptables -w -S FORWARD 1` per family, on the sample ruleset
// and on the benchmark cluster's. exec-floor is the start of /bin/true,
// what any command costs on the machine.
func BenchmarkCheckHooks(b *testing.B) {
	b.Run("exec-floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	rulesets := []struct {
		name string
		rs   *ir.Ruleset
	}{{"sample", sampleRuleset()}, {"local=100", compile.Compile(scaleCluster(100).Snapshot, "node-1")}}
	for _, mode := range []Mode{ModeNFT, ModeLegacy} {
		for _, r := range rulesets {
			b.Run(string(mode)+"/"+r.name, func(b *testing.B) {
				rs := r.rs
				privateNetns(b)
				be := benchBackend(b, mode)
				defer func() { _ = be.Cleanup(context.Background()) }()
				if err := be.Apply(context.Background(), rs); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if r, err := be.CheckHooks(context.Background()); r != nil || err != nil {
						b.Fatalf("nothing to repair, got %q, %v", r, err)
					}
				}
				b.StopTimer()
				rules := 0
				for _, t := range be.applied.tables {
					for _, c := range t.chains {
						rules += len(c)
					}
				}
				b.ReportMetric(float64(rules), "weft-rules")
			})
		}
	}
}
