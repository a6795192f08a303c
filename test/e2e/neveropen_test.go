package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/lab"
)

// The "never open" stories: traffic hammers pods from the moment their
// network exists, across new pods, reused addresses, revoked connections,
// API outages and a killed weft.

// hammer probes from → to every 10 ms, each probe on its own, and counts
// the connections the destination accepted. Probes of a dropped packet take
// the lab's probe timeout, so many are in flight at once.
type hammer struct {
	name     string
	probes   atomic.Int64
	accepted atomic.Int64
	first    atomic.Int64 // unix nanoseconds of the first accepted probe's start
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startHammer(c *cluster, name string, from, to lab.Endpoint, targets ...lab.Target) *hammer {
	h := &hammer{name: name, stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, tg := range targets {
				h.wg.Add(1)
				go func(tg lab.Target) {
					defer h.wg.Done()
					start := time.Now()
					h.probes.Add(1)
					if c.lab.Probe(context.Background(), from, to, tg).Connected {
						h.accepted.Add(1)
						h.first.CompareAndSwap(0, start.UnixNano())
					}
				}(tg)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// Stop ends the hammer and waits for its probes.
func (h *hammer) Stop() (probes, accepted int64) {
	close(h.stop)
	h.wg.Wait()
	return h.probes.Load(), h.accepted.Load()
}

// firstAccepted is when the first accepted probe started (zero if none).
func (h *hammer) firstAccepted() time.Time {
	if n := h.first.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// hammers is a set of hammers started together.
type hammers []*hammer

// stopAndExpectNone stops them and fails for every accepted connection.
func (hs hammers) stopAndExpectNone(t testing.TB, what string) {
	t.Helper()
	var total int64
	for _, h := range hs {
		probes, accepted := h.Stop()
		total += probes
		if accepted > 0 {
			t.Errorf("%s: %s: %d of %d connections accepted, want none", what, h.name, accepted, probes)
		}
	}
	t.Logf("%s: %d probes in %d directions, none accepted", what, total, len(hs))
}

var allTCP = []lab.Target{tcp80, tcp80v6}

// storyXDenyAll is the matrix of namespace x isolated both ways.
const storyXDenyAll = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   X   X   X   X   X   X
x/b   X   .   X   X   X   X   X   X   X
x/c   X   X   .   X   X   X   X   X   X
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`

// denyAll isolates every pod of ns both ways.
func denyAll(ns string) *networkingv1.NetworkPolicy {
	return netpol(ns, "deny-all", networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	})
}

func (c *cluster) cniOptions() *lab.CNIOptions {
	return &lab.CNIOptions{Plugin: lab.CNIPlugin(c.env.weft), Timeout: 10 * time.Second}
}

// hammerNewPod hammers the new pod both ways, from a peer on its node and
// one on the other node, from the moment its network is up.
func (c *cluster) hammerNewPod(hs *hammers, mu *sync.Mutex) func(p *lab.Pod) {
	return func(p *lab.Pod) {
		mu.Lock()
		defer mu.Unlock()
		for _, peer := range []string{"y/a", "y/c"} { // y/a on node-1, y/c on node-2
			from := c.pods[peer]
			*hs = append(*hs,
				startHammer(c, peer+" -> "+p.ID(), from, p, allTCP...),
				startHammer(c, p.ID()+" -> "+peer, p, from, allTCP...))
		}
	}
}

// storyNewPodHammered: a new pod in a default-deny namespace accepts and
// sends nothing from the moment its network exists, before weft knows it —
// without and with the CNI hook. A pod in a namespace without policy is
// reachable as soon as weft knows it.
func storyNewPodHammered(t *testing.T, c *cluster) {
	c.create(t, denyAll("x"))
	c.expectText(t, storyXDenyAll, tcp80)
	for _, withCNI := range []bool{false, true} {
		name := "x/fresh"
		spec := lab.PodSpec{Namespace: "x", Name: "fresh", Node: c.lab.Nodes[0], Labels: map[string]string{"pod": "fresh"}}
		if withCNI {
			name, spec.Name, spec.CNI = "x/fresh-cni", "fresh-cni", c.cniOptions()
		}
		var hs hammers
		var mu sync.Mutex
		spec.NetworkUp = c.hammerNewPod(&hs, &mu)
		c.addPod(t, spec)
		time.Sleep(time.Second) // keep hammering after weft knows the pod
		mu.Lock()
		hs.stopAndExpectNone(t, fmt.Sprintf("new pod %s in default-deny namespace x (CNI hook %v)", name, withCNI))
		mu.Unlock()
	}

	// In namespace y, which no policy isolates, a new pod opens as soon as
	// weft knows it: measured from the status write (or ADD's return).
	for _, withCNI := range []bool{false, true} {
		spec := lab.PodSpec{Namespace: "y", Name: "open", Node: c.lab.Nodes[0], Labels: map[string]string{"pod": "open"}}
		if withCNI {
			spec.Name, spec.CNI = "open-cni", c.cniOptions()
		}
		var h *hammer
		spec.NetworkUp = func(p *lab.Pod) { h = startHammer(c, "y/a -> "+p.ID(), c.pods["y/a"], p, tcp80) }
		c.addPod(t, spec)
		known := time.Now()
		deadline := time.Now().Add(waitFor)
		for h.firstAccepted().IsZero() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		h.Stop()
		first := h.firstAccepted()
		if first.IsZero() {
			t.Fatalf("new pod y/%s in a namespace without policy never became reachable", spec.Name)
		}
		if withCNI && first.Before(known) {
			// With the hook, ADD returned once the pod was programmed; the
			// status write comes after. Reachable before is right.
			t.Logf("new pod y/%s (CNI hook): reachable %v before its status was written (ADD had returned)", spec.Name, known.Sub(first).Round(time.Millisecond))
		} else {
			t.Logf("new pod y/%s (CNI hook %v): first connection accepted %v after its status was written", spec.Name, withCNI, first.Sub(known).Round(time.Millisecond))
		}
	}
}

// storyIPReuseHammered: a pod that policies allow is deleted and a new pod
// with other labels gets its addresses at once; hammered both ways from the
// moment its network is up, the new pod never uses the old one's allowances.
func storyIPReuseHammered(t *testing.T, c *cluster) {
	c.create(t, denyAll("x"))
	c.create(t, netpol("x", "old-talks-to-y", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("pod", "old"),
		Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")}),
		Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}))
	for _, withCNI := range []bool{false, true} {
		var cniOpts *lab.CNIOptions
		if withCNI {
			cniOpts = c.cniOptions()
		}
		old := c.addPod(t, lab.PodSpec{Namespace: "x", Name: "old", Node: c.lab.Nodes[0], Labels: map[string]string{"pod": "old"}, CNI: cniOpts})
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, err := c.lab.WaitTransition(ctx, c.pods["y/a"], old, tcp80, true, lab.TransitionOptions{Interval: 10 * time.Millisecond, Timeout: waitFor})
		cancel()
		if err != nil {
			t.Fatalf("x/old is allowed from y, yet: %v", err)
		}
		// Connections of the old pod were established and closed: their
		// conntrack entries linger (TIME_WAIT) for the new pod to meet.
		c.deletePod(t, "x/old")
		var hs hammers
		var mu sync.Mutex
		c.addPod(t, lab.PodSpec{Namespace: "x", Name: "new", Node: old.Node, IPv4: old.IPv4, IPv6: old.IPv6,
			Labels: map[string]string{"pod": "new"}, CNI: cniOpts, NetworkUp: c.hammerNewPod(&hs, &mu)})
		time.Sleep(time.Second)
		mu.Lock()
		hs.stopAndExpectNone(t, fmt.Sprintf("x/new with x/old's addresses %s, %s (CNI hook %v)", old.IPv4, old.IPv6, withCNI))
		mu.Unlock()
		c.deletePod(t, "x/new")
	}
}

// echoStream is a long-lived TCP connection from one pod to another that
// sends a byte every 10 ms and reads it back.
type echoStream struct {
	name     string
	mu       sync.Mutex
	lastEcho time.Time
	maxGap   time.Duration
	brokeAt  time.Time // the send whose echo never came (zero while flowing)
	err      error     // why it broke
	echoes   int
	done     chan struct{}
}

const streamPort = 7077

// startEchoServer listens on streamPort in pod and echoes.
func startEchoServer(t testing.TB, c *cluster, p *lab.Pod) {
	t.Helper()
	var ln net.Listener
	if err := c.lab.Do(p, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", streamPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(conn, conn); conn.Close() }()
		}
	}()
}

func startEchoStream(t testing.TB, c *cluster, from, to *lab.Pod) *echoStream {
	t.Helper()
	var conn net.Conn
	if err := c.lab.Do(from, func() (err error) {
		conn, err = net.DialTimeout("tcp", net.JoinHostPort(to.IPv4.String(), fmt.Sprint(streamPort)), 2*time.Second)
		return err
	}); err != nil {
		t.Fatalf("stream %s -> %s: %v", from.ID(), to.ID(), err)
	}
	s := &echoStream{name: from.ID() + " -> " + to.ID(), lastEcho: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer conn.Close()
		buf := []byte{0}
		for {
			sent := time.Now()
			_ = conn.SetDeadline(sent.Add(300 * time.Millisecond))
			_, err := conn.Write(buf)
			if err == nil {
				_, err = io.ReadFull(conn, buf)
				if err == nil {
					s.mu.Lock()
					s.maxGap = max(s.maxGap, time.Since(s.lastEcho))
					s.lastEcho = time.Now()
					s.echoes++
					s.mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
			}
			s.mu.Lock()
			s.brokeAt, s.err = sent, err
			s.mu.Unlock()
			return
		}
	}()
	return s
}

func (s *echoStream) state() (echoes int, maxGap time.Duration, brokeAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoes, s.maxGap, s.brokeAt
}

// storyRevokedStream: a long-lived stream whose allowing policy is deleted
// is cut; a stream that another policy still allows goes on, without a stall.
func storyRevokedStream(t *testing.T, c *cluster) {
	c.create(t, netpol("x", "deny-ingress", networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}, PolicyTypes: typeIngress}))
	c.create(t, netpol("x", "from-y", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
		Ingress: fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")})}))
	c.create(t, netpol("x", "from-z", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
		Ingress: fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "z")})}))
	xa := c.pods["x/a"]
	startEchoServer(t, c, xa)
	// All three policies in force: x/a refuses x/b (so deny-ingress is
	// applied) and then accepts y and z. (A stream started earlier could be
	// cut, rightly, by the ruleset of deny-ingress alone.)
	for _, step := range []struct {
		from     string
		connects bool
	}{{"x/b", false}, {"y/b", true}, {"z/a", true}} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, err := c.lab.WaitTransition(ctx, c.pods[step.from], xa, tcp80, step.connects, lab.TransitionOptions{Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("%s -> x/a: %v", step.from, err)
		}
	}
	revoked := startEchoStream(t, c, c.pods["y/c"], xa) // across nodes: y/c is on node-2
	kept := startEchoStream(t, c, c.pods["z/b"], xa)    // z/b is on node-1, same bridge
	time.Sleep(500 * time.Millisecond)
	deleted := time.Now()
	c.deletePolicy(t, "x", "from-y")
	select {
	case <-revoked.done:
	case <-time.After(waitFor):
		n, _, _ := revoked.state()
		t.Fatalf("the stream %s still flows %v after its policy was deleted (%d echoes)", revoked.name, waitFor, n)
	}
	_, _, brokeAt := revoked.state()
	time.Sleep(time.Second)
	echoes, maxGap, keptBroke := kept.state()
	if !keptBroke.IsZero() {
		t.Errorf("the stream %s, still allowed by x/from-z, broke: %v", kept.name, kept.err)
	}
	if maxGap > 250*time.Millisecond {
		// An allowed stream never waits for a policy change.
		t.Errorf("the stream %s stalled for %v (echoes every 10 ms)", kept.name, maxGap)
	}
	t.Logf("revoked stream %s cut: its first unanswered send %v after the policy delete was written; allowed stream %s: %d echoes, longest gap %v",
		revoked.name, brokeAt.Sub(deleted).Round(time.Millisecond), kept.name, echoes, maxGap.Round(time.Millisecond))
}

// readyz returns weft's /readyz status and body on node.
func readyz(node *lab.Node) (int, string) {
	client := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 2 * time.Second}
	resp, err := client.Get("http://127.0.0.1:6781/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// waitReadyz polls weft's /readyz on node for up to 10 s until it answers
// want, and returns the last answer.
func waitReadyz(node *lab.Node, want int) (int, string) {
	deadline := time.Now().Add(10 * time.Second)
	code, body := readyz(node)
	for code != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		code, body = readyz(node)
	}
	return code, body
}

// kernelRules is what the backend holds in node's namespace, normalised
// (counters dropped, lines sorted) to compare two readings.
func kernelRules(t testing.TB, node *lab.Node, backend string) string {
	t.Helper()
	var cmds [][]string
	if backend == "nftables" {
		cmds = [][]string{{"nft", "list", "table", "inet", "weft"}}
	} else {
		cmds = [][]string{{"iptables-save", "-t", "filter"}, {"ip6tables-save", "-t", "filter"}, {"ipset", "save"}}
	}
	var lines []string
	for _, cmd := range cmds {
		out, err := exec.Command("ip", append([]string{"netns", "exec", node.NetNS}, cmd...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v on %s: %v: %s", cmd, node.Name, err, out)
		}
		inLogSet := false
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") || strings.TrimSpace(l) == "" {
				continue // comments and chain counters
			}
			// The log sets' elements are the kernel's rate-limit state
			// per source (they come and go with traffic), not rules.
			if strings.HasPrefix(strings.TrimSpace(l), "set log-") {
				inLogSet = true
			}
			if inLogSet {
				if strings.Contains(l, "elements = ") || strings.Contains(l, " expires ") {
					continue
				}
				if strings.TrimSpace(l) == "}" {
					inLogSet = false
				}
			}
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// storyAPIOutage: the API server stops for 30 s. Nothing changes in the
// kernel, /readyz says 503 with the reason, and changes written after the
// server is back are enforced at once (not after client-go's backoff).
func storyAPIOutage(t *testing.T, c *cluster) {
	c.create(t, denyAll("x"))
	c.expectText(t, storyXDenyAll, tcp80)
	before := map[string]string{}
	for _, n := range c.lab.Nodes {
		before[n.Name] = kernelRules(t, n, c.backend)
	}
	stopped := time.Now()
	if err := c.lab.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now() // the API server has shut down (gracefully: it took down - stopped)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = c.lab.StartAPIServer(ctx)
		}
	})
	for _, n := range c.lab.Nodes {
		if code, body := waitReadyz(n, http.StatusServiceUnavailable); code != http.StatusServiceUnavailable {
			t.Errorf("weft on %s: /readyz answers %d %q during the outage, want 503", n.Name, code, body)
		} else {
			t.Logf("weft on %s: /readyz 503 at most %v after the API server was gone (its graceful shutdown took %v): %s", n.Name, time.Since(down).Round(time.Millisecond), down.Sub(stopped).Round(time.Millisecond), body)
		}
	}
	time.Sleep(30*time.Second - time.Since(stopped))
	for _, n := range c.lab.Nodes {
		if code, body := readyz(n); code != http.StatusServiceUnavailable {
			t.Errorf("weft on %s: /readyz answers %d %q after 30 s of outage, want 503", n.Name, code, body)
		}
		if got := kernelRules(t, n, c.backend); got != before[n.Name] {
			t.Errorf("the kernel's rules on %s changed during the API outage", n.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := c.lab.StartAPIServer(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	// A change right after the return: x/a accepts y/a again.
	c.create(t, netpol("x", "from-y", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
		Ingress: fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")})}))
	written := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	at, err := c.lab.WaitTransition(ctx, c.pods["y/a"], c.pods["x/a"], tcp80, true, lab.TransitionOptions{Interval: 5 * time.Millisecond, Timeout: 60 * time.Second})
	cancel()
	if err != nil {
		t.Fatalf("after the API server came back, the new policy was not enforced: %v", err)
	}
	// client-go alone waits out a backoff of up to 30 s; weft relists at
	// its first successful probe (1 s).
	if d := at.Sub(written); d > 10*time.Second {
		t.Errorf("a policy created after the outage was enforced only %v after the write", d)
	}
	t.Logf("API server back: a policy written %v after it answered was enforced %v after the write (probes every 5 ms)", written.Sub(back).Round(time.Millisecond), at.Sub(written).Round(100*time.Microsecond))
	for _, n := range c.lab.Nodes {
		if code, body := waitReadyz(n, http.StatusOK); code != http.StatusOK {
			t.Errorf("weft on %s: /readyz %d %q after the API server came back, want 200", n.Name, code, body)
		} else {
			t.Logf("weft on %s: /readyz 200 again %v after the API server answered", n.Name, time.Since(back).Round(time.Millisecond))
		}
	}
}

// storyKill9: weft on node-1 is killed (SIGKILL) while traffic hammers an
// isolated pod and flows between allowed ones; it restarts. Nothing opens at
// any moment, and the restarted weft leaves no duplicate rules or sets.
func storyKill9(t *testing.T, c *cluster) {
	c.create(t, denyAll("x"))
	c.expectText(t, storyXDenyAll, tcp80)
	node := c.lab.Nodes[0]
	before := kernelRules(t, node, c.backend)
	hs := hammers{
		startHammer(c, "y/a -> x/a", c.pods["y/a"], c.pods["x/a"], allTCP...),
		startHammer(c, "x/b -> y/b", c.pods["x/b"], c.pods["y/b"], allTCP...),
		startHammer(c, "y/c -> x/b", c.pods["y/c"], c.pods["x/b"], allTCP...),
	}
	allowed := startHammer(c, "y/a -> y/b (allowed)", c.pods["y/a"], c.pods["y/b"], tcp80)
	time.Sleep(300 * time.Millisecond)
	if err := c.wefts[0].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	w, err := c.lab.StartWeft(context.Background(), node, lab.WeftOptions{Binary: c.env.weft, Backend: c.backend})
	if err != nil {
		t.Fatal(err)
	}
	c.wefts[0] = w
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = c.lab.WaitWeftReady(ctx, node, w)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	hs.stopAndExpectNone(t, "weft killed with SIGKILL and restarted")
	probes, accepted := allowed.Stop()
	if accepted == 0 {
		t.Errorf("the allowed path y/a -> y/b accepted none of %d probes", probes)
	}
	if after := kernelRules(t, node, c.backend); after != before {
		t.Errorf("after kill -9 and restart, the kernel holds other rules than before (duplicates?):\n%s", lineDiff(before, after))
	}
}

// lineDiff lists the lines only one of a and b holds.
func lineDiff(a, b string) string {
	in := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l, n := range ma {
		if mb[l] != n {
			out = append(out, fmt.Sprintf("- %s (%d×, then %d×)", l, n, mb[l]))
		}
	}
	for l, n := range mb {
		if _, ok := ma[l]; !ok {
			out = append(out, fmt.Sprintf("+ %s (%d×)", l, n))
		}
	}
	sort.Strings(out)
	if len(out) > 40 {
		out = append(out[:40], "…")
	}
	return strings.Join(out, "\n")
}
