package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/explain"
	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/policy"
)

// kdSeed is the seed of TestKernelDifferential's random clusters: the same
// seed gives the same clusters, policies and probes. Try others to explore.
var kdSeed = flag.Uint64("seed", 13, "seed of TestKernelDifferential's random clusters and policies")

const (
	// kdMinProbes is how many probes each backend must compare at least.
	kdMinProbes = 5000
	// kdMinRounds is how many clusters each backend gets at least.
	kdMinRounds = 6
	// kdMaxRounds bounds the rounds of one backend.
	kdMaxRounds = 40
	// kdParallelism bounds the probes in flight. Blocked probes sleep for
	// the lab's probe timeout, so it mostly bounds threads, not CPU.
	kdParallelism = 64
	// kdShown is how many mismatches of a round are written out in full.
	kdShown = 3
)

// kdCluster is the size of each round's random cluster.
var kdCluster = clustergen.RandomConfig{Namespaces: 3, Pods: 12, Nodes: 2}

// TestKernelDifferential is the kernel differential test: random clusters
// and policies from internal/clustergen, written into the lab's API server
// and enforced by weft on both nodes with the real kernel, probed with TCP
// and UDP over IPv4 and IPv6 between every two live pods, and between the
// pods and the nodes, on every port the destination serves; each probe's
// outcome must be what the reference evaluator (policy.Evaluator) decides on
// a snapshot of what the API holds (the whole cluster: every node runs weft,
// and each enforces its own pods' side). Each round is one cluster, compared
// as written and again after some labels and policies changed; each backend
// runs rounds until it compared at least kdMinProbes probes, and both
// backends get the same clusters.
//
// A mismatch is printed as a reproducer: the flow, what the kernel and the
// evaluator said, and the objects that decide the flow as manifests for
// `weft explain --files`. Rerun with -seed N to explore other clusters.
func TestKernelDifferential(t *testing.T) {
	e := needEnv(t)
	seed := *kdSeed
	t.Logf("seed %d (rerun with -seed %d; explore with other values)", seed, seed)
	for i, backend := range []string{"nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			c := startCluster(t, e, backend)
			c.logOnFailure(t)
			k := &kdRun{t: t, c: c, lab: e.lab, backend: backend, seed: seed, backendIndex: i}
			t.Cleanup(k.deleteNamespaces)
			k.run()
		})
	}
}

// kdRun is one backend's share of the test.
type kdRun struct {
	t            *testing.T
	c            *cluster
	lab          *lab.Lab
	backend      string
	seed         uint64
	backendIndex int

	namespaces []string // every namespace the run wrote (kept between rounds)

	probes, allowed, blocked, mismatches, flaps, passes int
}

// kdRound is what one round wrote into the lab, and what the API holds.
type kdRound struct {
	index int
	phase string // what the lab holds: as written, or after which changes
	// mapping moves clustergen's addresses into the round's own range.
	mapping addrMapping
	pods    []*lab.Pod    // live pods with their own network namespace
	host    []*lab.Pod    // host-network pods
	apiOnly []*corev1.Pod // finished pods: API objects only
	written []*networkingv1.NetworkPolicy
	refused []string // policies the API server refused, and why

	// The objects as the API holds them after the writes, and their snapshot.
	namespaces []*corev1.Namespace
	podObjs    []*corev1.Pod
	policies   []*networkingv1.NetworkPolicy
	nodes      []*corev1.Node
	snap       *policy.Snapshot
}

func (k *kdRun) run() {
	t := k.t
	start := time.Now()
	rounds := 0
	for round := 0; (k.probes < kdMinProbes || round < kdMinRounds) && round < kdMaxRounds; round++ {
		k.runRound(round)
		rounds++
		if t.Failed() {
			break
		}
	}
	t.Logf("%s backend: %d rounds, %d probes compared (%d allowed, %d blocked), %d mismatches, %d transient losses, %d probe passes, %s",
		k.backend, rounds, k.probes, k.allowed, k.blocked, k.mismatches, k.flaps, k.passes, time.Since(start).Round(100*time.Millisecond))
	if k.mismatches > 0 {
		t.Errorf("%s backend: %d of %d probes disagree with the evaluator (see the reproducers above)", k.backend, k.mismatches, k.probes)
	}
	if !t.Failed() && k.probes < kdMinProbes {
		t.Errorf("%s backend: only %d probes in %d rounds, want at least %d", k.backend, k.probes, rounds, kdMinProbes)
	}
}

// runRound generates cluster number round, writes it and compares the
// kernel with the evaluator; then changes labels and policies and compares
// again (weft now applies a change to a ruleset, not a new one); then it
// removes the round's pods and policies.
func (k *kdRun) runRound(round int) {
	t := k.t
	r := &kdRound{index: round, mapping: newAddrMapping(1 + k.backendIndex*(kdMaxRounds+1) + round)}
	defer k.teardown(r)
	rng := rand.New(rand.NewPCG(k.seed, uint64(round)))
	cfg := kdCluster
	cfg.Policies = 4 + rng.IntN(3)
	gen := clustergen.Random(rng, cfg)
	// Other streams for what the test adds, so that the clusters stay
	// clustergen's for a seed.
	focus := rand.New(rand.NewPCG(k.seed, uint64(round)|1<<32))
	if err := k.write(r, gen, focus); err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	for _, why := range r.refused {
		t.Logf("round %d: the API server refused a generated policy: %s", round, why)
	}
	r.phase = "as written"
	if !k.compare(r) {
		return
	}
	changes, err := k.change(r, rand.New(rand.NewPCG(k.seed, uint64(round)|2<<32)))
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	r.phase = "after changes: " + strings.Join(changes, "; ")
	k.compare(r)
}

// compare reads the round's objects back from the API, probes until the
// kernel agrees with the evaluator or settles, and reports mismatches. It
// returns false when the test failed.
func (k *kdRun) compare(r *kdRound) bool {
	t := k.t
	if err := k.readBack(r); err != nil {
		t.Fatalf("round %d: %v", r.index, err)
	}
	probes := k.plan(r)
	k.waitSettled()

	// Probe until one pass agrees with the evaluator everywhere (weft may
	// still be applying the latest objects during the first), or until two
	// passes in a row agree with each other (the kernel has settled: what
	// still disagrees is a mismatch), or waitFor has passed.
	deadline := time.Now().Add(waitFor)
	var prev, cur []kdOutcome
	passes := 0
	for {
		cur = k.probeAll(probes)
		passes++
		if kdAgree(probes, cur) || (prev != nil && kdSame(prev, cur)) || time.Now().After(deadline) {
			break
		}
		disagree := 0
		for i, p := range probes {
			if cur[i].err != nil || cur[i].connected != p.want {
				disagree++
			}
		}
		t.Logf("round %d, pass %d: %d of %d probes disagree with the evaluator; probing again", r.index, passes, disagree, len(probes))
		prev = cur
	}
	k.passes += passes

	// Probes that should have connected and did not are tried twice more,
	// since a loaded machine may lose one. A connection is never made by
	// chance, so the other way round is a mismatch at once.
	flaps := k.retryLost(probes, cur)
	for _, i := range flaps {
		t.Logf("round %d: %s: lost once, connected on retry", r.index, probes[i])
	}

	var problems, mismatched []string
	shown := 0
	allowed, misses := 0, 0
	for i, p := range probes {
		o := cur[i]
		if o.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, o.err))
			continue
		}
		if o.connected {
			allowed++
		}
		if o.connected != p.want {
			misses++
			mismatched = append(mismatched, fmt.Sprintf("  %s: kernel %s, evaluator %s", p, kdVerdict(o.connected), kdVerdict(p.want)))
			if shown < kdShown {
				shown++
				t.Errorf("%s", k.reproducer(r, p, o.connected))
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Errorf("round %d: %d probes failed for a reason other than a drop (a test or lab bug: every probed port is served):\n  %s",
			r.index, len(problems), strings.Join(kdFirst(problems, 10), "\n  "))
		return false
	}
	if misses > 0 {
		t.Errorf("round %d (seed %d, %s): %d of %d probes disagree with the evaluator after %d passes:\n%s",
			r.index, k.seed, r.phase, misses, len(probes), passes, strings.Join(kdFirst(mismatched, 40), "\n"))
		if path, err := k.writeManifest(r); err == nil {
			t.Logf("round %d: the whole cluster's manifests are in %s (kept with WEFT_LAB_KEEP=1)", r.index, path)
		}
	}
	k.probes += len(probes)
	k.allowed += allowed
	k.blocked += len(probes) - allowed
	k.mismatches += misses
	k.flaps += len(flaps)
	t.Logf("round %d, %s: %d live pods, %d host-network pods, %d finished pods, %d policies (%d refused by the API server); %d probes, %d allowed, %d blocked, %d mismatches, %d passes",
		r.index, r.phase, len(r.pods), len(r.host), len(r.apiOnly), len(r.written), len(r.refused),
		len(probes), allowed, len(probes)-allowed, misses, passes)
	return !t.Failed()
}

// kdLabelKeys and kdLabelValues are clustergen's label vocabulary, so that
// changed labels meet the generated selectors.
var (
	kdLabelKeys   = []string{"app", "tier", "env"}
	kdLabelValues = []string{"a", "b", "c"}
)

func kdRandomLabels(rng *rand.Rand) map[string]string {
	l := map[string]string{}
	for _, key := range kdLabelKeys {
		if rng.IntN(3) > 0 {
			l[key] = kdLabelValues[rng.IntN(len(kdLabelValues))]
		}
	}
	return l
}

// change relabels one to three live pods and one namespace, deletes one
// policy and adds one or two new ones; it returns what it did.
func (k *kdRun) change(r *kdRound, rng *rand.Rand) ([]string, error) {
	ctx := context.Background()
	var did []string
	for n := 1 + rng.IntN(3); n > 0 && len(r.pods) > 0; n-- {
		p := r.pods[rng.IntN(len(r.pods))]
		l := kdRandomLabels(rng)
		if err := k.lab.SetPodLabels(ctx, p, l); err != nil {
			return nil, err
		}
		did = append(did, fmt.Sprintf("pod %s labels %v", p.ID(), l))
	}
	ns := k.kdName(fmt.Sprintf("ns%d", rng.IntN(kdCluster.Namespaces)))
	l := kdRandomLabels(rng)
	if err := k.lab.SetNamespaceLabels(ctx, ns, l); err != nil {
		return nil, err
	}
	did = append(did, fmt.Sprintf("namespace %s labels %v", ns, l))
	if len(r.written) > 0 {
		i := rng.IntN(len(r.written))
		np := r.written[i]
		if err := k.lab.Client().NetworkingV1().NetworkPolicies(np.Namespace).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
			return nil, fmt.Errorf("delete policy %s/%s: %w", np.Namespace, np.Name, err)
		}
		r.written = slices.Delete(r.written, i, i+1)
		did = append(did, fmt.Sprintf("deleted policy %s/%s", np.Namespace, np.Name))
	}
	// New policies: those of another random cluster of the same shape.
	cfg := kdCluster
	cfg.Policies = 1 + rng.IntN(2)
	for _, gp := range clustergen.Random(rng, cfg).Policies {
		np := gp.DeepCopy()
		np.Namespace, np.Name = k.kdName(np.Namespace), "changed-"+np.Name
		r.mapping.policy(np)
		kdAimIPBlocks(rng, np, r.near(k.lab))
		if ok, err := k.createPolicy(r, np); err != nil {
			return nil, err
		} else if ok {
			did = append(did, fmt.Sprintf("added policy %s/%s", np.Namespace, np.Name))
		}
	}
	return did, nil
}

// createPolicy writes np and remembers it; a policy the API server refuses
// as invalid is noted and skipped (false).
func (k *kdRun) createPolicy(r *kdRound, np *networkingv1.NetworkPolicy) (bool, error) {
	err := k.c.createPolicy(context.Background(), np)
	if apierrors.IsInvalid(err) {
		r.refused = append(r.refused, err.Error())
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.written = append(r.written, np)
	return true, nil
}

// near returns the addresses ipBlocks should be about: the round's live
// pods and the nodes.
func (r *kdRound) near(l *lab.Lab) []netip.Addr {
	var out []netip.Addr
	for _, p := range r.pods {
		out = append(out, p.IPv4, p.IPv6)
	}
	for _, n := range l.Nodes {
		out = append(out, n.IPs...)
	}
	return slices.DeleteFunc(out, func(a netip.Addr) bool { return !a.IsValid() })
}

// kdName is the lab namespace of clustergen's namespace name: each backend
// has its own, since deleted namespaces stay Terminating in the lab.
func (k *kdRun) kdName(ns string) string { return "kd-" + k.backend[:3] + "-" + ns }

// write makes the lab hold the generated cluster, moved into the round's
// addresses: namespaces, live pods with their own network namespace,
// host-network pods, finished pods as API objects, then the policies.
func (k *kdRun) write(r *kdRound, gen *clustergen.Cluster, focus *rand.Rand) error {
	ctx := context.Background()
	for _, ns := range gen.Namespaces {
		name := k.kdName(ns.Name)
		if err := k.lab.EnsureNamespace(ctx, name, ns.Labels); err != nil {
			return err
		}
		if !slices.Contains(k.namespaces, name) {
			k.namespaces = append(k.namespaces, name)
		}
	}
	nodes := map[string]*lab.Node{}
	for _, n := range k.lab.Nodes {
		nodes[n.Name] = n
	}
	for _, p := range gen.Pods {
		node := nodes[p.Spec.NodeName]
		if node == nil {
			return fmt.Errorf("generated pod %s/%s runs on %q, which the lab lacks", p.Namespace, p.Name, p.Spec.NodeName)
		}
		ns := k.kdName(p.Namespace)
		switch {
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			obj := p.DeepCopy()
			obj.Namespace = ns
			obj.Spec.Containers[0].Image = "registry.k8s.io/pause:3.10"
			for i := range obj.Status.PodIPs {
				obj.Status.PodIPs[i].IP = r.mapping.addr(netip.MustParseAddr(obj.Status.PodIPs[i].IP)).String()
			}
			if len(obj.Status.HostIPs) > 0 { // the lab's node addresses, not clustergen's
				obj.Status.HostIP = node.IPs[0].String()
				obj.Status.HostIPs = []corev1.HostIP{{IP: node.IPs[0].String()}, {IP: node.IPs[1].String()}}
			}
			r.apiOnly = append(r.apiOnly, obj) // first: removed also when half written
			if err := k.lab.WriteAPIOnlyPod(ctx, obj); err != nil {
				return err
			}
		case p.Spec.HostNetwork:
			// The node's own servers answer for it; its container ports
			// would only collide as host ports, and policy never resolves
			// a host-network pod's ports.
			lp, err := k.lab.AddPod(ctx, lab.PodSpec{Namespace: ns, Name: p.Name, Node: node, Labels: p.Labels,
				HostNetwork: true, Ports: []corev1.ContainerPort{}})
			if err != nil {
				return err
			}
			r.host = append(r.host, lp)
		default:
			v4, v6 := podIPs(p)
			if v4.IsValid() {
				v4 = r.mapping.addr(v4)
			}
			if v6.IsValid() {
				v6 = r.mapping.addr(v6)
			}
			ports := slices.Clone(p.Spec.Containers[0].Ports)
			if ports == nil {
				ports = []corev1.ContainerPort{} // none: not the lab's default ports
			}
			lp, err := k.lab.AddPod(ctx, lab.PodSpec{Namespace: ns, Name: p.Name, Node: node, Labels: p.Labels,
				IPv4: v4, IPv6: v6, Families: families(v4, v6), Ports: ports})
			if err != nil {
				return err
			}
			r.pods = append(r.pods, lp)
		}
	}
	for _, gp := range gen.Policies {
		np := gp.DeepCopy()
		np.Namespace = k.kdName(np.Namespace)
		r.mapping.policy(np)
		kdAimIPBlocks(focus, np, r.near(k.lab))
		if _, err := k.createPolicy(r, np); err != nil {
			return err
		}
	}
	return nil
}

// readBack lists what the API holds (the whole cluster: every node runs
// weft, and weft sees all of it) and builds the evaluator's snapshot, with
// the Node objects as weft's watch adds them.
func (k *kdRun) readBack(r *kdRound) error {
	ctx := context.Background()
	client := k.lab.Client()
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	pols, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list policies: %w", err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	r.namespaces, r.podObjs, r.policies, r.nodes = nil, nil, nil, nil
	for i := range nss.Items {
		r.namespaces = append(r.namespaces, &nss.Items[i])
	}
	for i := range pods.Items {
		r.podObjs = append(r.podObjs, &pods.Items[i])
	}
	for i := range pols.Items {
		r.policies = append(r.policies, &pols.Items[i])
	}
	for i := range nodes.Items {
		r.nodes = append(r.nodes, &nodes.Items[i])
	}
	r.snap = kdSnapshot(r.namespaces, r.podObjs, r.policies, r.nodes)
	return nil
}

func kdSnapshot(nss []*corev1.Namespace, pods []*corev1.Pod, pols []*networkingv1.NetworkPolicy, nodes []*corev1.Node) *policy.Snapshot {
	snap := policy.NewSnapshot(nss, pods, pols)
	for _, n := range nodes {
		snap.AddNodes(policy.NodeFromAPI(n))
	}
	return snap
}

// waitSettled waits until every weft's count of syncs
// (weft_syncs_total) has not moved for kdQuiet, so that the first probe
// pass rarely meets a ruleset that is still being applied. It is only a
// shortcut: the probe loop does not rely on it, and it gives up quietly.
func (k *kdRun) waitSettled() {
	const kdQuiet = 300 * time.Millisecond
	start := time.Now()
	last := make([]float64, len(k.lab.Nodes))
	changed := start
	for time.Since(start) < 5*time.Second {
		for i, n := range k.lab.Nodes {
			v, err := kdSyncs(n)
			if err != nil {
				k.t.Logf("read weft's metrics on %s: %v", n.Name, err)
				return
			}
			if v != last[i] {
				last[i], changed = v, time.Now()
			}
		}
		if time.Since(changed) >= kdQuiet {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kdSyncs reads weft_syncs_total, every result, from weft on node (at the
// default --metrics-addr, which startCluster keeps).
func kdSyncs(n *lab.Node) (float64, error) {
	m, err := scrapeMetrics(n, "weft_syncs_total")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, v := range m {
		sum += v
	}
	return sum, nil
}

// kdProbe is one probe and the evaluator's verdict on its flow.
type kdProbe struct {
	from, to lab.Endpoint
	target   lab.Target
	flow     policy.Flow
	want     bool
}

func (p kdProbe) String() string {
	return fmt.Sprintf("%s %s -> %s %s (%s -> %s)", p.target.Protocol, p.flow.Src,
		netip.AddrPortFrom(p.flow.Dst, p.flow.Port), p.target.Family, p.from.ID(), p.to.ID())
}

type kdOutcome struct {
	connected bool
	err       error // a failure that is not a drop
}

// plan lists every probe of the round: between every two of its live pods
// and the nodes (not node to node), in every family both ends have, on
// every port and protocol the destination serves.
func (k *kdRun) plan(r *kdRound) []kdProbe {
	ends := lab.Endpoints(r.pods...)
	ends = append(ends, lab.Endpoints(k.lab.Nodes...)...)
	ev := &policy.Evaluator{Snapshot: r.snap}
	var out []kdProbe
	for _, from := range ends {
		for _, to := range ends {
			_, fromNode := from.(*lab.Node)
			_, toNode := to.(*lab.Node)
			if from == to || (fromNode && toNode) {
				continue
			}
			for _, fam := range []lab.Family{lab.IPv4, lab.IPv6} {
				src, dst := from.IP(fam), to.IP(fam)
				if !src.IsValid() || !dst.IsValid() {
					continue
				}
				for _, sp := range kdServed(to) {
					proto := policy.TCP
					if sp.Protocol == corev1.ProtocolUDP {
						proto = policy.UDP
					}
					flow := policy.Flow{Src: src, Dst: dst, Protocol: proto, Port: uint16(sp.Port)}
					out = append(out, kdProbe{from: from, to: to, flow: flow,
						target: lab.Target{Protocol: sp.Protocol, Port: sp.Port, Family: fam},
						want:   ev.Decide(flow).Allowed})
				}
			}
		}
	}
	return out
}

// kdServed lists what an endpoint serves: every lab pod and node serves
// lab.ServePorts on TCP and UDP, and a pod its container's TCP and UDP ports.
func kdServed(e lab.Endpoint) []lab.Target {
	var out []lab.Target
	add := func(proto corev1.Protocol, port int) {
		t := lab.Target{Protocol: proto, Port: port}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, port := range lab.ServePorts {
		add(corev1.ProtocolTCP, port)
		add(corev1.ProtocolUDP, port)
	}
	if p, ok := e.(*lab.Pod); ok {
		for _, cp := range p.Ports {
			switch cp.Protocol {
			case corev1.ProtocolTCP, "":
				add(corev1.ProtocolTCP, int(cp.ContainerPort))
			case corev1.ProtocolUDP:
				add(corev1.ProtocolUDP, int(cp.ContainerPort))
			}
		}
	}
	return out
}

// probeAll runs every probe once, kdParallelism at a time.
func (k *kdRun) probeAll(probes []kdProbe) []kdOutcome {
	out := make([]kdOutcome, len(probes))
	sem := make(chan struct{}, kdParallelism)
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = k.probeOnce(p)
		}()
	}
	wg.Wait()
	return out
}

func (k *kdRun) probeOnce(p kdProbe) kdOutcome {
	res := k.lab.Probe(context.Background(), p.from, p.to, p.target)
	switch {
	case res.Connected:
		return kdOutcome{connected: true}
	case kdDropped(res.Err):
		return kdOutcome{}
	default:
		return kdOutcome{err: res.Err}
	}
}

// retryLost probes twice more, a moment apart, what should have connected
// and timed out; it marks those that connect now as connected in got and
// returns their indexes.
func (k *kdRun) retryLost(probes []kdProbe, got []kdOutcome) []int {
	var lost []int
	for i, p := range probes {
		if p.want && !got[i].connected && got[i].err == nil {
			lost = append(lost, i)
		}
	}
	var connected []int
	for range 2 {
		if len(lost) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
		again := make([]kdProbe, len(lost))
		for j, i := range lost {
			again[j] = probes[i]
		}
		res := k.probeAll(again)
		var still []int
		for j, i := range lost {
			if res[j].connected {
				got[i].connected = true
				connected = append(connected, i)
			} else {
				still = append(still, i)
			}
		}
		lost = still
	}
	slices.Sort(connected)
	return connected
}

// kdDropped reports whether a failed probe timed out, as a dropped packet
// makes it. Refusals, unreachable errors and wrong answers are not drops,
// and neither is a TCP connection that was accepted and then went silent.
func kdDropped(err error) bool {
	if err == nil || strings.Contains(err.Error(), "read answer") {
		return false
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func kdAgree(probes []kdProbe, got []kdOutcome) bool {
	for i, p := range probes {
		if got[i].err != nil || got[i].connected != p.want {
			return false
		}
	}
	return true
}

func kdSame(a, b []kdOutcome) bool {
	for i := range a {
		if a[i].connected != b[i].connected || (a[i].err == nil) != (b[i].err == nil) {
			return false
		}
	}
	return true
}

func kdVerdict(connected bool) string {
	if connected {
		return "allowed"
	}
	return "blocked"
}

func kdFirst(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(slices.Clone(lines[:n]), fmt.Sprintf("… and %d more", len(lines)-n))
}

// teardown removes the round's pods and policies; the namespaces stay for
// the next round (deleteNamespaces removes them at the end).
func (k *kdRun) teardown(r *kdRound) {
	ctx := context.Background()
	for _, np := range r.written {
		err := k.lab.Client().NetworkingV1().NetworkPolicies(np.Namespace).Delete(ctx, np.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			k.t.Errorf("delete policy %s/%s: %v", np.Namespace, np.Name, err)
		}
	}
	for _, p := range slices.Concat(r.pods, r.host) {
		if err := k.lab.DeletePod(ctx, p); err != nil {
			k.t.Errorf("delete pod %s: %v", p.ID(), err)
		}
	}
	for _, p := range r.apiOnly {
		if err := k.lab.DeleteAPIOnlyPod(ctx, p.Namespace, p.Name); err != nil {
			k.t.Errorf("%v", err)
		}
	}
	r.written, r.pods, r.host, r.apiOnly = nil, nil, nil, nil
}

// deleteNamespaces deletes the run's namespaces. (The lab has no namespace
// controller, so they stay Terminating, empty, until the lab closes.)
func (k *kdRun) deleteNamespaces() {
	ctx := context.Background()
	for _, ns := range k.namespaces {
		err := k.lab.Client().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			k.t.Errorf("delete namespace %s: %v", ns, err)
		}
	}
}

// addrMapping moves clustergen's addresses (pods in 10.32.0.0/24 and
// fd00:32::/64, ipBlocks around them) into 10.37.s.0/24 and fd00:37:0:s::/64
// for a salt s, away from the lab's nodes, the node pod ranges and other
// tests' pods, and new for every round (so that no conntrack entry of an
// earlier round can match). It XORs every address with a constant: a
// bijection that maps prefixes onto prefixes and keeps containment, so an
// ipBlock and its exceptions hold the same pods after the move as before.
type addrMapping struct{ x4, x6 []byte }

func newAddrMapping(salt int) addrMapping {
	if salt < 1 || salt > 255 {
		panic(fmt.Sprintf("address salt %d out of range", salt))
	}
	x4 := make([]byte, 4)
	x4[1], x4[2] = 32^37, byte(salt)
	x6 := make([]byte, 16)
	x6[3], x6[7] = 0x32^0x37, byte(salt)
	return addrMapping{x4: x4, x6: x6}
}

func (m addrMapping) addr(a netip.Addr) netip.Addr {
	b := a.AsSlice()
	x := m.x4
	if a.Is6() {
		x = m.x6
	}
	for i := range b {
		b[i] ^= x[i]
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// cidr maps a CIDR; text that does not parse stays as it is.
func (m addrMapping) cidr(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	return netip.PrefixFrom(m.addr(p.Addr()), p.Bits()).Masked().String()
}

// policy maps every ipBlock of np in place.
func (m addrMapping) policy(np *networkingv1.NetworkPolicy) {
	peers := func(ps []networkingv1.NetworkPolicyPeer) {
		for i := range ps {
			if b := ps[i].IPBlock; b != nil {
				b.CIDR = m.cidr(b.CIDR)
				for j := range b.Except {
					b.Except[j] = m.cidr(b.Except[j])
				}
			}
		}
	}
	for i := range np.Spec.Ingress {
		peers(np.Spec.Ingress[i].From)
	}
	for i := range np.Spec.Egress {
		peers(np.Spec.Egress[i].To)
	}
}

// kdAimIPBlocks replaces three in four of np's ipBlocks with blocks around the
// addresses near (the round's pods and the nodes), with exceptions around
// others of them: clustergen's blocks are spread over wide ranges, so that
// in a small cluster their exceptions rarely hold a pod, and the kernel's
// handling of exceptions would go untested.
func kdAimIPBlocks(rng *rand.Rand, np *networkingv1.NetworkPolicy, near []netip.Addr) {
	aim := func(b *networkingv1.IPBlock) {
		anchor := near[rng.IntN(len(near))]
		bits := []int{12, 16, 24, 28, 30, 31, 32}[rng.IntN(7)]
		if anchor.Is6() {
			bits = []int{16, 32, 64, 96, 112, 120, 124, 126, 127, 128}[rng.IntN(10)]
		}
		cidr := netip.PrefixFrom(anchor, bits).Masked()
		b.CIDR, b.Except = cidr.String(), nil
		var inside []netip.Addr
		for _, a := range near {
			if cidr.Contains(a) {
				inside = append(inside, a)
			}
		}
		for n := []int{0, 1, 1, 2}[rng.IntN(4)]; n > 0 && bits < anchor.BitLen(); n-- {
			a := inside[rng.IntN(len(inside))]
			ebits := bits + 1 + rng.IntN(anchor.BitLen()-bits)
			if e := netip.PrefixFrom(a, ebits).Masked().String(); !slices.Contains(b.Except, e) {
				b.Except = append(b.Except, e)
			}
		}
	}
	peers := func(ps []networkingv1.NetworkPolicyPeer) {
		for i := range ps {
			if ps[i].IPBlock != nil && rng.IntN(4) > 0 {
				aim(ps[i].IPBlock)
			}
		}
	}
	for i := range np.Spec.Ingress {
		peers(np.Spec.Ingress[i].From)
	}
	for i := range np.Spec.Egress {
		peers(np.Spec.Egress[i].To)
	}
}

// reproducer describes a mismatch so that a developer can replay the
// evaluator's side with `weft explain --files`: the flow, both verdicts, the
// evaluator's reasons, and the objects that decide the flow as manifests
// (the two pods, their namespaces and the policies of those namespaces; the
// whole cluster's when the smaller set decides differently).
func (k *kdRun) reproducer(r *kdRound, p kdProbe, kernelConnected bool) string {
	d := (&policy.Evaluator{Snapshot: r.snap}).Decide(p.flow)
	var b strings.Builder
	fmt.Fprintf(&b, "KERNEL DIFFERENTIAL MISMATCH (%s backend, seed %d, round %d, %s)\n", k.backend, k.seed, r.index, r.phase)
	fmt.Fprintf(&b, "flow: %s\n", p)
	fmt.Fprintf(&b, "kernel: %s; evaluator: %s\n", kdVerdict(kernelConnected), kdVerdict(d.Allowed))
	for _, e := range []lab.Endpoint{p.from, p.to} {
		var addrs []string
		for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
			if ip := e.IP(f); ip.IsValid() {
				addrs = append(addrs, ip.String())
			}
		}
		switch e := e.(type) {
		case *lab.Pod:
			fmt.Fprintf(&b, "  pod %s on %s: %s\n", e.ID(), e.Node.Name, strings.Join(addrs, ", "))
		case *lab.Node:
			fmt.Fprintf(&b, "  node %s: %s\n", e.Name, strings.Join(addrs, ", "))
		}
	}
	report := explain.NewReport(d, r.snap)
	b.WriteString("evaluator (weft explain):\n")
	report.WriteText(&b)

	nss, pods, pols := k.relevant(r, d)
	small := kdSnapshot(nss, pods, pols, nil)
	if sd := (&policy.Evaluator{Snapshot: small}).Decide(p.flow); sd.Allowed != d.Allowed ||
		!slices.Equal(sd.Egress.IsolatedBy, d.Egress.IsolatedBy) || !slices.Equal(sd.Ingress.IsolatedBy, d.Ingress.IsolatedBy) {
		nss, pods, pols = k.mine(r)
	}
	fmt.Fprintf(&b, "replay: save the manifests below as repro.yaml, then\n  weft explain --files repro.yaml --from %s --to %s --port %d/%s\n",
		p.flow.Src, p.flow.Dst, p.flow.Port, p.target.Protocol)
	fmt.Fprintf(&b, "rerun in the lab: go test ./test/e2e/ -count=1 -v -run 'TestKernelDifferential/%s' -seed %d\n", k.backend, k.seed)
	b.WriteString("--- repro.yaml\n")
	b.WriteString(kdManifest(nss, pods, pols))
	return b.String()
}

// relevant returns the objects that decide d: the pods at both ends, their
// namespaces, and the policies that isolate them.
func (k *kdRun) relevant(r *kdRound, d policy.Decision) ([]*corev1.Namespace, []*corev1.Pod, []*networkingv1.NetworkPolicy) {
	var names, keys []string
	for _, p := range []*policy.Pod{d.Src, d.Dst} {
		if p != nil {
			names = append(names, p.Namespace)
			keys = append(keys, p.Key())
		}
	}
	refs := slices.Concat(d.Egress.IsolatedBy, d.Ingress.IsolatedBy)
	var nss []*corev1.Namespace
	for _, ns := range r.namespaces {
		if slices.Contains(names, ns.Name) {
			nss = append(nss, ns)
		}
	}
	var pods []*corev1.Pod
	for _, p := range r.podObjs {
		if slices.Contains(keys, p.Namespace+"/"+p.Name) {
			pods = append(pods, p)
		}
	}
	var pols []*networkingv1.NetworkPolicy
	for _, np := range r.policies {
		if slices.Contains(refs, policy.PolicyRef{Namespace: np.Namespace, Name: np.Name}) {
			pols = append(pols, np)
		}
	}
	return nss, pods, pols
}

// mine returns the round's objects: its namespaces and what they hold.
func (k *kdRun) mine(r *kdRound) ([]*corev1.Namespace, []*corev1.Pod, []*networkingv1.NetworkPolicy) {
	var nss []*corev1.Namespace
	for _, ns := range r.namespaces {
		if slices.Contains(k.namespaces, ns.Name) {
			nss = append(nss, ns)
		}
	}
	var pods []*corev1.Pod
	for _, p := range r.podObjs {
		if slices.Contains(k.namespaces, p.Namespace) {
			pods = append(pods, p)
		}
	}
	var pols []*networkingv1.NetworkPolicy
	for _, np := range r.policies {
		if slices.Contains(k.namespaces, np.Namespace) {
			pols = append(pols, np)
		}
	}
	return nss, pods, pols
}

// writeManifest writes the round's whole cluster as manifests into the lab's
// folder and returns the file's path.
func (k *kdRun) writeManifest(r *kdRound) (string, error) {
	nss, pods, pols := k.mine(r)
	state := "written"
	if strings.HasPrefix(r.phase, "after") {
		state = "changed"
	}
	path := filepath.Join(k.lab.Dir, fmt.Sprintf("kernel-differential-%s-seed%d-round%d-%s.yaml", k.backend, k.seed, r.index, state))
	return path, os.WriteFile(path, []byte(kdManifest(nss, pods, pols)), 0o644)
}

// kdManifest writes objects as YAML documents that `weft explain --files`
// reads, with only the fields policy looks at.
func kdManifest(nss []*corev1.Namespace, pods []*corev1.Pod, pols []*networkingv1.NetworkPolicy) string {
	var docs []any
	for _, ns := range nss {
		docs = append(docs, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels},
		})
	}
	for _, p := range pods {
		var containers []corev1.Container
		for _, c := range p.Spec.Containers {
			containers = append(containers, corev1.Container{Name: c.Name, Image: c.Image, Ports: c.Ports})
		}
		docs = append(docs, &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
			Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork, Containers: containers},
			Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIPs: p.Status.PodIPs, HostIPs: p.Status.HostIPs},
		})
	}
	for _, np := range pols {
		docs = append(docs, &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Namespace: np.Namespace, Name: np.Name},
			Spec:       np.Spec,
		})
	}
	var b strings.Builder
	for _, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			fmt.Fprintf(&b, "# cannot write %T: %v\n", d, err)
			continue
		}
		b.WriteString("---\n")
		for _, line := range strings.Split(strings.TrimRight(string(y), "\n"), "\n") {
			switch strings.TrimSpace(line) {
			case "creationTimestamp: null", "resources: {}", "spec: {}", "status: {}":
				continue
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
