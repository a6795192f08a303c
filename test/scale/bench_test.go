package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/status"
)

const (
	// churnRate is the background churn's writes per second.
	churnRate = 50
	// changeWait bounds the wait for one change to be enforced; a change
	// not seen by then counts as a timeout.
	changeWait = 60 * time.Second
	// startWait bounds weft's start.
	startWait = 10 * time.Minute
)

// Probe settings: an attempt every 5 ms; a path is open at the first
// attempt that connects, blocked at the first of three in a row that do
// not (each given 200 ms).
var (
	openProbe    = lab.TransitionOptions{Interval: 5 * time.Millisecond, Timeout: 200 * time.Millisecond}
	blockedProbe = lab.TransitionOptions{Interval: 5 * time.Millisecond, Timeout: 200 * time.Millisecond, Confirm: 3}
	// startProbe asks more of a blocked path while weft starts, when the
	// cores are busiest and a slow answer looks most like a drop.
	startProbe = lab.TransitionOptions{Interval: 5 * time.Millisecond, Timeout: 250 * time.Millisecond, Confirm: 5}
)

// BenchmarkScale is the scale benchmark: for each scale a lab loaded with
// its cluster, then weft with each backend on node-1, measured by probes
// between real local pods (see the package documentation). Run with
// -benchtime 1x: one measurement is minutes long.
func BenchmarkScale(b *testing.B) {
	bin, commit := needWeft(b)
	changes := envCount(b, "WEFT_SCALE_CHANGES", 40, "changes per kind, 30 or more for p99")
	starts := envCount(b, "WEFT_SCALE_STARTS", 0, "cold starts to time (and nothing else)")
	for _, s := range scales {
		s.changes = changes
		b.Run(s.Name, func(b *testing.B) {
			w := loadWorld(b, s)
			if starts > 0 {
				w.timeLists(b)
			}
			for _, backend := range []string{"iptables", "nftables"} {
				b.Run(backend, func(b *testing.B) {
					if starts > 0 {
						w.starts(b, bin, backend, starts, os.Getenv("WEFT_SCALE_PROFILE"))
						return
					}
					w.run(b, bin, commit, backend)
				})
			}
		})
	}
}

// envCount is the whole number in environment variable name (what it
// counts), or def when it is unset.
func envCount(b *testing.B, name string, def int, what string) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number of %s", name, v, what)
	}
	return n
}

// series are the latencies of one kind of change.
type series struct {
	lat      []time.Duration
	timeouts int
}

// result is one backend's figures at one scale.
type result struct {
	enforcing, ready   time.Duration
	series             map[string]*series
	rssMiB             float64
	startCPU, runCPU   float64
	counts             status.Counts
	churnRate          float64
	stalls             int
	churnFailed        int64
	changesPerKindWant int
}

// run measures weft with backend on the loaded world.
func (w *world) run(b *testing.B, bin, commit, backend string) {
	ctx := context.Background()
	l, node, pl := w.lab, w.node, w.plan
	target := lab.Target{Protocol: corev1.ProtocolTCP, Port: w.s.probePort, Family: lab.IPv4}
	w.emptyFilter(b, bin, target)
	res := &result{series: map[string]*series{}, changesPerKindWant: w.s.changes}
	b.ResetTimer()
	start := time.Now()
	proc, err := l.StartWeft(ctx, node, lab.WeftOptions{Binary: bin, Backend: backend})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.StopWeft(proc); err != nil {
			b.Errorf("weft --backend %s: %v", backend, err)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.WeftCleanup(cctx, node, bin, backend); err != nil {
			b.Error(err)
		}
	})
	// Every wait ends when weft does.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-wctx.Done():
		}
	}()
	fail := func(format string, args ...any) {
		b.Helper()
		b.Fatalf("%s/%s: %s\nweft's log (%s) ends:\n%s", w.s.Name, backend, fmt.Sprintf(format, args...), proc.LogPath, tail(proc.Log(), 30))
	}
	readyc := make(chan error, 1)
	go func() {
		rctx, rcancel := context.WithTimeout(wctx, startWait)
		defer rcancel()
		err := l.WaitWeftReady(rctx, node, proc)
		res.ready = time.Since(start)
		readyc <- err
	}()
	// Start → enforcing: the blocked path blocked, then the allowed path
	// found open.
	sctx, scancel := context.WithTimeout(wctx, startWait)
	blockedAt, err := w.waitState(sctx, pl.blocked, target, false, startProbe, &res.stalls)
	scancel()
	if err != nil {
		fail("start: %s never blocked: %v", pl.blocked, err)
	}
	res.enforcing = blockedAt.Sub(start)
	res.startCPU, _ = cpuSeconds(proc.PID())
	octx, ocancel := context.WithTimeout(wctx, changeWait)
	_, err = l.WaitTransition(octx, w.lpod(pl.allowed.from), w.lpod(pl.allowed.to), target, true, openProbe)
	ocancel()
	if err != nil {
		fail("start: %s (let in by %v) blocked once enforcing: %v", pl.allowed, pl.allowedBy, err)
	}
	if err := <-readyc; err != nil {
		fail("/readyz: %v", err)
	}
	b.Logf("%s/%s: enforcing after %v (/readyz %v): %s blocked, %s open (%v)", w.s.Name, backend,
		res.enforcing.Round(time.Millisecond), res.ready.Round(time.Millisecond), pl.blocked, pl.allowed, pl.allowedBy)

	m := &measurer{w: w, b: b, ctx: wctx, target: target, res: res, fail: fail}
	m.phases("")
	ch := w.startChurn(ctx)
	m.phases("churn-")
	res.churnRate, res.churnFailed = ch.stop()
	b.StopTimer()

	res.runCPU, _ = cpuSeconds(proc.PID())
	if res.rssMiB, err = peakRSSMiB(proc.PID()); err != nil {
		b.Error(err)
	}
	if res.counts, err = weftCounts(wctx, node); err != nil {
		b.Error(err)
	}
	w.report(b, commit, backend, res)
}

// emptyFilter removes whatever either backend left on node-1 and checks
// that the cold start's paths connect with no packet filter.
func (w *world) emptyFilter(b *testing.B, bin string, target lab.Target) {
	b.Helper()
	ctx := context.Background()
	for _, be := range []string{"iptables", "nftables"} {
		if err := w.lab.WeftCleanup(ctx, w.node, bin, be); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range []pair{w.plan.blocked, w.plan.allowed} {
		if r := w.lab.Probe(ctx, w.lpod(p.from), w.lpod(p.to), target); !r.Connected {
			b.Fatalf("%s: with no packet filter %s does not connect: %v", w.s.Name, p, r.Err)
		}
	}
}

// holdBlocked is how long a path found blocked must stay so for the
// finding to count: on a busy machine a few probes in a row can go
// unanswered in time with nothing blocking them (seen once at S3, before
// weft had applied anything).
const holdBlocked = 500 * time.Millisecond

// waitState is lab.WaitTransition from p.from to p.to; a path found
// blocked is then probed for holdBlocked, and if a probe connects the
// finding was a stall: it is counted in stalls and the wait starts again.
func (w *world) waitState(ctx context.Context, p pair, target lab.Target, open bool, o lab.TransitionOptions, stalls *int) (time.Time, error) {
	from, to := w.lpod(p.from), w.lpod(p.to)
	for {
		at, err := w.lab.WaitTransition(ctx, from, to, target, open, o)
		if err != nil || open {
			return at, err
		}
		hctx, cancel := context.WithTimeout(ctx, holdBlocked)
		_, err = w.lab.WaitTransition(hctx, from, to, target, true, openProbe)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, fmt.Errorf("wait for %s to stay blocked: %w", p, ctx.Err())
			}
			return at, nil
		}
		*stalls++
	}
}

// measurer times changes on one running weft.
type measurer struct {
	w      *world
	b      *testing.B
	ctx    context.Context
	target lab.Target
	res    *result
	fail   func(format string, args ...any)
}

// phases times, prefix before each kind's name, s.changes policy creates
// and deletes, then as many relabels in and out, rotating over the plan's
// pairs. Each change is undone (timed as the opposite kind) before the next.
func (m *measurer) phases(prefix string) {
	api := m.w.client
	for _, p := range m.w.plan.pairs {
		m.wait(p, false, "before the changes")
	}
	pairs := m.w.plan.pairs
	for c := range m.w.s.changes {
		p := pairs[c%len(pairs)]
		m.change(prefix, "policy-create", "policy-delete", p,
			func() error {
				_, err := api.NetworkingV1().NetworkPolicies(p.allow.Namespace).Create(m.ctx, p.allow, metav1.CreateOptions{})
				return err
			},
			func() error {
				return api.NetworkingV1().NetworkPolicies(p.allow.Namespace).Delete(m.ctx, p.allow.Name, metav1.DeleteOptions{})
			})
	}
	for c := range m.w.s.changes {
		p := pairs[c%len(pairs)]
		label := func(value any) func() error {
			return func() error {
				patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{m.w.s.friendLabel: value}}})
				_, err := api.CoreV1().Pods(p.from.Namespace).Patch(m.ctx, p.from.Name, types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			}
		}
		m.change(prefix, "relabel-in", "relabel-out", p, label(p.label), label(nil))
	}
}

// change opens p with open (timed as kind openKind), then closes it with
// close (timed as closeKind).
func (m *measurer) change(prefix, openKind, closeKind string, p pair, open, close func() error) {
	t0 := time.Now()
	if err := open(); err != nil {
		m.fail("%s %s: %v", openKind, p, err)
	}
	opened := m.record(prefix+openKind, p, true, t0)
	t0 = time.Now()
	if err := close(); err != nil {
		m.fail("%s %s: %v", closeKind, p, err)
	}
	if opened {
		m.record(prefix+closeKind, p, false, t0)
	} else {
		m.wait(p, false, "after a "+openKind+" that timed out")
	}
}

// record waits for p to become open (or blocked) and adds the time from t0
// to the first probe that showed it; a wait longer than changeWait is
// counted as a timeout.
func (m *measurer) record(kind string, p pair, open bool, t0 time.Time) bool {
	s := m.res.series[kind]
	if s == nil {
		s = &series{}
		m.res.series[kind] = s
	}
	o := blockedProbe
	if open {
		o = openProbe
	}
	ctx, cancel := context.WithTimeout(m.ctx, changeWait)
	defer cancel()
	at, err := m.w.waitState(ctx, p, m.target, open, o, &m.res.stalls)
	if err != nil {
		if m.ctx.Err() != nil {
			m.fail("%s %s: weft ended: %v", kind, p, err)
		}
		s.timeouts++
		m.b.Logf("%s %s: not enforced within %v: %v", kind, p, changeWait, err)
		return false
	}
	s.lat = append(s.lat, max(0, at.Sub(t0)))
	return true
}

// wait waits, untimed, until p is blocked (or open).
func (m *measurer) wait(p pair, open bool, when string) {
	ctx, cancel := context.WithTimeout(m.ctx, changeWait)
	defer cancel()
	o := blockedProbe
	if open {
		o = openProbe
	}
	if _, err := m.w.waitState(ctx, p, m.target, open, o, &m.res.stalls); err != nil {
		m.fail("%s: %s is not %s: %v", when, p, map[bool]string{true: "open", false: "blocked"}[open], err)
	}
}

// churn is the background writes: API-only pods relabelled (their app
// label, which monitoring peers of local pods select) and policies of
// namespaces without local pods edited (a port added or removed), churnRate
// a second in turn.
type churn struct {
	halt     chan struct{}
	done     sync.WaitGroup
	begin    time.Time
	writes   atomic.Int64
	failed   atomic.Int64
	podState []bool
	polState []bool
	mu       sync.Mutex
}

func (w *world) startChurn(ctx context.Context) *churn {
	c := &churn{halt: make(chan struct{}), begin: time.Now(),
		podState: make([]bool, len(w.churnPods)), polState: make([]bool, len(w.churnPolicies))}
	ops := make(chan int)
	// Enough writers that a slow API server (a write takes 20-200 ms
	// while weft and the probes share the cores) still gets churnRate.
	for range 16 {
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			for i := range ops {
				if err := w.churnOnce(ctx, c, i); err != nil {
					c.failed.Add(1)
				} else {
					c.writes.Add(1)
				}
			}
		}()
	}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		defer close(ops)
		tick := time.NewTicker(time.Second / churnRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-c.halt:
				return
			case <-tick.C:
			}
			select {
			case ops <- i:
			case <-c.halt:
				return
			}
		}
	}()
	return c
}

// stop ends the churn and returns the writes a second it achieved and the
// writes that failed.
func (c *churn) stop() (float64, int64) {
	close(c.halt)
	c.done.Wait()
	return float64(c.writes.Load()) / time.Since(c.begin).Seconds(), c.failed.Load()
}

func (w *world) churnOnce(ctx context.Context, c *churn, i int) error {
	if i%2 == 0 {
		k := (i / 2) % len(w.churnPods)
		p := w.churnPods[k]
		c.mu.Lock()
		c.podState[k] = !c.podState[k]
		moved := c.podState[k]
		c.mu.Unlock()
		app := p.Labels["app"]
		if moved {
			n, _ := strconv.Atoi(strings.TrimPrefix(app, "app-"))
			app = fmt.Sprintf("app-%d", (n+1)%8)
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{"app": app}}})
		_, err := w.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	k := (i / 2) % len(w.churnPolicies)
	p := w.churnPolicies[k]
	c.mu.Lock()
	c.polState[k] = !c.polState[k]
	edited := c.polState[k]
	c.mu.Unlock()
	ingress := make([]networkingv1.NetworkPolicyIngressRule, len(p.Spec.Ingress))
	for j := range p.Spec.Ingress {
		p.Spec.Ingress[j].DeepCopyInto(&ingress[j])
	}
	if edited && len(ingress) > 0 {
		tcp := corev1.ProtocolTCP
		port := intstr.FromInt32(8081)
		ingress[0].Ports = append(ingress[0].Ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port})
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"ingress": ingress}})
	if err != nil {
		return err
	}
	_, err = w.client.NetworkingV1().NetworkPolicies(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("churn: policy %s/%s is gone: %w", p.Namespace, p.Name, err)
	}
	return err
}

// cpuSeconds is the process's user and system CPU time (/proc/PID/stat,
// in clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of weft: %w", err)
	}
	// The command name may hold spaces: fields count from after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of weft: /proc/%d/stat has %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time of weft: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return (utime + stime) / 100, nil
}

// peakRSSMiB is the process's peak resident set (VmHWM).
func peakRSSMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS of weft: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS of weft: %q: %w", line, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("read peak RSS of weft: no VmHWM in /proc/%d/status", pid)
}

// weftCounts asks weft on node for the size of the ruleset in force (GET
// /status on its metrics address).
func weftCounts(ctx context.Context, node *lab.Node) (status.Counts, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:6781/status", nil)
	if err != nil {
		return status.Counts{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return status.Counts{}, fmt.Errorf("weft /status: %w", err)
	}
	defer resp.Body.Close()
	var r status.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return status.Counts{}, fmt.Errorf("weft /status: %s: %w", resp.Status, err)
	}
	return r.Counts, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kinds are the changes timed, in the table's order.
var kinds = []string{"policy-create", "policy-delete", "relabel-in", "relabel-out"}

// percentile is the p-quantile of sorted d (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d))*p+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report gives the figures to the benchmark and the table.
func (w *world) report(b *testing.B, commit, backend string, r *result) {
	s := w.s
	b.ReportMetric(w.loadTime.Seconds(), "api-load-s")
	b.ReportMetric(ms(r.enforcing), "start-to-enforcing-ms")
	b.ReportMetric(ms(r.ready), "start-to-readyz-ms")
	cells := []string{
		fmt.Sprintf("%s: %s pods / %s ns / %s policies, %d local pods", s.Name, thousands(s.Pods), thousands(s.Namespaces), thousands(s.Policies), s.LocalPods),
		backend, commit,
		fmt.Sprintf("%s (%s)", thousands(int(ms(r.enforcing))), thousands(int(ms(r.ready)))),
	}
	timeouts := 0
	for _, prefix := range []string{"", "churn-"} {
		for _, k := range kinds {
			sr := r.series[prefix+k]
			if sr == nil || len(sr.lat) == 0 {
				cells = append(cells, "none")
				if sr != nil {
					timeouts += sr.timeouts
				}
				continue
			}
			slices.Sort(sr.lat)
			p50, p99, mx := percentile(sr.lat, 0.5), percentile(sr.lat, 0.99), sr.lat[len(sr.lat)-1]
			b.ReportMetric(ms(p50), prefix+k+"-p50-ms")
			b.ReportMetric(ms(p99), prefix+k+"-p99-ms")
			b.ReportMetric(ms(mx), prefix+k+"-max-ms")
			cell := fmt.Sprintf("%.0f / %.0f / %.0f", ms(p50), ms(p99), ms(mx))
			if len(sr.lat) < 30 {
				cell += fmt.Sprintf(" (%d samples)", len(sr.lat))
			}
			if sr.timeouts > 0 {
				cell += fmt.Sprintf(" (%d timed out)", sr.timeouts)
			}
			timeouts += sr.timeouts
			cells = append(cells, cell)
		}
	}
	b.ReportMetric(float64(r.changesPerKindWant), "changes-per-kind")
	b.ReportMetric(float64(timeouts), "timeouts")
	b.ReportMetric(r.churnRate, "churn-writes/s")
	b.ReportMetric(float64(r.stalls), "probe-stalls")
	b.ReportMetric(r.rssMiB, "peak-rss-MiB")
	b.ReportMetric(r.startCPU, "start-cpu-s")
	b.ReportMetric(r.runCPU, "run-cpu-s")
	b.ReportMetric(float64(r.counts.Sets), "sets")
	b.ReportMetric(float64(r.counts.Elements), "set-elements")
	b.ReportMetric(float64(r.counts.Chains), "chains")
	b.ReportMetric(float64(r.counts.Rules), "rules")
	if r.stalls > 0 {
		b.Logf("%s/%s: %d times a path found blocked connected again within %v (a stalled machine, not weft): those findings were dropped", s.Name, backend, r.stalls, holdBlocked)
	}
	if r.churnFailed > 0 {
		b.Logf("%s/%s: %d churn writes failed", s.Name, backend, r.churnFailed)
	}
	cells = append(cells,
		fmt.Sprintf("%.0f", r.churnRate),
		fmt.Sprintf("%.0f", r.rssMiB),
		fmt.Sprintf("%.1f / %.1f", r.startCPU, r.runCPU),
		fmt.Sprintf("%s / %s / %s / %s", thousands(r.counts.Sets), thousands(r.counts.Elements), thousands(r.counts.Chains), thousands(r.counts.Rules)),
		fmt.Sprintf("%.0f", w.loadTime.Seconds()),
	)
	addRow("| " + strings.Join(cells, " | ") + " |")
	if timeouts > 0 {
		b.Errorf("%s/%s: %d changes were not enforced within %v", s.Name, backend, timeouts, changeWait)
	}
}

// tableHeader heads the rows report prints.
const tableHeader = `| scale | backend | commit | start → enforcing (→ /readyz), ms | policy create, p50 / p99 / max ms | policy delete | relabel in | relabel out | under churn: policy create | policy delete | relabel in | relabel out | churn writes/s | peak RSS, MiB | CPU s, start / whole run | sets / elements / chains / rules | API load, s |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`

// thousands writes n with commas.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
