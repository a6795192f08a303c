package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/internal/reach"

	corev1 "k8s.io/api/core/v1"
)

// Target is what a probe connects to on the destination pod.
type Target struct {
	Protocol corev1.Protocol // TCP or UDP
	Port     int
	Family   Family
}

// Common targets.
var (
	TCP80   = Target{Protocol: corev1.ProtocolTCP, Port: 80, Family: IPv4}
	TCP81   = Target{Protocol: corev1.ProtocolTCP, Port: 81, Family: IPv4}
	UDP80   = Target{Protocol: corev1.ProtocolUDP, Port: 80, Family: IPv4}
	UDP81   = Target{Protocol: corev1.ProtocolUDP, Port: 81, Family: IPv4}
	TCP80v6 = Target{Protocol: corev1.ProtocolTCP, Port: 80, Family: IPv6}
	TCP81v6 = Target{Protocol: corev1.ProtocolTCP, Port: 81, Family: IPv6}
	UDP80v6 = Target{Protocol: corev1.ProtocolUDP, Port: 80, Family: IPv6}
)

func (t Target) String() string { return fmt.Sprintf("%s/%d %s", t.Protocol, t.Port, t.Family) }

// Endpoint is where a probe starts or ends: a *Pod or a *Node.
type Endpoint interface {
	// ID is the endpoint's name in matrices: "namespace/name" or the node's.
	ID() string
	// IP is the endpoint's address of a family.
	IP(Family) netip.Addr
	netns() *netNS
	// answer is what the endpoint's servers reply.
	answer() string
}

func (p *Pod) netns() *netNS { return p.ns }
func (p *Pod) answer() string {
	if p.HostNetwork {
		return p.Node.Name
	}
	return p.ID()
}

// ID is the node's name.
func (n *Node) ID() string     { return n.Name }
func (n *Node) netns() *netNS  { return n.ns }
func (n *Node) answer() string { return n.Name }

// Do runs fn on an OS thread inside e's network namespace: the sockets fn
// creates belong to e (for load generators and benchmarks; Probe is the
// usual way in).
func (l *Lab) Do(e Endpoint, fn func() error) error {
	ns := e.netns()
	if ns == nil {
		return fmt.Errorf("%s has no network namespace (deleted?)", e.ID())
	}
	return ns.Do(fn)
}

// Endpoints turns pods or nodes into endpoints, for ProbeMatrix.
func Endpoints[E Endpoint](items ...E) []Endpoint {
	out := make([]Endpoint, len(items))
	for i, e := range items {
		out[i] = e
	}
	return out
}

// Result is the outcome of one probe.
type Result struct {
	// Connected is true when the destination pod itself answered.
	Connected bool
	// Err says why not: a timeout (dropped), a refusal, or a wrong answer.
	Err error
}

// Probe connects once from from to to, with the lab's probe timeout.
// TCP: the connection must be accepted and the pod's identity read back.
// UDP: a datagram must be answered with the pod's identity (sent up to three
// times within the timeout, since UDP may lose one).
func (l *Lab) Probe(ctx context.Context, from, to Endpoint, t Target) Result {
	return probe(ctx, from, to, t, l.cfg.ProbeTimeout)
}

func probe(ctx context.Context, from, to Endpoint, t Target, timeout time.Duration) Result {
	ns := from.netns()
	if ns == nil {
		return Result{Err: fmt.Errorf("probe from %s: it has no network namespace (deleted?)", from.ID())}
	}
	ip := to.IP(t.Family)
	if !ip.IsValid() {
		return Result{Err: fmt.Errorf("probe %s -> %s (%s): %s has no %s address", from.ID(), to.ID(), t, to.ID(), t.Family)}
	}
	if !from.IP(t.Family).IsValid() {
		return Result{Err: fmt.Errorf("probe %s -> %s (%s): %s has no %s address", from.ID(), to.ID(), t, from.ID(), t.Family)}
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(t.Port))
	var reply string
	err := ns.Do(func() error {
		var err error
		switch t.Protocol {
		case corev1.ProtocolTCP:
			reply, err = probeTCP(ctx, addr, timeout)
		case corev1.ProtocolUDP:
			reply, err = probeUDP(ctx, addr, timeout)
		default:
			err = fmt.Errorf("the lab probes TCP and UDP, not %s", t.Protocol)
		}
		return err
	})
	if err != nil {
		return Result{Err: fmt.Errorf("%s -> %s (%s %s): %w", from.ID(), to.ID(), t, addr, err)}
	}
	if reply != to.answer() {
		return Result{Err: fmt.Errorf("%s -> %s (%s %s): answered by %q", from.ID(), to.ID(), t, addr, reply)}
	}
	return Result{Connected: true}
}

func probeTCP(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	b, err := io.ReadAll(io.LimitReader(c, 256))
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	return string(b), nil
}

func probeUDP(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	const tries = 3
	buf := make([]byte, 256)
	var lastErr error
	for range tries {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if _, err := c.Write([]byte("probe")); err != nil {
			lastErr = err
		} else {
			_ = c.SetReadDeadline(time.Now().Add(timeout / tries))
			n, err := c.Read(buf)
			if err == nil {
				return string(buf[:n]), nil
			}
			lastErr = err
		}
	}
	return "", fmt.Errorf("no answer: %w", lastErr)
}

// ProbeMatrix probes every source against every destination in parallel
// (bounded) and returns the matrix and the probes' errors by "from -> to".
func (l *Lab) ProbeMatrix(ctx context.Context, from, to []Endpoint, t Target) (*Matrix, map[string]error) {
	m := reach.NewMatrix(endpointIDs(from), endpointIDs(to), false)
	errs := map[string]error{}
	var mu sync.Mutex
	sem := make(chan struct{}, l.cfg.ProbeParallelism)
	var wg sync.WaitGroup
	for _, f := range from {
		for _, d := range to {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := l.Probe(ctx, f, d, t)
				mu.Lock()
				defer mu.Unlock()
				m.Set(f.ID(), d.ID(), r.Connected)
				if r.Err != nil {
					errs[f.ID()+" -> "+d.ID()] = r.Err
				}
			}()
		}
	}
	wg.Wait()
	return m, errs
}

// WaitMatrix probes until the matrix equals want or ctx ends (give it a
// deadline, ~20 s). It returns the last matrix probed, and on failure an
// error with the difference and the failed probes' reasons.
func (l *Lab) WaitMatrix(ctx context.Context, from, to []Endpoint, t Target, want *Matrix) (*Matrix, error) {
	for {
		got, errs := l.ProbeMatrix(ctx, from, to, t)
		if got.Equal(want) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%s: reachability did not become as wanted: %w\n%s%s", t, ctx.Err(), reach.Diff(want, got), failedProbes(want, got, errs))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// failedProbes lists why the cells that should connect did not.
func failedProbes(want, got *Matrix, errs map[string]error) string {
	var lines []string
	for _, f := range want.From {
		for _, d := range want.To {
			if connects(want, f, d) && !connects(got, f, d) {
				if err := errs[f+" -> "+d]; err != nil {
					lines = append(lines, "  "+err.Error())
				}
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	sort.Strings(lines)
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("  … and %d more", len(lines)-10))
	}
	return "probes that should have connected:\n" + strings.Join(lines, "\n") + "\n"
}

// TransitionOptions tune WaitTransition.
type TransitionOptions struct {
	// Interval between the starts of two attempts (default 5ms).
	Interval time.Duration
	// Timeout of one attempt (default 250ms).
	Timeout time.Duration
	// Confirm is how many consecutive blocked attempts show a path blocked
	// (default 3). One connected attempt shows a path open.
	Confirm int
}

// WaitTransition finds when the path from→to reaches the state connects,
// by starting an attempt every Interval, each with its own Timeout, until
// the state is shown. It returns the start time of the first attempt of the
// run that shows it: for connects, the first attempt that connected; for
// blocked, the first of Confirm consecutive attempts that all failed. An
// attempt that started before the change and was dropped does not hide a
// later one that connects, so the time is exact to about Interval.
func (l *Lab) WaitTransition(ctx context.Context, from, to Endpoint, t Target, connects bool, o TransitionOptions) (time.Time, error) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.Confirm <= 0 {
		o.Confirm = 3
	}
	need := o.Confirm
	if connects {
		need = 1
	}
	type attempt struct {
		start time.Time
		done  bool
		ok    bool
	}
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: attempts end early
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan int, 256)
	var attempts []*attempt
	var mu sync.Mutex
	cursor, runStart, runLen := 0, -1, 0
	ticker := time.NewTicker(o.Interval)
	defer ticker.Stop()
	launch := func() {
		mu.Lock()
		a := &attempt{start: time.Now()}
		attempts = append(attempts, a)
		i := len(attempts) - 1
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := probe(ctx, from, to, t, o.Timeout)
			mu.Lock()
			a.done, a.ok = true, r.Connected
			mu.Unlock()
			select {
			case results <- i:
			case <-ctx.Done():
			}
		}()
	}
	inFlight := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) - cursor
	}
	launch()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("wait for %s -> %s (%s) to become %s: %w", from.ID(), to.ID(), t, stateWord(connects), ctx.Err())
		case <-ticker.C:
			// Bound the attempts in flight (a blocked path keeps each for Timeout).
			if inFlight() < 4*int(o.Timeout/o.Interval)+8 {
				launch()
			}
		case <-results:
			mu.Lock()
			// Walk the completed prefix in start order.
			for cursor < len(attempts) && attempts[cursor].done {
				if attempts[cursor].ok == connects {
					if runLen == 0 {
						runStart = cursor
					}
					runLen++
				} else {
					runLen = 0
				}
				cursor++
				if runLen >= need {
					start := attempts[runStart].start
					mu.Unlock()
					return start, nil
				}
			}
			mu.Unlock()
		}
	}
}

func stateWord(connects bool) string {
	if connects {
		return "connecting"
	}
	return "blocked"
}

func endpointIDs(es []Endpoint) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID()
	}
	return ids
}

func sortPods(pods []*Pod) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].ID() < pods[j].ID() })
}
