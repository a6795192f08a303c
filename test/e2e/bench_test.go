package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/scenarios"
)

// latencyChanges is how many changes one benchmark operation times.
const latencyChanges = 100

// benchCluster starts weft with backend on the standard model, no policy.
func benchCluster(b *testing.B, e *env, backend string) *cluster {
	b.Helper()
	c := startCluster(b, e, backend)
	c.deleteAllPolicies(b)
	c.applyModel(b, scenarios.NewModel())
	c.expectOpen(b)
	return c
}

// BenchmarkEnforcementLatency times API write → kernel enforces, as seen by
// probes from x/c (node-2) to x/a (node-1), over 100 changes per operation:
// creating a policy that lets x/c in, and labelling x/c so that an existing
// policy lets it in. Each change is undone (and waited for) before the next.
// Reports p50, p99 and max in milliseconds.
func BenchmarkEnforcementLatency(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			from, to := c.pods["x/c"], c.pods["x/a"]
			b.Run("policy-create", func(b *testing.B) {
				c.deleteAllPolicies(b)
				c.create(b, netpol("x", "isolate-a", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"), PolicyTypes: typeIngress}))
				allow := netpol("x", "allow-c", networkingv1.NetworkPolicySpec{
					PodSelector: *sel("pod", "a"),
					Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "c")}),
				})
				measureChanges(b, c, from, to,
					func() { c.create(b, allow) },
					func() { c.deletePolicy(b, "x", "allow-c") })
			})
			b.Run("pod-label", func(b *testing.B) {
				c.deleteAllPolicies(b)
				c.create(b, netpol("x", "from-friends", networkingv1.NetworkPolicySpec{
					PodSelector: *sel("pod", "a"),
					Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("role", "friend")}),
				}))
				measureChanges(b, c, from, to,
					func() { c.setPodLabels(b, "x/c", map[string]string{"pod": "c", "role": "friend"}) },
					func() { c.setPodLabels(b, "x/c", map[string]string{"pod": "c"}) })
			})
		})
	}
}

// measureChanges waits until from→to is blocked, then latencyChanges times
// per operation: opens the path with open, times until a probe connects,
// closes it with undo and waits until it is blocked again.
func measureChanges(b *testing.B, c *cluster, from, to *lab.Pod, open, undo func()) {
	b.Helper()
	ctx := context.Background()
	blocked := lab.TransitionOptions{Interval: 5 * time.Millisecond, Timeout: 150 * time.Millisecond, Confirm: 3}
	opened := lab.TransitionOptions{Interval: 2 * time.Millisecond, Timeout: 200 * time.Millisecond}
	waitState := func(connects bool, o lab.TransitionOptions) time.Time {
		wctx, cancel := context.WithTimeout(ctx, waitFor)
		defer cancel()
		at, err := c.lab.WaitTransition(wctx, from, to, tcp80, connects, o)
		if err != nil {
			b.Fatalf("%s backend: %v", c.backend, err)
		}
		return at
	}
	waitState(false, blocked)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for range latencyChanges {
			start := time.Now()
			open()
			at := waitState(true, opened)
			lat = append(lat, max(0, at.Sub(start)))
			b.StopTimer()
			undo()
			waitState(false, blocked)
			b.StartTimer()
		}
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		i := int(float64(len(lat))*p+0.999999) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(pct(0.50)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(len(lat)), "changes")
}

// Scale of BenchmarkFullSync.
const (
	scaleNamespaces = 10
	scalePods       = 1000
	scalePolicies   = 200
)

// BenchmarkFullSync times weft's start on node-1 — from an empty packet
// filter (weft cleanup) to /readyz, that is the first full ruleset applied —
// with 1,000 pods (API objects, half of them on node-1) and 200 policies in
// the API besides the standard model, whose x/a a scale policy isolates. It
// then checks the kernel enforces (x/b reaches x/a, x/c does not) and times
// 20 policy creations at that scale (p50/p99).
func BenchmarkFullSync(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			createScaleObjects(b, c)
			node := c.lab.Nodes[0]
			var syncs []time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := c.lab.StopWeft(c.wefts[0]); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := c.lab.WeftCleanup(ctx, node, c.env.weft, backend); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				w, err := c.lab.StartWeft(ctx, node, lab.WeftOptions{Binary: c.env.weft, Backend: backend})
				if err != nil {
					b.Fatal(err)
				}
				c.wefts[0] = w
				if err := c.lab.WaitWeftReady(ctx, node, w); err != nil {
					b.Fatal(err)
				}
				syncs = append(syncs, time.Since(start))
				cancel()
			}
			b.StopTimer()
			c.expectText(b, `
     x/a x/b x/c
x/a   .   .   .
x/b   .   .   .
x/c   X   .   .
`, tcp80)
			var sum time.Duration
			for _, s := range syncs {
				sum += s
			}
			b.ReportMetric(float64(sum)/float64(len(syncs))/float64(time.Millisecond), "start-to-enforcing-ms")
			// Changes at that scale.
			from, to := c.pods["x/c"], c.pods["x/a"]
			allow := netpol("x", "allow-c", networkingv1.NetworkPolicySpec{
				PodSelector: *sel("pod", "a"),
				Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "c")}),
			})
			var lat []time.Duration
			for range 20 {
				start := time.Now()
				c.create(b, allow)
				wctx, cancel := context.WithTimeout(context.Background(), waitFor)
				at, err := c.lab.WaitTransition(wctx, from, to, tcp80, true, lab.TransitionOptions{Interval: 2 * time.Millisecond, Timeout: 200 * time.Millisecond})
				if err != nil {
					cancel()
					b.Fatalf("%s backend at scale: %v", backend, err)
				}
				lat = append(lat, max(0, at.Sub(start)))
				c.deletePolicy(b, "x", "allow-c")
				if _, err := c.lab.WaitTransition(wctx, from, to, tcp80, false, lab.TransitionOptions{Timeout: 150 * time.Millisecond}); err != nil {
					cancel()
					b.Fatalf("%s backend at scale: %v", backend, err)
				}
				cancel()
			}
			reportPercentiles(b, lat)
		})
	}
}

// createScaleObjects writes the scale namespaces, pods and policies (once
// per lab; later calls find them) and a policy in x that isolates x/a but
// for x/b. They are removed when the benchmark ends.
func createScaleObjects(b *testing.B, c *cluster) {
	b.Helper()
	ctx := context.Background()
	createScalePods(b, c)
	for i := range scalePolicies {
		if err := c.createPolicy(ctx, scalePolicy(i)); err != nil {
			b.Fatal(err)
		}
	}
	c.create(b, netpol("x", "a-from-b", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "a"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "b")}),
	}))
}

// createScalePods writes the scale namespaces and pods (once per lab; later
// calls find them). They are removed, with their policies, when the
// benchmark ends.
func createScalePods(b *testing.B, c *cluster) {
	b.Helper()
	ctx := context.Background()
	api := c.lab.Client()
	b.Cleanup(func() {
		for n := range scaleNamespaces {
			ns := fmt.Sprintf("scale-%d", n)
			_ = api.NetworkingV1().NetworkPolicies(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			zero := int64(0)
			_ = api.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		}
	})
	for n := range scaleNamespaces {
		if err := c.lab.EnsureNamespace(ctx, fmt.Sprintf("scale-%d", n), map[string]string{"team": fmt.Sprintf("t-%d", n%5)}); err != nil {
			b.Fatal(err)
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := c.lab.WriteAPIOnlyPod(ctx, scalePod(c, i)); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := range scalePods {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

// scalePod is pod i of the scale set: namespace scale-(i%10), labels
// app=app-(i%50) and tier=(i%3), on node-1 or node-2 by parity, addresses
// in 10.36.0.0/16 and fd00::36:0:0/96.
func scalePod(c *cluster, i int) *corev1.Pod {
	node := c.lab.Nodes[i%len(c.lab.Nodes)]
	v4 := netip.AddrFrom4([4]byte{10, 36, byte(i >> 8), byte(i)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00::36:%x:%x", i>>8, i&0xff))
	status := lab.RunningStatus(node, v4, v6)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: fmt.Sprintf("scale-%d", i%scaleNamespaces),
			Name:      "p-" + strconv.Itoa(i),
			Labels:    map[string]string{"app": fmt.Sprintf("app-%d", i%50), "tier": strconv.Itoa(i % 3)},
		},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "serve", Image: "registry.k8s.io/pause:3.10", Ports: lab.DefaultContainerPorts()}},
		},
		Status: status,
	}
}

// scalePolicy is policy i of the scale set: it selects one app, lets in the
// next app and one tier of the namespaces of one team, on TCP 80, a named
// port and a port range; every fourth also limits egress to an ipBlock with
// an exception.
func scalePolicy(i int) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	p80, named, from := intstr.FromInt32(80), intstr.FromString("serve-81-tcp"), intstr.FromInt32(8080)
	end := int32(8090)
	spec := networkingv1.NetworkPolicySpec{
		PodSelector: *sel("app", fmt.Sprintf("app-%d", i%50)),
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: sel("app", fmt.Sprintf("app-%d", (i+1)%50))},
				{NamespaceSelector: sel("team", fmt.Sprintf("t-%d", i%5)), PodSelector: sel("tier", strconv.Itoa(i%3))},
			},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}, {Protocol: &tcp, Port: &named}, {Protocol: &tcp, Port: &from, EndPort: &end}},
		}},
	}
	if i%4 == 0 {
		spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			ipBlock("10.36.0.0/16", fmt.Sprintf("10.36.%d.0/24", i%4)),
			ipBlock("fd00::36:0:0/96", fmt.Sprintf("fd00::36:%x:0/112", i%4)),
		}}}
	}
	return netpol(fmt.Sprintf("scale-%d", i%scaleNamespaces), "p-"+strconv.Itoa(i), spec)
}

// Connections per measurement of BenchmarkConnRate.
const rateConns = 6000

// BenchmarkConnRate measures new TCP connections per second from x/a
// (node-1) to x/c (node-2), through both nodes' filters, with 0, 100 and
// 1,000 policies selecting x/c; x/a is let in by the last policy in name
// order. That is the worst case; "policies-1000-spread" is the typical one:
// 1,000 policies spread over the scale namespaces and their 1,000 pods (the
// scale policies of BenchmarkFullSync), of which only two select x/c, the
// second letting x/a in. Each connection is opened, reads the server's
// answer and is reset. Reports conns/s and the ratio to the same backend's
// 0-policy rate.
func BenchmarkConnRate(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			from, to := c.pods["x/a"], c.pods["x/c"]
			var base float64
			for _, run := range []struct {
				name   string
				n      int
				spread bool
			}{{"policies-0", 0, false}, {"policies-100", 100, false}, {"policies-1000", 1000, false}, {"policies-1000-spread", 1000, true}} {
				n := run.n
				b.Run(run.name, func(b *testing.B) {
					c.deleteAllPolicies(b)
					want := `
     x/c
x/a   .
x/b   .
`
					if n > 0 && run.spread {
						createSpreadPolicies(b, c, n)
					} else if n > 0 {
						createRatePolicies(b, c, n)
					}
					if n > 0 {
						want = `
     x/c
x/a   .
x/b   X
`
					}
					c.expectText(b, want, tcp80)
					rate := measureRate(b, c, from, to)
					if n == 0 {
						base = rate
					}
					b.ReportMetric(rate, "conns/s")
					if base > 0 {
						b.ReportMetric(rate/base, "ratio-to-0")
					}
				})
			}
			c.deleteAllPolicies(b)
		})
	}
}

// createRatePolicies writes n policies selecting x/c, each letting in pods
// of its own role, and lets x/a in with the last one.
func createRatePolicies(b *testing.B, c *cluster, n int) {
	b.Helper()
	createPolicies(b, c, n-1, func(i int) *networkingv1.NetworkPolicy {
		return netpol("x", fmt.Sprintf("r-%04d", i), networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "c"),
			Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("role", fmt.Sprintf("r-%d", i))}),
		})
	})
	c.create(b, netpol("x", "zz-let-a-in", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "c"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "a")}),
	}))
}

// createSpreadPolicies writes the scale pods and n policies: n-2 scale
// policies (each selecting one app of one scale namespace) and two selecting
// x/c, one letting in a role no pod has and the last letting x/a in.
func createSpreadPolicies(b *testing.B, c *cluster, n int) {
	b.Helper()
	createScalePods(b, c)
	createPolicies(b, c, n-2, scalePolicy)
	c.create(b, netpol("x", "c-from-role", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "c"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("role", "r-0")}),
	}))
	c.create(b, netpol("x", "zz-let-a-in", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "c"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "a")}),
	}))
}

// connBurst opens total TCP connections from→to:80 on workers threads inside
// from's namespace and returns connections per second and failures.
func connBurst(l *lab.Lab, from, to *lab.Pod, total, workers int) (float64, int) {
	addr := net.JoinHostPort(to.IPv4.String(), "80")
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		n := total / workers
		if w < total%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Do(from, func() error {
				d := net.Dialer{Timeout: time.Second}
				for range n {
					conn, err := d.Dial("tcp", addr)
					if err != nil {
						failures.Add(1)
						continue
					}
					_ = conn.SetDeadline(time.Now().Add(time.Second))
					if _, err := io.ReadAll(conn); err != nil {
						failures.Add(1)
					}
					_ = conn.(*net.TCPConn).SetLinger(0) // reset: no TIME_WAIT on the client
					conn.Close()
				}
				return nil
			})
			if err != nil {
				failures.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), int(failures.Load())
}

// BenchmarkConnRateLogging is the cost of blocked-connection logging to
// allowed traffic: new TCP connections per second from x/a (node-1) to x/c
// (node-2), 100 policies selecting x/c (x/a let in by the last), with weft
// run on both nodes without log rules (--log-blocked=false), with them (the
// default), and with --log-allowed (each accepted connection into x/c is
// logged too, rate-limited per source). Off and on alternate twice; each
// reports conns/s and the ratio to the off run before it.
func BenchmarkConnRateLogging(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			from, to := c.pods["x/a"], c.pods["x/c"]
			createRatePolicies(b, c, 100)
			var off float64
			for i, run := range []struct {
				name string
				args []string
			}{{"log-off", []string{"--log-blocked=false"}}, {"log-on", nil}, {"log-off", []string{"--log-blocked=false"}}, {"log-on", nil}, {"log-allowed", []string{"--log-allowed"}}} {
				b.Run(fmt.Sprintf("%d-%s", i+1, run.name), func(b *testing.B) {
					for n := range c.lab.Nodes {
						c.restartWeftOpts(b, n, lab.WeftOptions{Args: run.args})
					}
					c.expectText(b, `
     x/c
x/a   .
x/b   X
`, tcp80)
					rate := measureRate(b, c, from, to)
					if run.name == "log-off" {
						off = rate
					}
					b.ReportMetric(rate, "conns/s")
					b.ReportMetric(rate/off, "ratio-to-off")
				})
			}
			for n := range c.lab.Nodes {
				c.restartWeftOpts(b, n, lab.WeftOptions{})
			}
			c.deleteAllPolicies(b)
		})
	}
}

// BenchmarkConnRateClusterPolicies is the per-packet cost of cluster
// policies: new TCP connections per second from x/a (node-1) to x/c
// (node-2) with no policy, and with 100 Admin-tier ClusterNetworkPolicies
// selecting namespace x whose rules (Deny from a namespace each, on TCP 80)
// do not match x/a, so every new connection walks them and is accepted by
// default. Reports conns/s and the ratio to none.
func BenchmarkConnRateClusterPolicies(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			c.ensureCNPCRD(b)
			defer c.deleteAllCNPs(b)
			from, to := c.pods["x/a"], c.pods["x/c"]
			var base float64
			for _, n := range []int{0, 100} {
				b.Run(fmt.Sprintf("cnps-%d", n), func(b *testing.B) {
					c.deleteAllCNPs(b)
					for i := range n {
						p := cnpOf(fmt.Sprintf("deny-team-%03d", i), npa.AdminTier, int32(i%1000), subjectNS("x"))
						p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{{Action: cnpDeny,
							From:      []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("team", fmt.Sprintf("t-%d", i))}},
							Protocols: []npa.ClusterNetworkPolicyProtocol{tcpOn(80)}}}
						c.createCNP(b, p)
					}
					// The last one denies x/b: enforced means all are in.
					if n > 0 {
						p := cnpOf("deny-x-b", npa.AdminTier, 999, subjectPod("x", "c"))
						p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{{Action: cnpDeny,
							From: []npa.ClusterNetworkPolicyIngressPeer{{Pods: &npa.NamespacedPod{NamespaceSelector: *sel("ns", "x"), PodSelector: *sel("pod", "b")}}}}}
						c.createCNP(b, p)
						c.expectText(b, "\n     x/c\nx/a   .\nx/b   X\n", tcp80)
					} else {
						c.expectText(b, "\n     x/c\nx/a   .\nx/b   .\n", tcp80)
					}
					rate := measureRate(b, c, from, to)
					if n == 0 {
						base = rate
					}
					b.ReportMetric(rate, "conns/s")
					b.ReportMetric(rate/base, "ratio-to-none")
				})
			}
		})
	}
}

// measureRate is the benchmark's measurement: b.N bursts of rateConns new
// connections from from to to, 8 at a time; it returns the mean rate.
func measureRate(b *testing.B, c *cluster, from, to *lab.Pod) float64 {
	b.Helper()
	var sum float64
	b.ResetTimer()
	for range b.N {
		rate, errs := connBurst(c.lab, from, to, rateConns, 8)
		if errs > rateConns/100 {
			b.Fatalf("%d of %d connections failed", errs, rateConns)
		}
		sum += rate
	}
	b.StopTimer()
	return sum / float64(b.N)
}

// BenchmarkConnRatePeers is the datapath at scale with real peers: new TCP
// connections per second x/a (node-1) → x/c (node-2) through 1,000
// policies that select x/c, each letting in real, different pods (the 1,000
// scale pods, by namespace team, app and tier: every peer set non-empty) on
// a port of its own, the last letting x/a in on 80; against the same nodes
// with no filter at all (weft stopped, its rules removed, conntrack still
// on), and with weft enforcing only the last policy. The three alternate for
// peerRounds rounds, so that a slow moment of a shared machine falls on one
// measurement, not on one side: each round reports conns/s of each and the
// ratios, and the last sub-benchmark the medians of the rounds' ratios.
// ratio-to-one-policy is how the cost grows with the number of policies;
// ratio-to-no-filter the whole cost of enforcing, conntrack aside.
func BenchmarkConnRatePeers(b *testing.B) {
	e := needEnv(b)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			c := benchCluster(b, e, backend)
			from, to := c.pods["x/a"], c.pods["x/c"]
			c.deleteAllPolicies(b)
			createScalePods(b, c)
			enforced := func(b *testing.B) {
				c.expectText(b, `
     x/c
x/a   .
x/b   X
`, tcp80)
			}
			var toBare, toOne []float64
			for round := 1; round <= peerRounds; round++ {
				var bare, one float64
				b.Run(fmt.Sprintf("round-%d/no-filter", round), func(b *testing.B) {
					// Both wefts down and their rules gone for the measurement.
					c.restartWeftOptsWhile(b, 0, lab.WeftOptions{}, func() {
						c.restartWeftOptsWhile(b, 1, lab.WeftOptions{}, func() {
							ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
							defer cancel()
							for _, n := range c.lab.Nodes {
								if err := c.lab.WeftCleanup(ctx, n, c.env.weft, backend); err != nil {
									b.Fatal(err)
								}
							}
							bare = measureRate(b, c, from, to)
						})
					})
					b.ReportMetric(bare, "conns/s")
				})
				b.Run(fmt.Sprintf("round-%d/policies-1", round), func(b *testing.B) {
					c.deleteAllPolicies(b)
					letAIn(b, c)
					enforced(b)
					c.settle(b)
					one = measureRate(b, c, from, to)
					b.ReportMetric(one, "conns/s")
					b.ReportMetric(one/bare, "ratio-to-no-filter")
				})
				b.Run(fmt.Sprintf("round-%d/policies-1000-peers", round), func(b *testing.B) {
					createPeerOnlyPolicies(b, c, 999)
					enforced(b)
					c.settle(b)
					rate := measureRate(b, c, from, to)
					b.ReportMetric(rate, "conns/s")
					if bare > 0 && one > 0 {
						b.ReportMetric(rate/bare, "ratio-to-no-filter")
						b.ReportMetric(rate/one, "ratio-to-one-policy")
						toBare, toOne = append(toBare, rate/bare), append(toOne, rate/one)
					}
				})
			}
			b.Run("median", func(b *testing.B) {
				if len(toBare) == 0 {
					b.Skip("no round measured every side")
				}
				slices.Sort(toBare)
				slices.Sort(toOne)
				b.ReportMetric(toBare[len(toBare)/2], "median-ratio-to-no-filter")
				b.ReportMetric(toOne[len(toOne)/2], "median-ratio-to-one-policy")
			})
			c.deleteAllPolicies(b)
		})
	}
}

// settle waits until both wefts are idle (under 20 ms of CPU in 500 ms,
// for at most 20 s), so that a measurement right after a large change does
// not share the cores with the work that change left (events, the check of
// the kernel, conntrack cuts) on one side only.
func (c *cluster) settle(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := -1.0
	for time.Now().Before(deadline) {
		sum := 0.0
		for _, w := range c.wefts {
			s, err := cpuSeconds(w.PID())
			if err != nil {
				b.Fatalf("weft's CPU time: %v", err)
			}
			sum += s
		}
		if last >= 0 && sum-last < 0.02 {
			return
		}
		last = sum
		time.Sleep(500 * time.Millisecond)
	}
	b.Logf("the wefts were still busy after 20 s; measuring anyway")
}

// peerRounds is how many times BenchmarkConnRatePeers alternates.
const peerRounds = 5

// createPeerOnlyPolicies writes n policies selecting x/c: policy i lets in
// the scale pods of app i%50, tier i%3, in the namespaces of team i%5, on
// TCP port 1000+i.
func createPeerOnlyPolicies(b *testing.B, c *cluster, n int) {
	b.Helper()
	tcp := corev1.ProtocolTCP
	createPolicies(b, c, n, func(i int) *networkingv1.NetworkPolicy {
		port := intstr.FromInt32(int32(1000 + i))
		return netpol("x", fmt.Sprintf("peers-%04d", i), networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "c"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: sel("team", fmt.Sprintf("t-%d", i%5)),
					PodSelector:       sel("app", fmt.Sprintf("app-%d", i%50), "tier", strconv.Itoa(i%3)),
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		})
	})
}

// letAIn writes the policy that selects x/c and lets x/a in (every port).
func letAIn(b *testing.B, c *cluster) {
	b.Helper()
	c.create(b, netpol("x", "zz-let-a-in", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "c"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "a")}),
	}))
}

// createPolicies writes policies newPolicy(0) … newPolicy(n-1), eight at a
// time.
func createPolicies(b *testing.B, c *cluster, n int, newPolicy func(i int) *networkingv1.NetworkPolicy) {
	b.Helper()
	ctx := context.Background()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := c.createPolicy(ctx, newPolicy(i)); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}
