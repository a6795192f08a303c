package scale

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/internal/lab"
)

// starts measures only weft's cold start with backend, n times on the
// loaded world (WEFT_SCALE_STARTS=n): each time from an empty packet filter
// to the first of a run of blocked probes, then the allowed path found open.
// It logs each start with weft's own account of it (when the list was in,
// and the first sync's snapshot, compile and apply), and with profileDir
// (WEFT_SCALE_PROFILE) it saves a CPU profile of the first start's
// profileSeconds, from weft's --profiling endpoint.
func (w *world) starts(b *testing.B, bin, backend string, n int, profileDir string) {
	ctx := context.Background()
	l, node, pl := w.lab, w.node, w.plan
	target := lab.Target{Protocol: corev1.ProtocolTCP, Port: w.s.probePort, Family: lab.IPv4}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	var took []time.Duration
	for i := range n {
		w.emptyFilter(b, bin, target)
		o := lab.WeftOptions{Binary: bin, Backend: backend}
		profile := profileDir != "" && i == 0
		if profile {
			o.Args = append(o.Args, "--profiling")
		}
		start := time.Now()
		proc, err := l.StartWeft(ctx, node, o)
		if err != nil {
			b.Fatal(err)
		}
		var profiled chan error
		if profile {
			profiled = make(chan error, 1)
			path := filepath.Join(profileDir, fmt.Sprintf("cpu-%s-%s.pprof", w.s.Name, backend))
			go func() { profiled <- fetchProfile(ctx, node, path) }()
		}
		sctx, cancel := context.WithTimeout(ctx, startWait)
		stalls := 0
		at, err := w.waitState(sctx, pl.blocked, target, false, startProbe, &stalls)
		if err == nil {
			_, err = l.WaitTransition(sctx, w.lpod(pl.allowed.from), w.lpod(pl.allowed.to), target, true, openProbe)
		}
		cancel()
		if err != nil {
			b.Fatalf("%s/%s start %d: %v\nweft's log ends:\n%s", w.s.Name, backend, i+1, err, tail(proc.Log(), 30))
		}
		took = append(took, at.Sub(start))
		// (Printed, not b.Logf: a benchmark's log is cut at a few lines.)
		fmt.Printf("%s/%s start %d: enforcing after %v; weft says:\n%s\n", w.s.Name, backend, i+1,
			at.Sub(start).Round(time.Millisecond), startLines(proc.Log()))
		if profiled != nil {
			if err := <-profiled; err != nil {
				b.Errorf("CPU profile: %v", err)
			}
		}
		if err := l.StopWeft(proc); err != nil {
			b.Errorf("weft --backend %s: %v", backend, err)
		}
	}
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "start-to-enforcing-p50-ms")
	b.ReportMetric(ms(took[0]), "start-to-enforcing-min-ms")
	if err := l.WeftCleanup(ctx, node, bin, backend); err != nil {
		b.Error(err)
	}
}

// timeLists logs how long the API server takes to list every pod to a
// client that only counts them, as weft's informers ask (protobuf, from the
// watch cache, pages of 500), with and without gzip, and in one page: the
// floor under weft's start.
func (w *world) timeLists(b *testing.B) {
	for _, c := range []struct {
		what  string
		gzip  bool
		limit int64
	}{{"protobuf, gzip, pages of 500", true, 500}, {"protobuf, no gzip, pages of 500", false, 500}, {"protobuf, no gzip, one page", false, 0}} {
		cfg := w.lab.RESTConfig()
		cfg.QPS = -1
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
		cfg.DisableCompression = !c.gzip
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		pods, pages := 0, 0
		opts := metav1.ListOptions{ResourceVersion: "0", Limit: c.limit}
		for {
			l, err := client.CoreV1().Pods("").List(context.Background(), opts)
			if err != nil {
				b.Fatalf("list pods (%s): %v", c.what, err)
			}
			pods += len(l.Items)
			pages++
			if l.Continue == "" {
				break
			}
			opts.Continue, opts.ResourceVersion = l.Continue, ""
		}
		fmt.Printf("%s: the API server lists %d pods (%s) in %v, %d pages\n", w.s.Name, pods, c.what, time.Since(start).Round(time.Millisecond), pages)
	}
}

// profileSeconds is how much of the start a CPU profile covers.
const profileSeconds = 15

// fetchProfile saves weft's CPU profile of its first profileSeconds to
// path, asking as soon as weft's HTTP endpoint answers.
func fetchProfile(ctx context.Context, node *lab.Node, path string) error {
	client := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 2 * profileSeconds * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:6781/debug/pprof/profile?seconds=%d", profileSeconds)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err != nil {
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

// startLines are the lines of weft's log that time its start.
func startLines(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		for _, m := range []string{"starting", "still listing", "cluster view synced", "first ruleset applied"} {
			if strings.Contains(line, m) {
				out = append(out, "    "+line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
