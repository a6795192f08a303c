package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/metrics"
)

// overBudget is a backend.BudgetReporter whose answer the test sets.
type overBudget struct{ groups map[string]int }

func (o *overBudget) OverBudget() map[string]int { return o.groups }
func (o *overBudget) Budget() int                { return 100 }

// TestBudgetWatchSaysWhatOverflowed: a group going over the merge budget is
// named once in a warning and counted in weft_budget_exceeded; when it
// fits again weft says so and the count drops.
func TestBudgetWatchSaysWhatOverflowed(t *testing.T) {
	var out bytes.Buffer
	m := metrics.New()
	r := &overBudget{}
	w := &budgetWatch{log: slog.New(slog.NewTextHandler(&out, nil)), m: m, b: r, said: map[string]int{}}
	rs := &ir.Ruleset{Groups: []ir.Group{{Name: "weft-g-big", Direction: ir.Ingress, Policies: []string{"x/wide"}, Members: []ir.Member{{Pod: "x/a"}}}}}
	w.check(rs)
	if out.Len() != 0 {
		t.Fatalf("nothing over budget, yet weft said: %s", out.String())
	}
	r.groups = map[string]int{"weft-g-big": 250}
	w.check(rs)
	w.check(rs)
	text := out.String()
	if strings.Count(text, "over budget") != 1 {
		t.Fatalf("want one warning, got:\n%s", text)
	}
	for _, want := range []string{"group=weft-g-big", "elements=250", "budget=100", "policies=[x/wide]", "walk their policy chains"} {
		if !strings.Contains(text, want) {
			t.Errorf("the warning lacks %q:\n%s", want, text)
		}
	}
	if got := gaugeValue(t, m); got != 1 {
		t.Errorf("weft_budget_exceeded = %v, want 1", got)
	}
	r.groups = nil
	w.check(rs)
	if !strings.Contains(out.String(), "within budget again") {
		t.Errorf("weft did not say the group fits again:\n%s", out.String())
	}
	if got := gaugeValue(t, m); got != 0 {
		t.Errorf("weft_budget_exceeded = %v, want 0", got)
	}
}

func gaugeValue(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.BudgetGauge("merged-set-elements").Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}
