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
	// MergeBudget is the most elements the merged sets of one group may hold,
	// both families together (an ipset element is a peer, or a peer with a
	// protocol and one port); a group that needs more walks its policy
	// chains, in both families. 0 means DefaultMergeBudget, a negative value
	// never merges. It is ir.MergeOptions.Budget, which the nftables backend
	// takes too.
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
	// lastRS is the ruleset applied last (Verify repairs towards it).
	lastRS *ir.Ruleset
	// baseline is, per family, weft's filter table as iptables-save
	// printed it right after weft last wrote rules there (see Verify).
	baseline [2]*table
	temps    int
	stats    Stats
	budget   int
	// hookRepairs counts the times weft's jump was put back on top.
	hookRepairs int
	// memo holds the members of the sets rendered last (see memberMemo).
	memo memberMemo
	// OverBudgetGroups are the applied ruleset's groups over the merge
	// budget (backend.BudgetReporter).
	backend.OverBudgetGroups
	// limit is the fallback from the merged layout while the kernel's
	// ipset table has no room for it (setlimit.go).
	limit setLimit
	// writes counts the applies that reached the kernel, Forgets and
	// Cleanups: Verify reads the kernel without the lock and compares
	// only if none came in between.
	writes uint64
	// run runs a tool (exec's run; tests put a fake kernel here).
	run func(name string, args []string, input string) (string, error)
}

var (
	_ backend.Backend          = (*Backend)(nil)
	_ backend.BudgetReporter   = (*Backend)(nil)
	_ backend.SetLimitReporter = (*Backend)(nil)
)

// Stats describes the last Apply: what it sent to the kernel.
type Stats struct {
	// Adopted is set when the Apply read and replaced what the kernel held.
	Adopted bool
	// HookRepaired describes, per family where weft's jump was not the
	// first rule of FORWARD, what stood in front of it, e.g.
	// "IPv4: -A FORWARD -j ACCEPT"; the Apply put the jump back on top.
	HookRepaired []string
	// RulesBytes and SetsBytes are the bytes sent to iptables-restore and
	// to ipset restore; Restores counts iptables-restore runs (0 to 2).
	RulesBytes, SetsBytes, Restores int
	// ChainsWritten counts chains declared (created, or flushed and refilled).
	ChainsWritten int
	// Sets created whole, swapped in from a temporary set, patched in place,
	// and destroyed; sets staged: their new members reached the rules through
	// a temporary copy, because no order of in-place changes could keep every
	// moment as closed as the old or the new ruleset (see Apply).
	SetsCreated, SetsSwapped, SetsPatched, SetsDestroyed, SetsStaged int
	Duration                                                         time.Duration
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
	return &Backend{mode: mode, tools: toolsFor(mode), log: log, budget: cfg.MergeBudget, run: run, memo: memberMemo{}}, nil
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
	b.writes++
}

// Apply makes the kernel hold rs, in steps that never let through a packet
// that both the previous and the new ruleset drop (plan.go says why): first
// it checks that weft's jump is the first rule of FORWARD (see CheckHooks);
// then it creates new sets and filled temporary ones; narrows live sets
// (allow sets lose members, deny sets gain); one iptables-restore per family
// installs the new rules; widens live sets to their new members; settles
// staged sets and names them again in the rules; destroys temporary and
// unused sets. A failing step rolls back the ones before it, so the
// previous ruleset stays whole, and the error quotes the tool and the line
// it refused. ctx is checked between steps until the new rules are in
// place; a step once started runs to its end, and so does an apply whose
// new rules are in place. When the kernel's ipset table has no room for the
// merged sets, Apply applies rs with every group walking its chains instead
// (the same verdicts with fewer sets; see setlimit.go and SetLimitFallback).
func (b *Backend) Apply(ctx context.Context, rs *ir.Ruleset) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.apply(ctx, rs, nil)
}

// apply is Apply with b.mu held. from, when set, is what the kernel holds,
// just read (Verify's repair): the apply then changes what differs from it.
// It picks the layout (setlimit.go): merged sets, or, when the kernel's
// ipset table has no room for them, every group walking its chains.
func (b *Backend) apply(ctx context.Context, rs *ir.Ruleset, from *state) error {
	start := time.Now()
	if err := ctxErr(ctx, "iptables apply"); err != nil {
		return err
	}
	merged, err := renderBudget(rs, b.budget, b.memo)
	if err != nil {
		return fmt.Errorf("iptables backend: %w", err)
	}
	rendered := []*state{merged}
	// Keep the members of what this ruleset rendered (and no more):
	// renderBudget wrote its sets' entries into b.memo.
	defer func() { b.keepMemo(rendered) }()
	walked := func() (*state, error) {
		st, err := renderBudget(rs, -1, b.memo)
		if err != nil {
			return nil, fmt.Errorf("iptables backend: %w", err)
		}
		rendered = append(rendered, st)
		return st, nil
	}
	if b.limit.fallback != nil && !b.limit.mayFit(merged) {
		st, err := walked()
		if err != nil {
			return err
		}
		if err := b.install(ctx, rs, st, merged.overBudget, from, start); err != nil {
			return err
		}
		b.limit.fallback.Applied = len(st.sets)
		return nil
	}
	err = b.install(ctx, rs, merged, merged.overBudget, from, start)
	if err == nil {
		b.limit = setLimit{}
		return nil
	}
	refusal := setTableFull(err)
	if refusal == "" {
		return err
	}
	// The refusal came from the first step (sets are created before
	// anything else changes), which was rolled back: the kernel holds what
	// it held. Walking every chain needs fewer sets, if any group merges.
	st, rerr := walked()
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if len(st.sets) >= len(merged.sets) {
		return err
	}
	if b.applied == nil {
		from = nil // the rollback failed: what the kernel holds is read again
	}
	if err2 := b.install(ctx, rs, st, merged.overBudget, from, start); err2 != nil {
		return fmt.Errorf("%w; without merged sets (%d sets instead of %d) the apply failed too: %v", err, len(st.sets), len(merged.sets), err2)
	}
	b.limit.fellBack(len(merged.sets), len(st.sets), refusal, b.countSets)
	b.log.Debug("the kernel's ipset table has no room for the merged layout: applied the ruleset with every group walking its chains",
		"mergedSets", len(merged.sets), "sets", len(st.sets), "refusal", refusal)
	return nil
}

// keepMemo drops the memo's entries of sets none of the states holds.
func (b *Backend) keepMemo(states []*state) {
	memo := memberMemo{}
	for _, st := range states {
		for name := range st.sets {
			if e, ok := b.memo[name]; ok {
				memo[name] = e
			}
		}
	}
	b.memo = memo
}

// install makes the kernel hold next, rendered from rs (Apply's steps);
// overBudget are the groups over the merge budget, reported once next is in.
func (b *Backend) install(ctx context.Context, rs *ir.Ruleset, next *state, overBudget map[string]int, from *state, start time.Time) error {
	var err error
	stats := Stats{}
	prev := b.applied
	if from != nil {
		prev = from
	} else if prev != nil {
		if stats.HookRepaired, err = b.checkHooks(); err != nil {
			// checkHooks forgot the state: read and replace it all.
			b.log.Warn("weft's rules changed behind its back; reading and replacing them", "error", err)
			prev = nil
		}
	}
	if prev == nil {
		if prev, err = b.readKernel(); err != nil {
			return err
		}
		stats.Adopted = true
	}
	p, err := planApply(prev, next, func() string { return b.tempName(prev) })
	if err != nil {
		return fmt.Errorf("iptables backend: %w", err)
	}
	stats.SetsCreated, stats.SetsSwapped, stats.SetsPatched, stats.SetsStaged = p.newSets, p.swapped, p.patched, p.staged
	steps := []applyStep{{what: "create ipsets", sets: p.create}, {what: "narrow ipsets", sets: p.narrow}}
	for fi, fam := range families {
		steps = append(steps, applyStep{what: fmt.Sprintf("apply IPv%d rules", fam), fi: fi,
			rules: p.rules[fi], undo: tableDiff(p.ruleTables[fi], prev.tables[fi])})
	}
	steps = append(steps, applyStep{what: "widen ipsets", sets: p.widen}, applyStep{what: "settle staged ipsets", sets: p.settle})
	for fi, fam := range families {
		steps = append(steps, applyStep{what: fmt.Sprintf("name the staged ipsets again in the IPv%d rules", fam), fi: fi,
			rules: p.settleRules[fi], undo: tableDiff(next.tables[fi], p.ruleTables[fi])})
	}
	b.writes++
	if err := b.runSteps(ctx, steps, &stats); err != nil {
		return err
	}

	// Last: destroy what no rule uses any more. A set that cannot go yet
	// (a rule weft does not own uses it) stays in the state, so that a later
	// Apply destroys it.
	failed := b.destroySets(p.destroy)
	for _, name := range failed {
		left := &ipset{Name: name, Type: "unknown"}
		if s := prev.sets[name]; s != nil {
			left = &ipset{Name: name, Type: s.Type, Family: s.Family, MaxElem: s.MaxElem, HashSize: s.HashSize, Members: s.Members}
		}
		next.sets[name] = left
		b.log.Warn("cannot destroy ipset yet, will retry on the next apply", "set", name)
	}
	stats.SetsDestroyed = len(p.destroy) - len(failed)
	if stats.Adopted {
		b.log.Info("adopted and replaced the rules and sets found in the kernel",
			"chainsIPv4", len(prev.tables[0].chains), "chainsIPv6", len(prev.tables[1].chains), "sets", len(prev.sets))
	}
	if stats.Adopted || from != nil {
		// The restores put weft's jump back on top where it was not.
		for fi, fam := range families {
			for _, h := range hooks {
				if t := prev.tables[fi]; len(t.hooks[h]) > 0 && !t.hookFirst[h] {
					b.hookRepairs++
					stats.HookRepaired = append(stats.HookRepaired, fmt.Sprintf("IPv%d: %s", fam, t.front[h]))
					b.log.Warn("weft's jump was not the first rule of "+h+": put it back on top", "family", fmt.Sprintf("IPv%d", fam),
						"first", t.front[h], "repairs", b.hookRepairs)
				}
			}
		}
	}
	b.applied, b.lastRS = next, rs
	b.SetOverBudget(overBudget, ir.MergeLimit(b.budget))
	for fi := range families {
		if p.rules[fi] == "" && p.settleRules[fi] == "" && b.baseline[fi] != nil {
			continue
		}
		read := b.readFilter(fi)
		if read != nil && b.baseline[fi] != nil && !stats.Adopted && from == nil && prev != nil {
			// Only what this apply wrote is new; what it left alone keeps
			// its baseline, so a change made there behind weft's back
			// before this apply is still found.
			read = mergeBaseline(b.baseline[fi], read, prev.tables[fi], next.tables[fi])
		}
		b.baseline[fi] = read
	}
	stats.Duration = time.Since(start)
	b.stats = stats
	b.log.Debug("iptables ruleset applied", "adopted", stats.Adopted, "rulesBytes", stats.RulesBytes,
		"setsBytes", stats.SetsBytes, "chains", stats.ChainsWritten, "setsCreated", stats.SetsCreated,
		"setsSwapped", stats.SetsSwapped, "setsPatched", stats.SetsPatched, "setsStaged", stats.SetsStaged,
		"setsDestroyed", stats.SetsDestroyed, "duration", stats.Duration)
	return nil
}

// applyStep is one command of an apply: an ipset restore of sets, or an
// iptables-restore of rules into family fi, which undo reverts.
type applyStep struct {
	what        string
	sets        []setOp
	fi          int
	rules, undo string
}

// runSteps runs the steps in order, skipping empty ones. When one fails it
// undoes it (as far as the tool said which line failed) and the ones before
// it, in reverse. Until a rules step has run, ctx is checked before each
// step.
func (b *Backend) runSteps(ctx context.Context, steps []applyStep, stats *Stats) error {
	newRules := false
	for i, s := range steps {
		if len(s.sets) == 0 && s.rules == "" {
			continue
		}
		if err := ctx.Err(); err != nil && !newRules {
			return b.failed(s.what, err, b.undoSteps(steps[:i]))
		}
		if len(s.sets) > 0 {
			payload := joinLines(doLines(s.sets))
			stats.SetsBytes += len(payload)
			if _, err := b.run("ipset", []string{"restore"}, payload); err != nil {
				var te *ToolError
				if !errors.As(err, &te) || te.Line <= 0 || te.Line > len(s.sets) {
					b.applied = nil
					return fmt.Errorf("iptables backend: %s: %w; ipset did not say which line failed, so weft cannot undo what it did: the next apply reads and replaces the whole state", s.what, err)
				}
				return b.failed(s.what, err, errors.Join(b.undoSets(s.sets[:te.Line-1]), b.undoSteps(steps[:i])))
			}
			continue
		}
		stats.RulesBytes += len(s.rules)
		stats.Restores++
		stats.ChainsWritten += strings.Count(s.rules, "\n:")
		if _, err := b.run(b.tools.restore[s.fi], []string{"-w", "--noflush"}, s.rules); err != nil {
			return b.failed(s.what, err, b.undoSteps(steps[:i]))
		}
		newRules = true
	}
	return nil
}

// undoSteps reverts steps that ran, last first.
func (b *Backend) undoSteps(steps []applyStep) error {
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		switch {
		case len(s.sets) > 0:
			errs = append(errs, b.undoSets(s.sets))
		case s.rules != "" && s.undo != "":
			if _, err := b.run(b.tools.restore[s.fi], []string{"-w", "--noflush"}, s.undo); err != nil {
				errs = append(errs, fmt.Errorf("undo %s: %w", s.what, err))
			}
		}
	}
	return errors.Join(errs...)
}

// undoSets reverts set operations that ran, last first.
func (b *Backend) undoSets(ops []setOp) error {
	var lines []string
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].undo != "" {
			lines = append(lines, ops[i].undo)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if _, err := b.run("ipset", []string{"-exist", "restore"}, joinLines(lines)); err != nil {
		return fmt.Errorf("undo ipset changes: %w", err)
	}
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

// destroySets destroys the sets and returns those it could not destroy.
func (b *Backend) destroySets(names []string) []string {
	var failed []string
	for len(names) > 0 {
		lines := make([]string, len(names))
		for i, n := range names {
			lines[i] = "destroy " + n
		}
		_, err := b.run("ipset", []string{"restore"}, joinLines(lines))
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

// readFilter reads weft's part of family fi's filter table, as the
// baseline Verify compares with; nil (no baseline: Verify says so) when it
// cannot be read.
func (b *Backend) readFilter(fi int) *table {
	out, err := b.run(b.tools.save[fi], []string{"-t", "filter"}, "")
	if err != nil {
		b.log.Warn("could not read back the rules just written; drift checks wait for the next apply", "family", fmt.Sprintf("IPv%d", families[fi]), "error", err)
		return nil
	}
	t, err := parseFilter(out)
	if err != nil {
		b.log.Warn("could not read back the rules just written; drift checks wait for the next apply", "family", fmt.Sprintf("IPv%d", families[fi]), "error", err)
		return nil
	}
	return t
}

// readKernel reads what weft owns in the kernel: its chains and hooks in
// both filter tables and its ipsets with their members.
func (b *Backend) readKernel() (*state, error) {
	st := emptyState()
	for fi, fam := range families {
		out, err := b.run(b.tools.save[fi], []string{"-t", "filter"}, "")
		if err != nil {
			return nil, fmt.Errorf("iptables backend: read the IPv%d filter table: %w", fam, err)
		}
		if st.tables[fi], err = parseFilter(out); err != nil {
			return nil, fmt.Errorf("iptables backend: read the IPv%d filter table: %w", fam, err)
		}
	}
	out, err := b.run("ipset", []string{"save"}, "")
	if err != nil {
		return nil, fmt.Errorf("iptables backend: list ipsets: %w", err)
	}
	if st.sets, err = parseSetSave(out); err != nil {
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
	b.writes++
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
			out, err := b.run(tools.save[fi], args, "")
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
			if _, err := b.run(tools.restore[fi], []string{"-w", "--noflush"}, payload); err != nil {
				errs = append(errs, fmt.Errorf("remove IPv%d chains (%s): %w", fam, mode, err))
				continue
			}
			b.log.Info("removed weft's chains", "family", fmt.Sprintf("IPv%d", fam), "mode", string(mode), "chains", len(t.chains))
		}
	}
	out, err := b.run("ipset", []string{"list", "-n"}, "")
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
