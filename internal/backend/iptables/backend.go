package iptables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
)

// Config configures the backend.
type Config struct {
	// Mode picks iptables-nft or iptables-legacy; "" or ModeAuto detects it.
	Mode Mode
	// Logger receives the mode decision and warnings; nil means slog.Default().
	Logger *slog.Logger
	// MergeBudget is the most elements the merged sets of one group may hold
	// per family; a group that needs more walks its policy chains. 0 means
	// DefaultMergeBudget, a negative value never merges.
	MergeBudget int
}

// Backend programs the node's filter table with iptables and ipset. Its
// methods are safe for concurrent use (they run one at a time).
type Backend struct {
	mu    sync.Mutex
	mode  Mode
	tools toolset
	log   *slog.Logger
	// applied is what the kernel holds as far as this process knows; nil
	// means "read it from the kernel on the next Apply" (adoption).
	applied *state
	temps   int
	stats   Stats
	budget  int
}

var _ backend.Backend = (*Backend)(nil)

// Stats describes the last Apply: what it sent to the kernel.
type Stats struct {
	// Adopted is set when the Apply read and replaced what the kernel held.
	Adopted bool
	// RulesBytes and SetsBytes are the bytes sent to iptables-restore and
	// to ipset restore; Restores counts iptables-restore runs (0 to 2).
	RulesBytes, SetsBytes, Restores int
	// ChainsWritten counts chains declared (created, or flushed and refilled).
	ChainsWritten int
	// Sets created whole, swapped in from a temporary set, patched in place,
	// and destroyed.
	SetsCreated, SetsSwapped, SetsPatched, SetsDestroyed int
	Duration                                             time.Duration
}

// New checks that the tools are installed, settles the mode (detecting it
// when cfg.Mode is auto) and logs the decision. It changes nothing.
func New(cfg Config) (*Backend, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mode, err := ParseMode(string(cfg.Mode))
	if err != nil {
		return nil, fmt.Errorf("iptables backend: %w", err)
	}
	if miss := missing("ipset"); len(miss) > 0 {
		return nil, &MissingToolsError{Missing: append(miss, missing(toolsFor(ModeNFT).all()...)...)}
	}
	var reason string
	switch mode {
	case ModeAuto:
		nftMiss, legacyMiss := missing(toolsFor(ModeNFT).all()...), missing(toolsFor(ModeLegacy).all()...)
		switch {
		case len(nftMiss) > 0 && len(legacyMiss) > 0:
			return nil, &MissingToolsError{Missing: nftMiss}
		case len(legacyMiss) > 0:
			mode, reason = ModeNFT, "only iptables-nft is installed"
		case len(nftMiss) > 0:
			mode, reason = ModeLegacy, "only iptables-legacy is installed"
		default:
			legacy, err := saveAll(toolsFor(ModeLegacy))
			if err != nil {
				return nil, err
			}
			nft, err := saveAll(toolsFor(ModeNFT))
			if err != nil {
				return nil, err
			}
			mode, reason = DetectMode(legacy, nft)
		}
	default:
		if miss := missing(toolsFor(mode).all()...); len(miss) > 0 {
			return nil, &MissingToolsError{Missing: miss}
		}
		reason = "set by configuration"
	}
	log.Info("iptables backend ready", "mode", string(mode), "reason", reason)
	budget := cfg.MergeBudget
	switch {
	case budget == 0:
		budget = DefaultMergeBudget
	case budget < 0:
		budget = 0
	}
	return &Backend{mode: mode, tools: toolsFor(mode), log: log, budget: budget}, nil
}

// saveAll returns the rules of every table of both families.
func saveAll(t toolset) (string, error) {
	var b strings.Builder
	for _, save := range t.save {
		out, err := run(save, nil, "")
		if err != nil {
			return "", fmt.Errorf("iptables backend: detect iptables mode: %w", err)
		}
		b.WriteString(out)
	}
	return b.String(), nil
}

// Name is "iptables".
func (b *Backend) Name() string { return "iptables" }

// Mode is the variant in use: ModeNFT or ModeLegacy.
func (b *Backend) Mode() Mode { return b.mode }

// LastStats describes the last Apply that succeeded.
func (b *Backend) LastStats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Forget makes the next Apply read what the kernel holds and replace it, as
// the first Apply of a process does (e.g. after someone else changed weft's
// rules).
func (b *Backend) Forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = nil
}

// Apply makes the kernel hold rs. The steps: create new sets and fill
// temporary copies of changed ones; swap them in and patch small changes in
// place; one iptables-restore per family whose chains changed; take pods out
// of the group sets they left (only now, so a pod moving to a new group is
// never in none); destroy temporary and unused sets. A failing step rolls back the ones before it,
// so the previous ruleset stays whole, and the error quotes the tool and the
// line it refused. ctx is checked between steps; a step once started runs to
// its end.
func (b *Backend) Apply(ctx context.Context, rs *ir.Ruleset) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()
	if err := ctxErr(ctx, "iptables apply"); err != nil {
		return err
	}
	next, err := renderBudget(rs, b.budget)
	if err != nil {
		return fmt.Errorf("iptables backend: %w", err)
	}
	stats := Stats{}
	prev := b.applied
	if prev == nil {
		if prev, err = b.readKernel(); err != nil {
			return err
		}
		stats.Adopted = true
	}
	plan, err := planSets(prev, next, func() string { return b.tempName(prev) })
	if err != nil {
		return fmt.Errorf("iptables backend: %w", err)
	}
	stats.SetsCreated, stats.SetsSwapped, stats.SetsPatched = plan.newSets, plan.swapped, plan.patched

	// Step 1: create. Nothing in use changes yet.
	if len(plan.create) > 0 {
		payload := joinLines(plan.create)
		stats.SetsBytes += len(payload)
		if _, err := run("ipset", []string{"restore"}, payload); err != nil {
			var te *ToolError
			if !errors.As(err, &te) || te.Line == 0 {
				return b.failed("create ipsets", err, errors.New("ipset did not say which line failed, so weft cannot tell which sets it made"))
			}
			made := plan.createdBefore(te.Line)
			var rbErr error
			if failed := b.destroySets(made); len(failed) > 0 {
				rbErr = fmt.Errorf("destroy ipsets made for this apply: %s", strings.Join(failed, ", "))
			}
			return b.failed("create ipsets", err, rbErr)
		}
	}
	if err := ctx.Err(); err != nil {
		return b.failed("create ipsets", err, b.rollback(prev, next, plan, 0, nil))
	}

	// Step 2: change live sets.
	if len(plan.change) > 0 {
		lines := make([]string, len(plan.change))
		for i, op := range plan.change {
			lines[i] = op.do
		}
		payload := joinLines(lines)
		stats.SetsBytes += len(payload)
		if _, err := run("ipset", []string{"restore"}, payload); err != nil {
			done := -1 // unknown
			var te *ToolError
			if errors.As(err, &te) && te.Line > 0 {
				done = te.Line - 1
			}
			return b.failed("change ipsets", err, b.rollback(prev, next, plan, done, nil))
		}
	}

	// Step 3: rules, one atomic restore per family.
	var restored []int
	for fi := range families {
		payload := tableDiff(prev.tables[fi], next.tables[fi])
		if payload == "" {
			continue
		}
		stats.RulesBytes += len(payload)
		stats.Restores++
		stats.ChainsWritten += strings.Count(payload, "\n:")
		if _, err := run(b.tools.restore[fi], []string{"-w", "--noflush"}, payload); err != nil {
			return b.failed(fmt.Sprintf("apply IPv%d rules", families[fi]), err,
				b.rollback(prev, next, plan, len(plan.change), restored))
		}
		restored = append(restored, fi)
	}

	// Step 3b: take pods out of groups they left, now that the groups they
	// joined have their dispatch rules.
	if len(plan.after) > 0 {
		lines := make([]string, len(plan.after))
		for i, op := range plan.after {
			lines[i] = op.do
		}
		payload := joinLines(lines)
		stats.SetsBytes += len(payload)
		if _, err := run("ipset", []string{"restore"}, payload); err != nil {
			var te *ToolError
			if !errors.As(err, &te) || te.Line <= 0 {
				b.applied = nil // which changes ran is unknown: reread the kernel next time
				return fmt.Errorf("iptables backend: change group ipsets: %w; the next apply reads and replaces the whole state", err)
			}
			undo := make([]string, 0, te.Line-1)
			for i := te.Line - 2; i >= 0; i-- {
				undo = append(undo, plan.after[i].undo)
			}
			var rbErr error
			if len(undo) > 0 {
				if _, uerr := run("ipset", []string{"-exist", "restore"}, joinLines(undo)); uerr != nil {
					rbErr = fmt.Errorf("undo group ipset changes: %w", uerr)
				}
			}
			return b.failed("change group ipsets", err, errors.Join(rbErr, b.rollback(prev, next, plan, len(plan.change), restored)))
		}
	}

	// Step 4: destroy what no rule uses any more. A set that cannot go yet
	// (a rule weft does not own uses it) stays in the state, so that a later
	// Apply destroys it.
	failed := b.destroySets(plan.destroy)
	for _, name := range failed {
		left := &ipset{Name: name, Type: "unknown"}
		if s := prev.sets[name]; s != nil {
			left = &ipset{Name: name, Type: s.Type, Family: s.Family, MaxElem: s.MaxElem, HashSize: s.HashSize}
		}
		next.sets[name] = left
		b.log.Warn("cannot destroy ipset yet, will retry on the next apply", "set", name)
	}
	stats.SetsDestroyed = len(plan.destroy) - len(failed)
	if stats.Adopted {
		b.log.Info("adopted and replaced the rules and sets found in the kernel",
			"chainsIPv4", len(prev.tables[0].chains), "chainsIPv6", len(prev.tables[1].chains), "sets", len(prev.sets))
	}
	b.applied = next
	stats.Duration = time.Since(start)
	b.stats = stats
	b.log.Debug("iptables ruleset applied", "adopted", stats.Adopted, "rulesBytes", stats.RulesBytes,
		"setsBytes", stats.SetsBytes, "chains", stats.ChainsWritten, "setsCreated", stats.SetsCreated,
		"setsSwapped", stats.SetsSwapped, "setsPatched", stats.SetsPatched, "setsDestroyed", stats.SetsDestroyed,
		"duration", stats.Duration)
	return nil
}

// failed wraps the error of a failed step; when the rollback failed too, the
// kernel's state is unknown, so the next Apply reads it again.
func (b *Backend) failed(step string, err, rbErr error) error {
	if rbErr != nil {
		b.applied = nil
		return fmt.Errorf("iptables backend: %s: %w; rolling back failed too, so the next apply reads and replaces the whole state: %v", step, err, rbErr)
	}
	return fmt.Errorf("iptables backend: %s failed, the previous ruleset is in place: %w", step, err)
}

// rollback undoes a failed apply from prev to next: the rules of the
// families in restored, the first done changes of live sets (done < 0: an
// unknown number, which cannot be undone), and the sets the create step made.
func (b *Backend) rollback(prev, next *state, plan *setPlan, done int, restored []int) error {
	var errs []error
	for i := len(restored) - 1; i >= 0; i-- {
		fi := restored[i]
		if payload := tableDiff(next.tables[fi], prev.tables[fi]); payload != "" {
			if _, err := run(b.tools.restore[fi], []string{"-w", "--noflush"}, payload); err != nil {
				errs = append(errs, fmt.Errorf("restore IPv%d rules: %w", families[fi], err))
			}
		}
	}
	switch {
	case done < 0:
		errs = append(errs, errors.New("ipset did not say which line failed, so its changes cannot be undone"))
	case done > 0:
		undo := make([]string, 0, done)
		for i := done - 1; i >= 0; i-- {
			undo = append(undo, plan.change[i].undo)
		}
		if _, err := run("ipset", []string{"-exist", "restore"}, joinLines(undo)); err != nil {
			errs = append(errs, fmt.Errorf("undo ipset changes: %w", err))
		}
	}
	if failed := b.destroySets(plan.created); len(failed) > 0 {
		errs = append(errs, fmt.Errorf("destroy ipsets made for this apply: %s", strings.Join(failed, ", ")))
	}
	return errors.Join(errs...)
}

// destroySets destroys the sets and returns those it could not destroy.
func (b *Backend) destroySets(names []string) []string {
	var failed []string
	for len(names) > 0 {
		lines := make([]string, len(names))
		for i, n := range names {
			lines[i] = "destroy " + n
		}
		_, err := run("ipset", []string{"restore"}, joinLines(lines))
		if err == nil {
			break
		}
		var te *ToolError
		if !errors.As(err, &te) || te.Line == 0 || te.Line > len(names) {
			b.log.Warn("destroy ipsets", "error", err)
			return append(failed, names...)
		}
		b.log.Warn("destroy ipset", "set", names[te.Line-1], "error", err)
		failed = append(failed, names[te.Line-1])
		names = names[te.Line:]
	}
	return failed
}

// readKernel reads what weft owns in the kernel: its chains and hooks in
// both filter tables and its ipsets (types and sizes, not members).
func (b *Backend) readKernel() (*state, error) {
	st := emptyState()
	for fi, fam := range families {
		out, err := run(b.tools.save[fi], []string{"-t", "filter"}, "")
		if err != nil {
			return nil, fmt.Errorf("iptables backend: read the IPv%d filter table: %w", fam, err)
		}
		if st.tables[fi], err = parseFilter(out); err != nil {
			return nil, fmt.Errorf("iptables backend: read the IPv%d filter table: %w", fam, err)
		}
	}
	out, err := run("ipset", []string{"list", "-t"}, "")
	if err != nil {
		return nil, fmt.Errorf("iptables backend: list ipsets: %w", err)
	}
	if st.sets, err = parseSetHeaders(out); err != nil {
		return nil, fmt.Errorf("iptables backend: %w", err)
	}
	return st, nil
}

// Cleanup removes every chain, hook rule and ipset weft owns, in both
// families and in both iptables variants (a node may have switched), and
// nothing else. Rules go first, so that the sets are no longer in use.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = nil
	var errs []error
	for _, mode := range []Mode{b.mode, otherMode(b.mode)} {
		tools := toolsFor(mode)
		if mode != b.mode && len(missing(tools.all()...)) > 0 {
			continue
		}
		for fi, fam := range families {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("iptables cleanup: %w", err)
			}
			args := []string{"-t", "filter"}
			if mode != b.mode {
				args = nil // list only tables that exist: do not create one in an unused variant
			}
			out, err := run(tools.save[fi], args, "")
			if err != nil {
				errs = append(errs, fmt.Errorf("read IPv%d rules (%s): %w", fam, mode, err))
				continue
			}
			t, err := parseFilter(out)
			if err != nil {
				errs = append(errs, fmt.Errorf("read IPv%d rules (%s): %w", fam, mode, err))
				continue
			}
			payload := tableDiff(t, newTable())
			if payload == "" {
				continue
			}
			if _, err := run(tools.restore[fi], []string{"-w", "--noflush"}, payload); err != nil {
				errs = append(errs, fmt.Errorf("remove IPv%d chains (%s): %w", fam, mode, err))
				continue
			}
			b.log.Info("removed weft's chains", "family", fmt.Sprintf("IPv%d", fam), "mode", string(mode), "chains", len(t.chains))
		}
	}
	out, err := run("ipset", []string{"list", "-n"}, "")
	if err != nil {
		errs = append(errs, fmt.Errorf("list ipsets: %w", err))
	} else {
		var names []string
		for _, n := range strings.Fields(out) {
			if ownedSet(n) {
				names = append(names, n)
			}
		}
		if failed := b.destroySets(names); len(failed) > 0 {
			errs = append(errs, fmt.Errorf("cannot destroy ipsets %s: a rule weft does not own still uses them", strings.Join(failed, ", ")))
		}
		if len(names) > 0 {
			b.log.Info("removed weft's ipsets", "sets", len(names))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("iptables cleanup: %w", err)
	}
	return nil
}

func otherMode(m Mode) Mode {
	if m == ModeNFT {
		return ModeLegacy
	}
	return ModeNFT
}

// tempName returns a temporary set name not in use.
func (b *Backend) tempName(prev *state) string {
	for {
		b.temps++
		name := tempSetPrefix + strconv.Itoa(b.temps)
		if _, taken := prev.sets[name]; !taken {
			return name
		}
	}
}
