package watch

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
)

// memoryScales are the scales: S1, S2 and S3, with 20 nodes as in
// the lab where they were measured.
var memoryScales = []struct {
	name string
	cfg  clustergen.ScaleConfig
}{
	{"S1", clustergen.ScaleConfig{Pods: 1000, Namespaces: 100, Policies: 200, LocalPods: 60, Nodes: 20, Seed: 1}},
	{"S2", clustergen.ScaleConfig{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: 60, Nodes: 20, Seed: 1}},
	{"S3", clustergen.ScaleConfig{Pods: 100000, Namespaces: 10000, Policies: 10000, LocalPods: 100, Nodes: 20, Seed: 1}},
}

// heapLive is the heap in use after a full collection.
func heapLive() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fakeClientOf loads a fake clientset with a scale cluster, as the API
// server would serve it: UIDs, resource versions, Node objects.
func fakeClientOf(c *clustergen.Cluster, nodes int) *fake.Clientset {
	client := fake.NewClientset()
	add := func(gvr schema.GroupVersionResource, obj metav1.Object, ns string) {
		obj.SetUID(types.UID(fmt.Sprintf("%s/%s/%s", gvr.Resource, ns, obj.GetName())))
		obj.SetResourceVersion("1")
	}
	tr := client.Tracker()
	for _, ns := range c.Namespaces {
		ns = ns.DeepCopy()
		add(corev1.SchemeGroupVersion.WithResource("namespaces"), ns, "")
		must(tr.Add(ns))
	}
	for i := range nodes {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: clustergen.NodeName(i)}}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: netip.AddrFrom4([4]byte{192, 168, 0, byte(i + 1)}).String()}}
		n.Spec.PodCIDRs = []string{fmt.Sprintf("10.%d.0.0/16", 64+i)}
		add(corev1.SchemeGroupVersion.WithResource("nodes"), n, "")
		must(tr.Add(n))
	}
	for _, p := range c.Pods {
		p = p.DeepCopy()
		add(corev1.SchemeGroupVersion.WithResource("pods"), p, p.Namespace)
		must(tr.Add(p))
	}
	for _, np := range c.Policies {
		np = np.DeepCopy()
		add(corev1.SchemeGroupVersion.WithResource("networkpolicies"), np, np.Namespace)
		must(tr.Add(np))
	}
	return client
}

// heapProfileDir, when set, receives a heap profile of each scale after its
// second sync (heap-S2.pprof): go tool pprof -sample_index=inuse_space.
var heapProfileDir = flag.String("heapprofile", "", "folder for heap profiles of BenchmarkWatcherMemory")

func writeHeapProfile(b *testing.B, name string) {
	if *heapProfileDir == "" {
		return
	}
	f, err := os.Create(filepath.Join(*heapProfileDir, "heap-"+name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// BenchmarkWatcherMemory measures the heap weft's view holds at the
// issue's scales, fed by client-go's fake clientset (which holds its own
// copy of every object; that copy is not counted): the informers' caches
// after the initial list (MB-informers), plus the normalised snapshot
// (MB-snapshot), plus the compiled ruleset (MB-ruleset), and the same after
// a second snapshot and compile, as the syncer holds the applied ones while
// it builds the next (MB-two-syncs). Run with -benchtime=1x; -memprofile
// shows where it goes.
func BenchmarkWatcherMemory(b *testing.B) {
	for _, sc := range memoryScales {
		b.Run(sc.name, func(b *testing.B) {
			c := clustergen.Scale(sc.cfg)
			client := fakeClientOf(c, sc.cfg.Nodes)
			c = nil
			node := clustergen.NodeName(0)
			for b.Loop() {
				base := heapLive()
				ctx, cancel := context.WithCancel(context.Background())
				// The fake has no discovery client for the probe: probe never.
				w := New(client, slog.New(slog.DiscardHandler), Config{ProbeInterval: time.Hour})
				w.Start(ctx)
				if err := w.WaitForSync(ctx, time.Minute); err != nil {
					b.Fatal(err)
				}
				informers := heapLive()
				snap, err := w.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				snapshot := heapLive()
				rs := compile.Compile(snap, node)
				ruleset := heapLive()
				snap2, err := w.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				rs2 := compile.Compile(snap2, node)
				two := heapLive()
				writeHeapProfile(b, sc.name)
				mb := func(v uint64) float64 { return float64(v-base) / 1e6 }
				b.ReportMetric(mb(informers), "MB-informers")
				b.ReportMetric(mb(snapshot), "MB-snapshot")
				b.ReportMetric(mb(ruleset), "MB-ruleset")
				b.ReportMetric(mb(two), "MB-two-syncs")
				b.ReportMetric(float64(len(rs.Sets)), "sets")
				runtime.KeepAlive(snap)
				runtime.KeepAlive(rs)
				runtime.KeepAlive(rs2)
				cancel()
				w.inf.stop()
			}
		})
	}
}
