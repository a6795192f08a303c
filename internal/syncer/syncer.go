package syncer

import (
	"context"
	"log/slog"
	"reflect"
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

// Config tunes the loop. Zero values take the defaults.
type Config struct {
	Node string
	// MinInterval bounds the rate of syncs (default 20ms).
	MinInterval time.Duration
	// MaxBackoff caps the retry delay after failures (default 30s); retries
	// start at 100ms and double.
	MaxBackoff time.Duration
	// RepairInterval is how often the whole ruleset is written again, from a
	// fresh reading of the kernel, to repair rules changed behind weft's back
	// (default 5m; needs a backend.Forgetter).
	RepairInterval time.Duration
	Log            *slog.Logger
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
}

// Syncer drives a backend from a source.
type Syncer struct {
	cfg     Config
	src     Source
	backend backend.Backend
	ready   atomic.Bool

	mu       sync.Mutex
	snapshot *policy.Snapshot
	applied  *ir.Ruleset
	logged   map[string]bool // policy problems already logged
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
		cfg.RepairInterval = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{cfg: cfg, src: src, backend: b, logged: map[string]bool{}}
}

// Ready reports whether a ruleset has been applied since start.
func (s *Syncer) Ready() bool { return s.ready.Load() }

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
				s.cfg.Log.Error("sync failed; the rules applied before stay in place, retrying", "error", err, "retry_in", backoff)
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
		case <-repair.C:
			if f, ok := s.backend.(backend.Forgetter); ok {
				f.Forget()
				pending, repairing = true, true
			}
		}
	}
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
	snap, err := s.src.Snapshot()
	if err != nil {
		res.Err = err
		return err
	}
	s.logProblems(snap)
	start := time.Now()
	rs := compile.Compile(snap, s.cfg.Node)
	res.Snapshot, res.Ruleset, res.Compile = snap, rs, time.Since(start)

	s.mu.Lock()
	prev := s.applied
	s.mu.Unlock()
	if !force && prev != nil && reflect.DeepEqual(prev, rs) {
		s.mu.Lock()
		s.snapshot = snap
		s.mu.Unlock()
		return nil
	}
	res.Changed = true
	start = time.Now()
	err = s.backend.Apply(ctx, rs)
	res.Apply = time.Since(start)
	if err != nil {
		// What the kernel holds is no longer known to be prev: the next
		// sync applies whatever it computes, even if that equals prev.
		s.mu.Lock()
		s.applied = nil
		s.mu.Unlock()
		res.Err = err
		return err
	}
	s.mu.Lock()
	s.snapshot, s.applied = snap, rs
	s.mu.Unlock()
	if !s.ready.Swap(true) {
		s.cfg.Log.Info("first ruleset applied; enforcing", "backend", s.backend.Name(), "sets", len(rs.Sets), "chains", len(rs.Chains), "groups", len(rs.Groups))
	} else {
		s.cfg.Log.Debug("ruleset applied", "sets", len(rs.Sets), "chains", len(rs.Chains), "groups", len(rs.Groups), "compile", res.Compile, "apply", res.Apply)
	}
	return nil
}

// logProblems logs each policy problem once while it lasts.
func (s *Syncer) logProblems(snap *policy.Snapshot) {
	now := map[string]bool{}
	for _, e := range snap.Errors() {
		msg := e.Error()
		now[msg] = true
		if !s.logged[msg] {
			s.cfg.Log.Error("policy not fully understood; its pods stay isolated and the broken rule allows nothing",
				"namespace", e.Policy.Namespace, "policy", e.Policy.Name, "field", e.Field, "error", e.Msg)
		}
	}
	s.logged = now
}
