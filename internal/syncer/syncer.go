package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Source is the cluster view: a change signal and snapshots.
type Source interface {
	Changes() <-chan struct{}
	Snapshot() (*policy.Snapshot, error)
}

// HealthReporter is a Source that can say its view is stale (the API server
// does not answer).
type HealthReporter interface {
	// Stale returns a reason while the view may be out of date, else "".
	Stale() string
}

// Config tunes the loop. Zero values take the defaults.
type Config struct {
	Node string
	// PodCIDRs, when set, are the node's pod ranges (--pod-cidrs); else the
	// Node object's spec.podCIDRs are used.
	PodCIDRs []netip.Prefix
	// AllowUnknown lets addresses of the pod ranges that no known pod holds
	// pass (--unknown-pod-traffic=allow); by default they are dropped.
	AllowUnknown bool
	// NodeAddrs, if set, returns the node's own addresses (its interfaces),
	// which are never pod addresses. Called on every sync.
	NodeAddrs func() []netip.Addr
	// OnApplied, if set, is called after each ruleset the backend applied,
	// before the next sync can start: what it sees is what the kernel holds
	// (weft cuts revoked connections there; judged with an older ruleset,
	// a connection that a newer one admits could be cut).
	OnApplied func(ctx context.Context, a Applied)
	// FailuresUntilNotReady is how many syncs in a row must fail before the
	// syncer reports not ready (default 3).
	FailuresUntilNotReady int
	// MinInterval bounds the rate of syncs (default 20ms).
	MinInterval time.Duration
	// MaxBackoff caps the retry delay after failures (default 30s); retries
	// start at 100ms and double.
	MaxBackoff time.Duration
	// RepairInterval is how often the kernel is read back and compared with
	// the ruleset applied, and what differs repaired (default 1m; needs a
	// backend.Verifier; a backend.Forgetter without it rewrites all).
	RepairInterval time.Duration
	// OnDrift, if set, is called with what each periodic check found and
	// repaired (not called when it found nothing).
	OnDrift func([]backend.Drift)
	// HookCheckInterval is how often, between syncs, the backend's hook is
	// checked (default 10s; needs a backend.HookChecker). Every sync that
	// applies nothing checks it too.
	HookCheckInterval time.Duration
	Log               *slog.Logger
	// NFLog is what the kernel sends to NFLOG (zero: nothing).
	NFLog ir.Log
	// Mode is how local pods are enforced unless their namespace's
	// annotation weft.dev/enforcement says otherwise (--mode). Audit needs
	// NFLog enabled.
	Mode policy.Enforcement
	// BeforeApply, if set, is called with a changed ruleset (and its
	// snapshot) just before the backend applies it: from then on the
	// kernel may act on it (weft's log explains packets by it).
	BeforeApply func(Result)
	// OnSync, if set, is called after every attempt (for metrics).
	OnSync func(Result)
}

// Result describes one sync attempt.
type Result struct {
	Snapshot *policy.Snapshot
	Ruleset  *ir.Ruleset
	Changed  bool // the ruleset differed from the one applied before
	Compile  time.Duration
	Apply    time.Duration
	Err      error
	// PodRanges are the pod ranges the sync used (nil: none known, so
	// unknown addresses could not be denied).
	PodRanges []netip.Prefix
	// NodeAddrs are the node's own addresses the sync used.
	NodeAddrs []netip.Addr
}

// Applied is a ruleset in the kernel and what it was compiled from.
type Applied struct {
	Snapshot *policy.Snapshot
	Ruleset  *ir.Ruleset
	// NodeAddrs are the node's own addresses at that sync.
	NodeAddrs []netip.Addr
	// At is when the backend finished applying it.
	At time.Time
}

// Syncer drives a backend from a source.
type Syncer struct {
	cfg     Config
	src     Source
	backend backend.Backend
	ready   atomic.Bool

	mu        sync.Mutex
	snapshot  *policy.Snapshot
	applied   *ir.Ruleset
	appliedCh chan struct{} // closed and replaced after each successful sync
	failures  int           // syncs failed in a row
	lastErr   error
	lastSync  time.Time       // last successful sync
	lastApply time.Time       // last sync that changed the kernel
	logged    map[string]bool // policy problems already logged
	ranges    string          // pod ranges last logged
	audited   string          // audited namespaces last logged
	compiler  *compile.Incremental
	seen      *policy.Snapshot // the snapshot compiled last
}

// New returns a Syncer.
func New(src Source, b backend.Backend, cfg Config) *Syncer {
	if cfg.MinInterval == 0 {
		cfg.MinInterval = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.RepairInterval == 0 {
		cfg.RepairInterval = time.Minute
	}
	if cfg.HookCheckInterval == 0 {
		cfg.HookCheckInterval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.FailuresUntilNotReady == 0 {
		cfg.FailuresUntilNotReady = 3
	}
	return &Syncer{cfg: cfg, src: src, backend: b, logged: map[string]bool{}, appliedCh: make(chan struct{}), ranges: "unset", compiler: compile.NewIncremental()}
}

// Ready reports whether a ruleset has been applied since start (use Status
// for whether weft is enforcing what the cluster says now).
func (s *Syncer) Ready() bool { return s.ready.Load() }

// Status says whether the node enforces the cluster's current policy: a
// ruleset was applied, the latest syncs did not keep failing, and the
// source's view is not stale. When not, reason says why.
func (s *Syncer) Status() (ready bool, reason string) {
	if !s.ready.Load() {
		return false, "no ruleset applied yet (waiting for the API server or the packet filter)"
	}
	if h, ok := s.src.(HealthReporter); ok {
		if stale := h.Stale(); stale != "" {
			return false, stale
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures >= s.cfg.FailuresUntilNotReady {
		return false, fmt.Sprintf("the last %d syncs failed; the rules applied before stay in place: %v", s.failures, s.lastErr)
	}
	return true, ""
}

// AppliedSignal returns a channel that is closed after the next successful
// sync (whether or not the ruleset changed); read Current then.
func (s *Syncer) AppliedSignal() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appliedCh
}

// Current returns the snapshot and ruleset applied last (nil before the first).
func (s *Syncer) Current() (*policy.Snapshot, *ir.Ruleset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot, s.applied
}

// Run syncs once, then on every change, until ctx ends. Rules stay in the
// kernel when it returns.
func (s *Syncer) Run(ctx context.Context) error {
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	var retry <-chan time.Time
	pending := true // sync at start
	repairing := false
	repair := time.NewTicker(s.cfg.RepairInterval)
	defer repair.Stop()
	hooks := time.NewTicker(s.cfg.HookCheckInterval)
	defer hooks.Stop()
	verifying := false
	verified := make(chan bool, 1)
	var last time.Time
	for {
		if pending {
			if wait := s.cfg.MinInterval - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
			// Drain a change that arrived meanwhile: this sync covers it.
			select {
			case <-s.src.Changes():
			default:
			}
			last = time.Now()
			if err := s.syncOnce(ctx, repairing); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.cfg.Log.Error("sync failed; the rules applied before stay in place, retrying", "error", err, "retryIn", backoff)
				retry = time.After(backoff)
				backoff = min(backoff*2, s.cfg.MaxBackoff)
			} else {
				retry, backoff = nil, firstBackoff
				repairing = false
			}
			pending = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.src.Changes():
			pending = true
		case <-retry:
			pending = true
		case <-hooks.C:
			// Between changes too: another tool may have put a rule
			// before weft's hook.
			if hc, ok := s.backend.(backend.HookChecker); ok && s.Ready() {
				if _, err := hc.CheckHooks(ctx); err != nil {
					s.cfg.Log.Warn("weft's hook into the packet filter is gone; rewriting all weft owns", "error", err)
					pending, repairing = true, true
				}
			}
		case <-repair.C:
			if !s.Ready() || verifying {
				continue
			}
			if v, ok := s.backend.(backend.Verifier); ok {
				// Beside the loop: reading a large ruleset back takes
				// long, and changes go on being applied meanwhile (the
				// backend compares only a read no Apply overtook).
				verifying = true
				go func() { verified <- s.verifyAndRepair(ctx, v) }()
				continue
			}
			if f, ok := s.backend.(backend.Forgetter); ok {
				f.Forget()
				pending, repairing = true, true
			}
		case ok := <-verified:
			verifying = false
			if f, isF := s.backend.(backend.Forgetter); !ok && isF {
				f.Forget()
				pending, repairing = true, true
			}
		}
	}
}

// verifyAndRepair reads the kernel back, repairs what differs from the
// ruleset applied and reports it. It returns false when the kernel could not
// be read or repaired: the caller then rewrites all.
func (s *Syncer) verifyAndRepair(ctx context.Context, v backend.Verifier) bool {
	drift, err := v.Verify(ctx, true)
	if errors.Is(err, backend.ErrBusy) {
		s.cfg.Log.Debug("kernel not compared with the rules applied: they kept changing while it was read; next time", "error", err)
		return true
	}
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.Warn("could not compare the kernel with the rules weft applied; rewriting all weft owns", "error", err)
		}
		return false
	}
	if len(drift) == 0 {
		return true
	}
	const shown = 10
	lines := make([]string, 0, min(len(drift), shown))
	for _, d := range drift[:min(len(drift), shown)] {
		lines = append(lines, d.String())
	}
	s.cfg.Log.Warn("rules or sets changed behind weft's back; put back exactly what differed", "differences", len(drift), "first", lines)
	if s.cfg.OnDrift != nil {
		s.cfg.OnDrift(drift)
	}
	return true
}

// Verify reads the kernel back and returns how it differs from the ruleset
// applied last, changing nothing. It needs a backend.Verifier.
func (s *Syncer) Verify(ctx context.Context) ([]backend.Drift, error) {
	v, ok := s.backend.(backend.Verifier)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot read the kernel back", s.backend.Name())
	}
	return v.Verify(ctx, false)
}

// Lookup reads back what the kernel holds for addrs. It needs a
// backend.Reader.
func (s *Syncer) Lookup(ctx context.Context, addrs []netip.Addr) ([]backend.AddressView, error) {
	r, ok := s.backend.(backend.Reader)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot read the kernel back", s.backend.Name())
	}
	return r.Lookup(ctx, addrs)
}

// Info is what the syncer knows of its own state, for weft status.
type Info struct {
	Backend string
	// LastSync is when a sync last succeeded (the kernel held the view
	// then); LastApply when one last changed the kernel.
	LastSync, LastApply time.Time
	// Failures counts the syncs failed in a row; LastError is the latest.
	Failures  int
	LastError string
}

// Info returns the syncer's state.
func (s *Syncer) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := Info{Backend: s.backend.Name(), LastSync: s.lastSync, LastApply: s.lastApply, Failures: s.failures}
	if s.lastErr != nil {
		in.LastError = s.lastErr.Error()
	}
	return in
}

// SyncOnce compiles the current view and applies it if it changed.
func (s *Syncer) SyncOnce(ctx context.Context) error { return s.syncOnce(ctx, false) }

// syncOnce is SyncOnce; force applies an unchanged ruleset too.
func (s *Syncer) syncOnce(ctx context.Context, force bool) error {
	res := Result{}
	defer func() {
		if s.cfg.OnSync != nil {
			s.cfg.OnSync(res)
		}
	}()
	began := time.Now()
	snap, err := s.src.Snapshot()
	if err != nil {
		s.mu.Lock()
		s.failures++
		s.lastErr = err
		s.mu.Unlock()
		res.Err = err
		return err
	}
	// Policy problems and audited namespaces change only with policies
	// and namespaces.
	d, derived := snap.DeltaFrom(s.seen)
	if !derived || d.Policies || d.ClusterPolicies {
		s.logProblems(snap)
	}
	if !derived || len(d.Namespaces) > 0 {
		s.logAudited(snap)
	}
	s.seen = snap
	start := time.Now()
	snapTook := start.Sub(began)
	opts := compile.Options{Node: s.cfg.Node, PodRanges: s.cfg.PodCIDRs, Log: s.cfg.NFLog, Mode: s.cfg.Mode}
	if len(opts.PodRanges) == 0 {
		opts.PodRanges = snap.PodCIDRs(s.cfg.Node)
	}
	res.PodRanges = opts.PodRanges
	s.logRanges(opts.PodRanges)
	if s.cfg.AllowUnknown {
		opts.PodRanges = nil
	}
	if s.cfg.NodeAddrs != nil {
		opts.NodeAddrs = s.cfg.NodeAddrs()
	}
	rs := s.compiler.Compile(snap, opts)
	res.Snapshot, res.Ruleset, res.Compile = snap, rs, time.Since(start)
	res.NodeAddrs = opts.NodeAddrs

	s.mu.Lock()
	prev := s.applied
	s.mu.Unlock()
	if !force && prev != nil && reflect.DeepEqual(prev, rs) {
		if hc, ok := s.backend.(backend.HookChecker); ok {
			// (The backend logs and counts what it put back.)
			if _, err := hc.CheckHooks(ctx); err != nil {
				// The backend forgot its view; apply the whole ruleset.
				s.cfg.Log.Warn("weft's hook into the packet filter is gone; rewriting all weft owns", "error", err)
				s.mu.Lock()
				s.applied = nil
				s.mu.Unlock()
				return s.syncOnce(ctx, true)
			}
		}
		s.succeeded(snap, rs)
		return nil
	}
	res.Changed = true
	if s.cfg.BeforeApply != nil {
		s.cfg.BeforeApply(res)
	}
	start = time.Now()
	err = s.backend.Apply(ctx, rs)
	res.Apply = time.Since(start)
	if err != nil {
		// What the kernel holds is no longer known to be prev: the next
		// sync applies whatever it computes, even if that equals prev.
		s.mu.Lock()
		s.applied = nil
		s.failures++
		s.lastErr = err
		s.mu.Unlock()
		res.Err = err
		return err
	}
	s.succeeded(snap, rs)
	s.mu.Lock()
	s.lastApply = s.lastSync
	s.mu.Unlock()
	if s.cfg.OnApplied != nil {
		s.cfg.OnApplied(ctx, Applied{Snapshot: snap, Ruleset: rs, NodeAddrs: opts.NodeAddrs, At: time.Now()})
	}
	if !s.ready.Swap(true) {
		s.cfg.Log.Info("first ruleset applied; enforcing", "backend", s.backend.Name(), "sets", len(rs.Sets), "chains", len(rs.Chains), "groups", len(rs.Groups),
			"snapshot", snapTook.Round(time.Microsecond), "compile", res.Compile.Round(time.Microsecond), "apply", res.Apply.Round(time.Microsecond))
	} else {
		s.cfg.Log.Debug("ruleset applied", "sets", len(rs.Sets), "chains", len(rs.Chains), "groups", len(rs.Groups), "compile", res.Compile, "apply", res.Apply)
	}
	return nil
}

// succeeded records a successful sync.
func (s *Syncer) succeeded(snap *policy.Snapshot, rs *ir.Ruleset) {
	s.mu.Lock()
	s.snapshot, s.applied = snap, rs
	s.failures, s.lastErr = 0, nil
	s.lastSync = time.Now()
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	s.mu.Unlock()
}

// logRanges says, when they change (and once at start), which pod ranges
// weft denies unknown addresses in, or that it cannot.
func (s *Syncer) logRanges(ranges []netip.Prefix) {
	text := fmt.Sprint(ranges)
	if text == s.ranges {
		return
	}
	s.ranges = text
	switch {
	case len(ranges) == 0:
		s.cfg.Log.Warn("no pod ranges for this node (its Node object has no spec.podCIDRs and --pod-cidrs is not given): a new pod cannot be isolated before weft learns its IP, and a reused IP is not denied until then; give --pod-cidrs or set spec.podCIDRs", "node", s.cfg.Node)
	case s.cfg.AllowUnknown:
		s.cfg.Log.Info("addresses of the pod ranges that no known pod holds pass (--unknown-pod-traffic=allow)", "podCIDRs", slices.Clone(ranges))
	default:
		s.cfg.Log.Info("addresses of the pod ranges that no known pod holds are dropped until weft knows their pod", "podCIDRs", slices.Clone(ranges))
	}
}

// logAudited says which namespaces are exceptions to the node's mode
// (--mode): those audited on an enforcing node, those enforced on an
// auditing one; once at start in audit mode or when there are any, then on
// every change.
func (s *Syncer) logAudited(snap *policy.Snapshot) {
	var except []string
	for name := range snap.Namespaces {
		if snap.EnforcementOf(name, s.cfg.Mode) != s.cfg.Mode {
			except = append(except, name)
		}
	}
	slices.Sort(except)
	text := fmt.Sprint(except)
	if text == s.audited || s.audited == "" && s.cfg.Mode == policy.Enforce && len(except) == 0 {
		s.audited = text
		return
	}
	s.audited = text
	if s.cfg.Mode == policy.Audit {
		s.cfg.Log.Warn("audit mode: what policy blocks is logged as 'would be blocked (audit)' and let through, except in namespaces annotated "+policy.EnforcementAnnotation+"=enforce",
			"enforcedNamespaces", except)
		return
	}
	s.cfg.Log.Warn("namespaces annotated "+policy.EnforcementAnnotation+"=audit: what policy blocks for their pods is logged as 'would be blocked (audit)' and let through", "auditedNamespaces", except)
}

// logProblems logs each policy problem once while it lasts.
func (s *Syncer) logProblems(snap *policy.Snapshot) {
	now := map[string]bool{}
	for _, err := range snap.EnforcementErrors() {
		msg := err.Error()
		now[msg] = true
		if !s.logged[msg] {
			s.cfg.Log.Error("namespace annotation not understood; the namespace's pods are enforced", "error", msg)
		}
	}
	for _, e := range snap.Errors() {
		msg := e.Error()
		now[msg] = true
		switch {
		case s.logged[msg]:
		case e.Kind != "":
			s.cfg.Log.Error("ClusterNetworkPolicy not fully understood; it never opens: a broken Accept rule allows nothing, a broken Deny or Pass rule denies all it might cover",
				"clusterNetworkPolicy", e.Policy.Name, "field", e.Field, "error", e.Msg)
		default:
			s.cfg.Log.Error("policy not fully understood; its pods stay isolated and the broken rule allows nothing",
				"namespace", e.Policy.Namespace, "policy", e.Policy.Name, "field", e.Field, "error", e.Msg)
		}
	}
	s.logged = now
}
