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
type budgetWatch struct {
	log  *slog.Logger
	m    *metrics.Metrics
	b    backend.BudgetReporter
	said map[string]int // group → elements, as last said
}

func newBudgetWatch(log *slog.Logger, m *metrics.Metrics, b backend.Backend) *budgetWatch {
	r, _ := b.(backend.BudgetReporter)
	return &budgetWatch{log: log, m: m, b: r, said: map[string]int{}}
}

// check looks at the ruleset applied last (rs).
func (w *budgetWatch) check(rs *ir.Ruleset) {
	if w.b == nil || rs == nil {
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
