package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/reach"
	"github.com/weftnet/weft/internal/scenarios"
)

// waitFor bounds every wait for the kernel to match what the API says.
const waitFor = 20 * time.Second

// cluster is weft running with one backend on every node of the lab, and
// the model the lab currently holds.
type cluster struct {
	env     *env
	lab     *lab.Lab
	backend string
	wefts   []*lab.Process
	nodes   map[string]*lab.Node
	pods    map[string]*lab.Pod          // by "namespace/name"
	apiOnly map[string]*corev1.Pod       // finished pods: objects only
	labels  map[string]map[string]string // pod labels as written
	model   *scenarios.Model
}

// startCluster runs `weft run --backend backend` on every node and waits
// until each serves /readyz. When weft reports the backend unavailable on
// this machine the test skips with weft's words; any other failure fails it.
// On cleanup weft stops and `weft cleanup` removes its rules.
func startCluster(t testing.TB, e *env, backend string) *cluster {
	t.Helper()
	c := &cluster{env: e, lab: e.lab, backend: backend, nodes: map[string]*lab.Node{},
		pods: map[string]*lab.Pod{}, apiOnly: map[string]*corev1.Pod{}, labels: map[string]map[string]string{}}
	for _, n := range e.lab.Nodes {
		c.nodes[n.Name] = n
	}
	for _, p := range e.lab.Pods() {
		c.pods[p.ID()] = p
	}
	t.Cleanup(func() { c.stop(t) })
	for _, n := range e.lab.Nodes {
		w, err := e.lab.StartWeft(context.Background(), n, lab.WeftOptions{Binary: e.weft, Backend: backend})
		if err != nil {
			t.Fatal(err)
		}
		c.wefts = append(c.wefts, w)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = e.lab.WaitWeftReady(ctx, n, w)
		cancel()
		if err != nil {
			log := w.Log()
			if exited, _ := w.Exited(); exited && strings.Contains(log, "unavailable") {
				t.Skipf("weft reports the %s backend unavailable on this machine:\n%s", backend, tailLines(log, 10))
			}
			t.Fatalf("weft --backend %s on %s: %v", backend, n.Name, err)
		}
	}
	return c
}

func (c *cluster) stop(t testing.TB) {
	for i, w := range c.wefts {
		if err := c.lab.StopWeft(w); err != nil {
			t.Errorf("weft on %s: %v\n%s", c.lab.Nodes[i].Name, err, tailLines(w.Log(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.lab.WeftCleanup(ctx, c.lab.Nodes[i], c.env.weft, c.backend); err != nil {
			t.Errorf("%v", err)
		}
		cancel()
	}
}

// logOnFailure prints the end of every weft's log when t fails.
func (c *cluster) logOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, w := range c.wefts {
			t.Logf("weft on %s (%s), last lines:\n%s", c.lab.Nodes[i].Name, w.LogPath, tailLines(w.Log(), 30))
		}
	})
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// deleteAllPolicies removes every NetworkPolicy of the cluster.
func (c *cluster) deleteAllPolicies(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	list, err := c.lab.Client().NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list policies: %v", err)
	}
	for _, p := range list.Items {
		err := c.lab.Client().NetworkingV1().NetworkPolicies(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete policy %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
}

// createPolicy writes a policy; it reports the API server's refusal as such.
func (c *cluster) createPolicy(ctx context.Context, p *networkingv1.NetworkPolicy) error {
	p = p.DeepCopy()
	p.ResourceVersion = ""
	_, err := c.lab.Client().NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create policy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// applyModel makes the lab hold model m: namespaces with its labels, its
// pods on its nodes with its addresses, ports and labels. Pods that differ
// in anything but labels are re-created; pods m lacks are deleted. Finished
// pods of m are API objects only (their addresses may be reused).
func (c *cluster) applyModel(t testing.TB, m *scenarios.Model) {
	t.Helper()
	ctx := context.Background()
	for _, ns := range m.Namespaces {
		if err := c.lab.EnsureNamespace(ctx, ns.Name, ns.Labels); err != nil {
			t.Fatal(err)
		}
	}
	for id, p := range c.apiOnly {
		if err := c.lab.DeleteAPIOnlyPod(ctx, p.Namespace, p.Name); err != nil {
			t.Fatal(err)
		}
		delete(c.apiOnly, id)
	}
	want := map[string]*corev1.Pod{}
	var finished []*corev1.Pod
	for _, p := range m.Pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			finished = append(finished, p)
			continue
		}
		want[p.Namespace+"/"+p.Name] = p
	}
	for id, lp := range c.pods {
		if w, ok := want[id]; !ok || !samePod(lp, w, c.nodes) {
			if err := c.lab.DeletePod(ctx, lp); err != nil {
				t.Fatal(err)
			}
			delete(c.pods, id)
			delete(c.labels, id)
		}
	}
	for _, p := range m.Pods {
		id := p.Namespace + "/" + p.Name
		if want[id] == nil {
			continue
		}
		if lp, ok := c.pods[id]; ok {
			if !maps.Equal(c.labels[id], p.Labels) {
				if err := c.lab.SetPodLabels(ctx, lp, p.Labels); err != nil {
					t.Fatal(err)
				}
				c.labels[id] = maps.Clone(p.Labels)
			}
			continue
		}
		node := c.nodes[p.Spec.NodeName]
		if node == nil {
			t.Fatalf("model pod %s runs on node %q, the lab has no such node", id, p.Spec.NodeName)
		}
		spec := lab.PodSpec{Namespace: p.Namespace, Name: p.Name, Node: node, Labels: p.Labels,
			Ports: p.Spec.Containers[0].Ports, HostNetwork: p.Spec.HostNetwork}
		if !p.Spec.HostNetwork {
			spec.IPv4, spec.IPv6 = podIPs(p)
			spec.Families = families(spec.IPv4, spec.IPv6)
		}
		lp, err := c.lab.AddPod(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		c.pods[id] = lp
		c.labels[id] = maps.Clone(p.Labels)
	}
	for _, p := range finished {
		if err := c.lab.WriteAPIOnlyPod(ctx, p); err != nil {
			t.Fatal(err)
		}
		c.apiOnly[p.Namespace+"/"+p.Name] = p
	}
	c.model = m
}

func families(v4, v6 netip.Addr) []lab.Family {
	var out []lab.Family
	if v4.IsValid() {
		out = append(out, lab.IPv4)
	}
	if v6.IsValid() {
		out = append(out, lab.IPv6)
	}
	return out
}

func podIPs(p *corev1.Pod) (v4, v6 netip.Addr) {
	for _, ip := range p.Status.PodIPs {
		a := netip.MustParseAddr(ip.IP)
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return v4, v6
}

// samePod reports whether the lab pod is the model pod but for labels.
func samePod(lp *lab.Pod, p *corev1.Pod, nodes map[string]*lab.Node) bool {
	if lp.Node != nodes[p.Spec.NodeName] || lp.HostNetwork != p.Spec.HostNetwork ||
		!slices.Equal(lp.Ports, p.Spec.Containers[0].Ports) {
		return false
	}
	if p.Spec.HostNetwork {
		return true
	}
	v4, v6 := podIPs(p)
	return lp.IPv4 == v4 && lp.IPv6 == v6
}

// endpoint returns the lab pod or node a matrix names.
func (c *cluster) endpoint(name string) (lab.Endpoint, error) {
	if p, ok := c.pods[name]; ok {
		return p, nil
	}
	if n, ok := c.nodes[name]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("the matrix names %q, which the lab has neither as pod nor as node", name)
}

func (c *cluster) endpoints(t testing.TB, names []string) []lab.Endpoint {
	t.Helper()
	out := make([]lab.Endpoint, len(names))
	for i, n := range names {
		e, err := c.endpoint(n)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// expectMatrix waits until probing target between the matrix's sources and
// destinations gives want.
func (c *cluster) expectMatrix(t testing.TB, target lab.Target, want *lab.Matrix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.lab.WaitMatrix(ctx, c.endpoints(t, want.From), c.endpoints(t, want.To), target, want); err != nil {
		t.Errorf("%s backend: %v", c.backend, err)
	}
}

// expectText is expectMatrix with the matrix written as text.
func (c *cluster) expectText(t testing.TB, text string, targets ...lab.Target) {
	t.Helper()
	want, err := reach.ParseMatrix(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		c.expectMatrix(t, target, want)
	}
}

// expectOpen waits until every running pod and node of the model reaches
// every other over TCP/80: the state with no policy.
func (c *cluster) expectOpen(t testing.TB) {
	t.Helper()
	var names []string
	for _, name := range c.model.PodNames() {
		if p := c.pods[name]; p != nil && p.IPv4.IsValid() {
			names = append(names, name)
		}
	}
	for _, n := range c.model.Nodes {
		names = append(names, n.Name)
	}
	c.expectMatrix(t, lab.TCP80, reach.NewMatrix(names, names, true))
}

// target turns a catalogue probe key into a lab target.
func target(k scenarios.ProbeKey) lab.Target {
	return lab.Target{Protocol: k.Protocol, Port: int(k.Port), Family: lab.Family(k.Family)}
}

// sctpMissing says why this kernel cannot carry SCTP probes ("" when it can).
func sctpMissing() string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err == nil {
		unix.Close(fd)
		return "the lab probes only TCP and UDP; SCTP probes are not implemented"
	}
	if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ESOCKTNOSUPPORT) {
		return "this kernel has no SCTP sockets"
	}
	return fmt.Sprintf("cannot open an SCTP socket: %v", err)
}

// runScenario applies a catalogue scenario on the lab and checks every
// probe's matrix. Between scenarios the lab goes back to no policies and the
// test waits until everything connects, so that no matrix can be passed by
// the state the previous scenario left.
func (c *cluster) runScenario(t testing.TB, sc *scenarios.Scenario) {
	c.logOnFailure(t)
	c.deleteAllPolicies(t)
	m := sc.Model()
	c.applyModel(t, m)
	c.expectOpen(t)
	if t.Failed() {
		return
	}
	ctx := context.Background()
	for _, p := range sc.Policies {
		if err := c.createPolicy(ctx, p); err != nil {
			if apierrors.IsInvalid(err) && len(sc.Errors) > 0 {
				t.Skipf("the API server refuses this bad policy (%v); what weft does with it is tested offline in internal/scenarios", err)
			}
			t.Fatal(err)
		}
	}
	var skipped []string
	for _, probe := range sc.Probes {
		if probe.Protocol == corev1.ProtocolSCTP {
			skipped = append(skipped, probe.String())
			continue
		}
		c.expectMatrix(t, target(probe.ProbeKey), probe.Expect)
	}
	if len(skipped) > 0 {
		reason := sctpMissing()
		if len(skipped) == len(sc.Probes) {
			t.Skipf("every probe is SCTP (%s): %s", strings.Join(skipped, ", "), reason)
		}
		t.Logf("not probed: %s: %s", strings.Join(skipped, ", "), reason)
	}
	for _, want := range sc.Errors {
		c.expectLogged(t, want)
	}
}

// expectLogged waits until some weft logs the policy problem "ns/name: field".
func (c *cluster) expectLogged(t testing.TB, problem string) {
	t.Helper()
	ref, field, _ := strings.Cut(problem, ": ")
	ns, name, _ := strings.Cut(ref, "/")
	parts := []string{"namespace=" + ns, "policy=" + name, "field=" + field}
	deadline := time.Now().Add(waitFor)
	for {
		for _, w := range c.wefts {
			for _, line := range strings.Split(w.Log(), "\n") {
				if containsAll(line, parts) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no weft logged the problem %q (a line with %v)", problem, parts)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
