package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
)

// Config configures the backend. The zero value is ready to use.
type Config struct {
	// Logger receives one debug line per sync and the backend's warnings;
	// nil means slog.Default().
	Logger *slog.Logger
	// MergeBudget is the most elements the merged sets of one group may
	// hold, both families together (an interval set's element is a prefix
	// or a prefix . protocol . port range); a group that would need more
	// walks its policy chains one by one (see the package doc). 0 means
	// DefaultMergeBudget; a negative budget never merges. It is
	// ir.MergeOptions.Budget, which the iptables backend takes too.
	MergeBudget int
}

// Backend programs table inet weft. It is safe for concurrent use; syncs are
// serialised.
type Backend struct {
	log    *slog.Logger
	nft    knftables.Interface
	budget int
	// batch is the number of set elements per nft command (see
	// writeSetElements); 1 with knftables' fake.
	batch int

	mu sync.Mutex
	// applied is what the kernel holds as far as this process knows; nil
	// before the first successful sync and after a failed one, when the next
	// sync replaces the whole table.
	applied *desired
	last    SyncStats
	// list reads the kernel back (nft -j); nil with knftables' fake.
	list nftJSON
	// baseline is nft's reading of the chains and definitions weft wrote
	// last (see verify.go); nil when unknown.
	baseline *kernelView
	// OverBudgetGroups are the groups of the ruleset applied last that
	// walk their policy chains because their merged sets would exceed the
	// budget (backend.BudgetReporter).
	backend.OverBudgetGroups
	// writes counts the transactions sent, Forgets and Cleanups: Verify
	// reads the kernel without the lock and compares only if none came
	// in between.
	writes uint64
}

var (
	_ backend.Backend        = (*Backend)(nil)
	_ backend.BudgetReporter = (*Backend)(nil)
)

// SyncStats describes the last transaction Apply sent.
type SyncStats struct {
	// Full is set when the transaction replaced the whole table (the first
	// sync of a process, or the first after a failure).
	Full bool
	// Operations is the number of nft commands, Bytes the size of their text.
	Operations, Bytes int
	// ElementsAdded and ElementsDeleted count set and map element changes.
	ElementsAdded, ElementsDeleted int
	// ChainsWritten counts chains whose rules were (re)written; ObjectsAdded
	// and ObjectsDeleted count chains, sets and maps created or removed.
	ChainsWritten, ObjectsAdded, ObjectsDeleted int
	// GroupsMerged and GroupsWalked count the groups of the applied table
	// decided by merged-set lookups and those that walk their policy chains
	// (over the merge budget).
	GroupsMerged, GroupsWalked int
	// Duration is the time nft took to apply it.
	Duration time.Duration
}

// ElementsOnly reports whether the transaction changed nothing but set and
// map elements.
func (s SyncStats) ElementsOnly() bool {
	return !s.Full && s.ChainsWritten == 0 && s.ObjectsAdded == 0 && s.ObjectsDeleted == 0
}

// minVersion is the oldest nft that knftables supports: older ones parse
// every table of the ruleset, including other programs' tables.
var minVersion = [3]int{1, 0, 1}

// New returns a backend for the network namespace weft runs in, after
// checking (as Available does) that nft and the kernel support it.
func New(cfg Config) (*Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nft, err := open(ctx)
	if err != nil {
		return nil, err
	}
	b := newBackend(cfg, nft)
	b.batch = elementBatch
	b.list = runNFT
	return b, nil
}

// elementBatch is the number of set elements one nft command carries.
const elementBatch = 256

func newBackend(cfg Config, nft knftables.Interface) *Backend {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Backend{log: log.With("backend", "nftables"), nft: nft, batch: 1, budget: cfg.MergeBudget}
}

// Available reports whether this node can run the nftables backend: nft is on
// PATH and at least v1.0.1, and the kernel accepts, in a dry run (nft
// --check), a transaction using every feature weft needs. `--backend auto`
// uses it to choose between nftables and iptables; the error says what is
// missing and what to do.
func Available(ctx context.Context) error {
	_, err := open(ctx)
	return err
}

func open(ctx context.Context) (knftables.Interface, error) {
	path, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("nftables backend: nft not found on PATH: install nftables (Debian/Ubuntu: apt-get install nftables) or use --backend iptables")
	}
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nftables backend: %s --version failed: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	if err := checkVersion(string(out)); err != nil {
		return nil, fmt.Errorf("nftables backend: %s: %w", path, err)
	}
	nft, err := knftables.New(knftables.InetFamily, tableName)
	if err != nil {
		return nil, fmt.Errorf("nftables backend: cannot use nftables here (needs root or CAP_NET_ADMIN and a kernel with nf_tables): %w", err)
	}
	if err := nft.Check(ctx, probeTransaction(nft)); err != nil {
		return nil, fmt.Errorf("nftables backend: the kernel rejected a dry-run transaction with the features weft needs (inet family, forward hook, verdict maps, interval and concatenated sets, conntrack state); load the nf_tables, nft_ct and nf_conntrack modules or use --backend iptables: %s", nftMessage(err))
	}
	return nft, nil
}

var versionRE = regexp.MustCompile(`^nftables v(\d+)\.(\d+)(?:\.(\d+))?`)

// checkVersion reads the output of `nft --version`.
func checkVersion(out string) error {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return fmt.Errorf("cannot read the version of nft from %q", strings.TrimSpace(out))
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	for i := range v {
		if v[i] != minVersion[i] {
			if v[i] < minVersion[i] {
				return fmt.Errorf("nft v%d.%d.%d is too old: weft needs v%d.%d.%d or later; upgrade nftables or use --backend iptables",
					v[0], v[1], v[2], minVersion[0], minVersion[1], minVersion[2])
			}
			break
		}
	}
	return nil
}

// probeTransaction is a full sync of a small ruleset that uses every kind of
// object and match weft renders, for a dry run.
func probeTransaction(nft knftables.Interface) *knftables.Transaction {
	d, err := render(probeRuleset)
	if err != nil {
		panic("nftables: probe ruleset does not render: " + err.Error())
	}
	tx := nft.NewTransaction()
	var st SyncStats
	writeFull(tx, d, &st, elementBatch)
	return tx
}

// Name is "nftables".
func (b *Backend) Name() string { return "nftables" }

// LastSync describes the transaction the last successful Apply sent.
func (b *Backend) LastSync() SyncStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Apply makes table inet weft hold exactly rs, in one transaction. See the
// package doc for what a sync sends. On error nothing changed in the kernel.
func (b *Backend) Apply(ctx context.Context, rs *ir.Ruleset) error {
	want, err := renderWith(rs, b.budget)
	if err != nil {
		return fmt.Errorf("nftables: ruleset for node %q: %w", rs.Node, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()

	for _, name := range sortedKeys(want.overBudget) {
		b.log.Debug("nftables: group walks its policy chains: its merged sets would exceed the budget",
			"group", name, "elements", want.overBudget[name], "budget", ir.MergeLimit(b.budget))
	}
	prev := b.applied
	tx := b.nft.NewTransaction()
	st := SyncStats{GroupsMerged: want.merged, GroupsWalked: want.walked}
	if b.applied == nil || !writeIncremental(tx, b.applied, want, &st, b.batch) {
		tx = b.nft.NewTransaction()
		st = SyncStats{GroupsMerged: want.merged, GroupsWalked: want.walked}
		writeFull(tx, want, &st, b.batch)
	}
	st.Operations = tx.NumOperations()
	if st.Operations == 0 {
		b.last = st
		b.SetOverBudget(want.overBudget, ir.MergeLimit(b.budget))
		b.log.Debug("nftables sync: nothing to change")
		return nil
	}
	text := tx.String()
	st.Bytes = len(text)
	b.writes++

	start := time.Now()
	err = b.nft.Run(ctx, tx)
	st.Duration = time.Since(start)
	if err != nil {
		// Whatever the kernel holds now, the next sync replaces it whole.
		b.applied = nil
		kind := "incremental"
		if st.Full {
			kind = "full"
		}
		if ctx.Err() != nil {
			return fmt.Errorf("nftables: %s transaction (%d operations) interrupted: %w", kind, st.Operations, ctx.Err())
		}
		return fmt.Errorf("nftables: the kernel rejected the %s transaction (%d operations); the previous ruleset stays in place and the next sync rewrites the whole table: %s",
			kind, st.Operations, explainError(err, text))
	}
	b.applied = want
	b.last = st
	b.SetOverBudget(want.overBudget, ir.MergeLimit(b.budget))
	if !st.ElementsOnly() || b.baseline == nil {
		b.refreshBaseline(ctx, prev, want, st.Full)
	}
	b.log.Debug("nftables sync applied", "full", st.Full, "operations", st.Operations, "bytes", st.Bytes,
		"elementsAdded", st.ElementsAdded, "elementsDeleted", st.ElementsDeleted,
		"chainsWritten", st.ChainsWritten, "groupsMerged", st.GroupsMerged, "groupsWalked", st.GroupsWalked, "duration", st.Duration)
	return nil
}

// Forget makes the next Apply replace the whole table in one transaction, as
// the first sync of a process does, repairing anything changed behind weft's
// back.
func (b *Backend) Forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = nil
	b.writes++
}

// Cleanup deletes table inet weft and nothing else. It succeeds when there is
// no such table.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = nil
	b.writes++
	tx := b.nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := b.nft.Run(ctx, tx); err != nil {
		if knftables.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("nftables: delete table inet %s: %s", tableName, nftMessage(err))
	}
	b.log.Info("nftables: deleted table", "table", "inet "+tableName)
	return nil
}

// maxErrorLines bounds how much of nft's complaint an error carries.
const maxErrorLines, maxErrorLineLen = 12, 400

var stdinLineRE = regexp.MustCompile(`/dev/stdin:(\d+):`)

// explainError returns nft's message and, if nft did not quote it, the line of
// the transaction it points at.
func explainError(err error, text string) string {
	msg := nftMessage(err)
	m := stdinLineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	n, _ := strconv.Atoi(m[1])
	lines := strings.Split(text, "\n")
	if n < 1 || n > len(lines) {
		return msg
	}
	line := lines[n-1]
	if strings.Contains(msg, line) {
		return msg
	}
	return fmt.Sprintf("%s (line %d: %s)", msg, n, line)
}

// nftMessage is nft's own text of err, shortened.
func nftMessage(err error) string {
	msg := strings.TrimSpace(err.Error())
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if len(l) > maxErrorLineLen {
			lines[i] = l[:maxErrorLineLen] + " ..."
		}
	}
	if len(lines) > maxErrorLines {
		lines = append(lines[:maxErrorLines], fmt.Sprintf("... (%d more lines)", len(lines)-maxErrorLines))
	}
	if len(lines) > 1 {
		return "nft said:\n" + strings.Join(lines, "\n")
	}
	if errors.Is(err, exec.ErrNotFound) {
		return msg + " (install nftables)"
	}
	return "nft said: " + msg
}
