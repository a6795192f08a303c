package main

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/metrics"
)

// budgetWatch says, when it changes, which groups of local pods are over
// the merge budget: their policy chains would merge into sets of more
// elements than the budget, so they walk the chains instead. That is the
// slower exact layout, never a more open one.
//
// It also says when the backend's kernel had no room for the merged sets
// at all (backend.SetLimitReporter: the ipset table of the network
// namespace is full), so that every group walks its chains.
type budgetWatch struct {
	log  *slog.Logger
	m    *metrics.Metrics
	b    backend.BudgetReporter
	said map[string]int // group → elements, as last said
	// sets reports the set-count fallback; inFallback is whether it was
	// in force at the last check.
	sets       backend.SetLimitReporter
	inFallback bool
}

func newBudgetWatch(log *slog.Logger, m *metrics.Metrics, b backend.Backend) *budgetWatch {
	r, _ := b.(backend.BudgetReporter)
	sets, _ := b.(backend.SetLimitReporter)
	if sets != nil {
		m.BudgetExceeded("ipsets", 0)
	}
	return &budgetWatch{log: log, m: m, b: r, said: map[string]int{}, sets: sets}
}

// check looks at the ruleset applied last (rs).
func (w *budgetWatch) check(rs *ir.Ruleset) {
	if rs == nil {
		return
	}
	w.checkSets()
	if w.b == nil {
		return
	}
	over := w.b.OverBudget()
	w.m.BudgetExceeded("merged-set-elements", len(over))
	groups := map[string]*ir.Group{}
	for i := range rs.Groups {
		groups[rs.Groups[i].Name] = &rs.Groups[i]
	}
	for _, name := range slices.Sorted(maps.Keys(over)) {
		if _, ok := w.said[name]; ok {
			continue
		}
		attrs := []any{"group", name, "elements", over[name], "budget", w.b.Budget()}
		if g := groups[name]; g != nil {
			attrs = append(attrs, "direction", g.Direction.String(), "podAddresses", len(g.Members), "policies", g.Policies)
		}
		w.log.Warn("over budget: this group's policies would merge into sets of more elements than the budget; its pods walk their policy chains instead (the same verdicts, more rule lookups per new connection)", attrs...)
	}
	for name := range w.said {
		if _, ok := over[name]; !ok {
			w.log.Info("within budget again: the group's policies merge into sets", "group", name)
		}
	}
	w.said = over
}

// checkSets says once when the backend falls back from the merged layout
// because the kernel's ipset table is full, and once when it is back.
func (w *budgetWatch) checkSets() {
	if w.sets == nil {
		return
	}
	fb := w.sets.SetLimitFallback()
	switch {
	case fb != nil && !w.inFallback:
		w.m.BudgetExceeded("ipsets", 1)
		w.log.Warn("over budget: the kernel's ipset table in this network namespace is full (its limit on the number of sets), so the merged layout's sets did not fit; every group of local pods now walks its policy chains instead (the same verdicts, more rule lookups per new connection). To get the merged layout back, destroy ipsets that other tools hold and no longer use, or reduce the number of distinct peers in the cluster's policies (weft tries the merged layout again when it needs fewer sets than now, and with the first change after retryAfter)",
			"budget", "ipsets", "mergedSets", fb.Merged, "sets", fb.Applied, "setsInNamespace", fb.InNamespace, "othersSets", fb.Others, "refusal", fb.Refusal, "retryAfter", fb.Retry)
	case fb == nil && w.inFallback:
		w.m.BudgetExceeded("ipsets", 0)
		w.log.Info("within budget again: the merged layout's sets fit in the kernel's ipset table; groups use merged sets again", "budget", "ipsets")
	}
	w.inFallback = fb != nil
}
