package syncer

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// staleSource is a fakeSource that can say its view is stale.
type staleSource struct {
	fakeSource
	mu    sync.Mutex
	stale string
}

func (s *staleSource) Stale() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stale
}

// Status turns not ready while syncs keep failing and while the source is
// stale, and ready again when they succeed and the source is current.
func TestStatusFollowsFailuresAndStaleness(t *testing.T) {
	src := &staleSource{fakeSource: fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}}
	b := &recordingBackend{}
	s := New(src, b, Config{Node: "n1", FailuresUntilNotReady: 2})
	ctx := context.Background()
	if ok, why := s.Status(); ok || !strings.Contains(why, "no ruleset applied yet") {
		t.Fatalf("before the first sync: ready=%v %q", ok, why)
	}
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, why := s.Status(); !ok {
		t.Fatalf("after an apply: not ready: %q", why)
	}

	b.mu.Lock()
	b.fail = 2
	b.mu.Unlock()
	src.set(snapshot("db"))
	_ = s.SyncOnce(ctx)
	if ok, _ := s.Status(); !ok {
		t.Fatal("one failure is not yet \"keeps failing\"")
	}
	_ = s.SyncOnce(ctx)
	if ok, why := s.Status(); ok || !strings.Contains(why, "the last 2 syncs failed") || !strings.Contains(why, "kernel says no") {
		t.Fatalf("after 2 failures: ready=%v %q", ok, why)
	}
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, why := s.Status(); !ok {
		t.Fatalf("after a successful sync: not ready: %q", why)
	}

	src.mu.Lock()
	src.stale = "API server unreachable since then"
	src.mu.Unlock()
	if ok, why := s.Status(); ok || why != "API server unreachable since then" {
		t.Fatalf("stale source: ready=%v %q", ok, why)
	}
	src.mu.Lock()
	src.stale = ""
	src.mu.Unlock()
	if ok, _ := s.Status(); !ok {
		t.Fatal("not ready after the source is current again")
	}
}

// withNode adds the Node object n1 with pod ranges to a snapshot.
func withNode(s *policy.Snapshot, cidrs ...string) *policy.Snapshot {
	n := &policy.Node{Name: "n1"}
	for _, c := range cidrs {
		n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(c))
	}
	s.AddNodes(n)
	return s
}

// The pod ranges come from --pod-cidrs, else from the Node object; with
// them a known pod no policy isolates is in an open group, and
// --unknown-pod-traffic=allow leaves them out.
func TestPodRangesDecideUnknownDenial(t *testing.T) {
	open := func() *policy.Snapshot { return withNode(snapshot("db"), "10.32.0.0/24") } // app=db: no policy selects it
	cases := []struct {
		name       string
		cfg        Config
		snap       *policy.Snapshot
		wantRanges []string
		wantGroups int
	}{
		{"no ranges anywhere", Config{}, snapshot("db"), nil, 0},
		{"Node spec.podCIDRs", Config{}, open(), []string{"10.32.0.0/24"}, 2},
		{"--pod-cidrs wins", Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/16")}}, open(), []string{"10.32.0.0/16"}, 2},
		{"--unknown-pod-traffic=allow", Config{AllowUnknown: true}, open(), nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Node = "n1"
			var applied Applied
			cfg.OnApplied = func(_ context.Context, a Applied) { applied = a }
			s := New(&fakeSource{snap: tc.snap, changes: make(chan struct{}, 1)}, &recordingBackend{}, cfg)
			if err := s.SyncOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, rs := s.Current()
			var got []string
			for _, p := range rs.UnknownRanges {
				got = append(got, p.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.wantRanges, ",") || len(rs.Groups) != tc.wantGroups {
				t.Fatalf("ranges %v, %d groups; want %v, %d", got, len(rs.Groups), tc.wantRanges, tc.wantGroups)
			}
			if applied.Ruleset != rs {
				t.Fatal("OnApplied did not see the applied ruleset")
			}
		})
	}
}

// AppliedSignal closes after the next successful sync, also when the
// ruleset did not change (the CNI hook waits on it).
func TestAppliedSignal(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	s := New(src, &recordingBackend{}, Config{Node: "n1"})
	for i := 0; i < 2; i++ {
		ch := s.AppliedSignal()
		select {
		case <-ch:
			t.Fatal("signal closed before a sync")
		default:
		}
		if err := s.SyncOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		default:
			t.Fatalf("sync %d did not close the signal", i)
		}
	}
}

// hookBackend is a recordingBackend whose hook can be found gone.
type hookBackend struct {
	recordingBackend
	checks int
	gone   bool
}

func (b *hookBackend) CheckHooks(context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checks++
	if b.gone {
		b.gone = false
		return nil, errors.New("weft's chains are gone")
	}
	return nil, nil
}

// A sync that applies nothing checks the backend's hook; a hook that cannot
// be put back makes the sync apply the whole, unchanged ruleset.
func TestUnchangedSyncChecksHooks(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &hookBackend{}
	s := New(src, b, Config{Node: "n1"})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := s.SyncOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := b.state(); n != 1 || b.checks != 1 {
		t.Fatalf("after a first and an unchanged sync: %d applies, %d hook checks; want 1, 1", n, b.checks)
	}
	b.mu.Lock()
	b.gone = true
	b.mu.Unlock()
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.state(); n != 2 {
		t.Fatalf("a hook that is gone did not make the unchanged ruleset applied again: %d applies", n)
	}
}

// BeforeApply sees each changed ruleset, with its snapshot and the NFLOG
// settings, before the backend gets it, and is not called when nothing
// changed.
func TestBeforeApplyPrecedesApply(t *testing.T) {
	src := &fakeSource{snap: snapshot("web"), changes: make(chan struct{}, 1)}
	b := &recordingBackend{}
	var seen []Result
	var appliedBefore []int
	logSpec := ir.DefaultLog
	s := New(src, b, Config{Node: "n1", NFLog: logSpec, BeforeApply: func(r Result) {
		n, _ := b.state()
		seen = append(seen, r)
		appliedBefore = append(appliedBefore, n)
	}})
	ctx := context.Background()
	for range 2 { // the second sync changes nothing
		if err := s.SyncOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 1 || appliedBefore[0] != 0 {
		t.Fatalf("BeforeApply called %d times (want 1), the backend had applied %v rulesets before", len(seen), appliedBefore)
	}
	if seen[0].Snapshot == nil || seen[0].Ruleset == nil || seen[0].Ruleset.Log != logSpec {
		t.Errorf("BeforeApply saw %+v; want the snapshot and a ruleset carrying the NFLOG settings", seen[0])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.applied) != 1 || b.applied[0] != seen[0].Ruleset {
		t.Error("the ruleset applied is not the one BeforeApply saw")
	}
}
