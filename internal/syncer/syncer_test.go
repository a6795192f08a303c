package syncer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// fakeSource serves a snapshot and a change channel the test controls.
type fakeSource struct {
	mu      sync.Mutex
	snap    *policy.Snapshot
	changes chan struct{}
}

func (f *fakeSource) Changes() <-chan struct{} { return f.changes }
func (f *fakeSource) Snapshot() (*policy.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, nil
}
func (f *fakeSource) set(s *policy.Snapshot) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// recordingBackend records applied rulesets; it can be told to fail.
type recordingBackend struct {
	mu      sync.Mutex
	applied []*ir.Ruleset
	fail    int // fail this many more times
	calls   int
}

func (b *recordingBackend) Name() string { return "recording" }
func (b *recordingBackend) Apply(_ context.Context, rs *ir.Ruleset) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.fail > 0 {
		b.fail--
		return errors.New("kernel says no")
	}
	b.applied = append(b.applied, rs)
	return nil
}
func (b *recordingBackend) Cleanup(context.Context) error { return nil }
func (b *recordingBackend) state() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.applied), b.calls
}

func snapshot(podLabel string) *policy.Snapshot {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a", Labels: map[string]string{"app": podLabel}},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.32.0.1"}}},
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	return policy.NewSnapshot([]*corev1.Namespace{ns}, []*corev1.Pod{pod}, []*networkingv1.NetworkPolicy{np})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSyncerAppliesChangesAndSkipsNoOps(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{}
	s := New(src, b, Config{Node: "n1", MinInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	waitFor(t, "first apply", func() bool { n, _ := b.state(); return n == 1 })
	if !s.Ready() {
		t.Fatal("not ready after the first apply")
	}
	if _, rs := s.Current(); len(rs.Groups) != 1 {
		t.Fatalf("pod app=web should be isolated by one group, got %+v", rs.Groups)
	}
	// An unchanged view is not applied again.
	src.set(snapshot("web"))
	time.Sleep(50 * time.Millisecond)
	if n, _ := b.state(); n != 1 {
		t.Fatalf("unchanged ruleset applied again: %d applies", n)
	}
	// A label change that releases the pod is applied.
	src.set(snapshot("db"))
	waitFor(t, "second apply", func() bool { n, _ := b.state(); return n == 2 })
	if _, rs := s.Current(); len(rs.Groups) != 0 {
		t.Fatalf("pod app=db is selected by no policy, got groups %+v", rs.Groups)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSyncerRetriesFailuresWithoutChanges(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{fail: 2}
	s := New(src, b, Config{Node: "n1", MinInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	// No change arrives: only the backoff timer can bring the retries.
	waitFor(t, "apply after two failures", func() bool { n, _ := b.state(); return n == 1 })
	if _, calls := b.state(); calls != 3 {
		t.Fatalf("want 3 attempts (2 failures, 1 success), got %d", calls)
	}
	if !s.Ready() {
		t.Fatal("not ready after a successful retry")
	}
}

func TestSyncerNotReadyWhileFailing(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{fail: 1000}
	s := New(src, b, Config{Node: "n1", MinInterval: time.Millisecond})
	if err := s.SyncOnce(context.Background()); err == nil {
		t.Fatal("SyncOnce should report the backend's failure")
	}
	if s.Ready() {
		t.Fatal("ready although nothing was ever applied")
	}
	if snap, rs := s.Current(); snap != nil || rs != nil {
		t.Fatal("a failed apply must not become the current ruleset")
	}
}

// forgettingBackend is a recordingBackend that counts Forget calls.
type forgettingBackend struct {
	recordingBackend
	forgets int
}

func (b *forgettingBackend) Forget() {
	b.mu.Lock()
	b.forgets++
	b.mu.Unlock()
}

func TestSyncerRepairsPeriodically(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &forgettingBackend{}
	s := New(src, b, Config{Node: "n1", MinInterval: time.Millisecond, RepairInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	// Without any change, the unchanged ruleset is written again after each
	// Forget, so what someone removed behind weft's back comes back.
	waitFor(t, "three applies of an unchanged view", func() bool { n, _ := b.state(); return n >= 3 })
	b.mu.Lock()
	forgets := b.forgets
	b.mu.Unlock()
	if forgets < 2 {
		t.Fatalf("repairs without Forget: %d forgets", forgets)
	}
}

// TestSyncerReappliesAfterAFailedApply: after a failed apply the kernel's
// state is not known to be the last applied ruleset, so even an unchanged
// ruleset is applied again.
func TestSyncerReappliesAfterAFailedApply(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{}
	s := New(src, b, Config{Node: "n1"})
	ctx := context.Background()
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	src.set(snapshot("db"))
	b.mu.Lock()
	b.fail = 1
	b.mu.Unlock()
	if err := s.SyncOnce(ctx); err == nil {
		t.Fatal("want the backend's failure")
	}
	src.set(snapshot("web")) // back to what was applied first
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, calls := b.state(); n != 2 || calls != 3 {
		t.Fatalf("want the first ruleset applied again after the failure: %d applied, %d calls", n, calls)
	}
}

// The syncer compiles with its mode and the namespaces' annotations, and
// says which namespaces are exceptions to its mode and which annotations it
// cannot read (those enforce).
func TestSyncerAuditMode(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{}
	s := New(src, b, Config{Node: "n1", Log: log, NFLog: ir.DefaultLog, Mode: policy.Audit})
	if err := s.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, rs := s.Current(); len(rs.Groups) != 1 || !rs.Groups[0].Audit {
		t.Fatalf("--mode audit: want x/a's group audited, got %+v", rs.Groups)
	}
	if !strings.Contains(buf.String(), "audit mode: what policy blocks is logged") {
		t.Errorf("audit mode not said:\n%s", buf.String())
	}
	snap := snapshot("web")
	snap.Namespaces["x"].Annotations = map[string]string{policy.EnforcementAnnotation: "audti"}
	src.set(snap)
	if err := s.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, rs := s.Current(); len(rs.Groups) != 1 || rs.Groups[0].Audit {
		t.Fatalf("an unreadable annotation must enforce, got %+v", rs.Groups)
	}
	for _, want := range []string{`enforcedNamespaces=[x]`, `namespace x: annotation weft.dev/enforcement \"audti\": want enforce or audit`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}

// verifyingBackend is a forgettingBackend that can read the kernel back:
// each Verify reports the drift queued in found (repairing it), or err.
type verifyingBackend struct {
	forgettingBackend
	found    [][]backend.Drift
	err      error
	verifies int
}

func (b *verifyingBackend) Verify(_ context.Context, repair bool) ([]backend.Drift, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !repair {
		return nil, errors.New("the syncer's periodic check must repair")
	}
	b.verifies++
	if b.err != nil {
		return nil, b.err
	}
	if len(b.found) == 0 {
		return nil, nil
	}
	d := b.found[0]
	b.found = b.found[1:]
	return d, nil
}

// TestSyncerVerifiesPeriodically: with a backend that reads the kernel
// back, the periodic check repairs and reports what differs instead of
// rewriting everything; when the check fails, it falls back to a rewrite.
func TestSyncerVerifiesPeriodically(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	drift := []backend.Drift{{Kind: "element", Object: "s", Change: "missing", Detail: "10.32.0.1"}}
	b := &verifyingBackend{found: [][]backend.Drift{drift}}
	var mu sync.Mutex
	var reported [][]backend.Drift
	s := New(src, b, Config{Node: "n1", MinInterval: time.Millisecond, RepairInterval: 10 * time.Millisecond,
		OnDrift: func(d []backend.Drift) { mu.Lock(); reported = append(reported, d); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	waitFor(t, "three checks", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.verifies >= 3 })
	mu.Lock()
	if len(reported) != 1 || len(reported[0]) != 1 || reported[0][0] != drift[0] {
		t.Errorf("reported %v, want the one drift once", reported)
	}
	mu.Unlock()
	if n, _ := b.state(); n != 1 {
		t.Errorf("%d applies; a check that repairs needs no rewrite", n)
	}
	b.mu.Lock()
	b.err = errors.New("cannot read")
	b.mu.Unlock()
	waitFor(t, "a rewrite after a failed check", func() bool { n, _ := b.state(); return n >= 2 })
}
