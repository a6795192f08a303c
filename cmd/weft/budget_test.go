package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftnet/weft/internal/backend"
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

// setLimit is a backend.SetLimitReporter whose answer the test sets.
type setLimit struct{ fb *backend.SetLimitFallback }

func (s *setLimit) SetLimitFallback() *backend.SetLimitFallback { return s.fb }

// TestBudgetWatchSaysTheSetTableOverflowed: when the backend falls back from
// the merged layout because the kernel's ipset table is full, weft warns
// once, naming what overflowed, what the merged layout needed, what it
// means and the fix, and sets weft_budget_exceeded{budget="ipsets"}; when
// the merged layout is back it says so and the gauge drops.
func TestBudgetWatchSaysTheSetTableOverflowed(t *testing.T) {
	var out bytes.Buffer
	m := metrics.New()
	r := &setLimit{}
	w := newBudgetWatch(slog.New(slog.NewTextHandler(&out, nil)), m, struct {
		backend.Backend
		*setLimit
	}{nil, r})
	gauge := func() float64 {
		t.Helper()
		var d dto.Metric
		if err := m.BudgetGauge("ipsets").Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetGauge().GetValue()
	}
	rs := &ir.Ruleset{}
	w.check(rs)
	if out.Len() != 0 || gauge() != 0 {
		t.Fatalf("no fallback, yet weft said %q and the gauge is %v", out.String(), gauge())
	}
	r.fb = &backend.SetLimitFallback{Merged: 40210, Applied: 15102, InNamespace: 65460, Others: 50358, Retry: 10 * time.Minute,
		Refusal: "ipset v7.17: Error in line 5: Kernel error received: maximal number of sets reached, cannot create more."}
	w.check(rs)
	r.fb = &backend.SetLimitFallback{Merged: 40300, Applied: 15110}
	w.check(rs)
	text := out.String()
	if n := strings.Count(text, "level=WARN"); n != 1 {
		t.Fatalf("want one warning, got %d:\n%s", n, text)
	}
	for _, want := range []string{"budget=ipsets", "ipset table in this network namespace is full", "mergedSets=40210", "sets=15102",
		"setsInNamespace=65460", "othersSets=50358", "maximal number of sets reached", "walks its policy chains", "the same verdicts",
		"destroy ipsets that other tools hold", "distinct peers", "retryAfter=10m0s"} {
		if !strings.Contains(text, want) {
			t.Errorf("the warning lacks %q:\n%s", want, text)
		}
	}
	if got := gauge(); got != 1 {
		t.Errorf(`weft_budget_exceeded{budget="ipsets"} = %v, want 1`, got)
	}
	r.fb = nil
	w.check(rs)
	if !strings.Contains(out.String(), "level=INFO") || !strings.Contains(out.String(), "merged layout's sets fit") {
		t.Errorf("weft did not say the merged layout is back:\n%s", out.String())
	}
	if got := gauge(); got != 0 {
		t.Errorf(`weft_budget_exceeded{budget="ipsets"} = %v, want 0`, got)
	}
}
