package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/syncer"
)

// Metrics holds weft's collectors in a registry of their own.
type Metrics struct {
	reg           *prometheus.Registry
	syncs         *prometheus.CounterVec
	compileTime   prometheus.Histogram
	applyTime     prometheus.Histogram
	rulesetObjs   *prometheus.GaugeVec
	setMembers    prometheus.Gauge
	policyErrors  prometheus.Gauge
	clusterPols   *prometheus.GaugeVec
	isolatedLocal *prometheus.GaugeVec
	cut           prometheus.Counter
	misconfigured *prometheus.GaugeVec
	unknownDenied prometheus.Gauge
	drift         *prometheus.CounterVec
	budget        *prometheus.GaugeVec
}

// Status is what the daemon reports about itself, read at each scrape.
type Status struct {
	// Ready reports whether weft enforces the cluster's current policy.
	Ready func() bool
	// APIUnreachableSince is when the API server stopped answering (zero
	// while it answers).
	APIUnreachableSince func() time.Time
	// Relists counts full re-lists after API outages.
	Relists func() int64
	// HookRepairs, if set, counts the times weft's jump was found displaced
	// in the packet filter and put back first (iptables).
	HookRepairs func() int
}

// New registers weft's metrics and the Go runtime's; st, if given, adds the
// daemon's readiness and API health.
func New(st ...Status) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_syncs_total", Help: "Sync attempts by result: applied, unchanged or failed.",
		}, []string{"result"}),
		compileTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_compile_seconds", Help: "Time to compile the node's ruleset from a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_apply_seconds", Help: "Time for the backend to apply a changed ruleset.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		rulesetObjs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_ruleset_objects", Help: "Objects of the ruleset in force, by kind: sets, chains, groups.",
		}, []string{"kind"}),
		setMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_set_members", Help: "Members of all address sets in force.",
		}),
		policyErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_policy_errors", Help: "Parts of NetworkPolicies and ClusterNetworkPolicies weft cannot understand (they never open: a broken allow allows nothing, a broken deny or pass denies all it might cover).",
		}),
		clusterPols: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_cluster_network_policies", Help: "ClusterNetworkPolicies in the view weft enforces, by tier (Admin, Baseline); none while their CRD is not installed.",
		}, []string{"tier"}),
		isolatedLocal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_isolated_pod_addresses", Help: "Local pod addresses isolated by policy, by direction.",
		}, []string{"direction"}),
		cut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_connections_cut_total", Help: "Established connections whose conntrack entries weft deleted because policy no longer allows them.",
		}),
		misconfigured: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_misconfiguration", Help: "1 while a check finds a setting under which weft would silently isolate nothing (node-name, no-local-pods, bridge-nf-call-iptables), else 0.",
		}, []string{"check"}),
		unknownDenied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_unknown_pod_addresses_denied", Help: "1 when addresses of this node's pod ranges that no known pod holds are dropped; 0 when they pass (no pod ranges known, or --unknown-pod-traffic=allow), so a new pod is open until weft learns its IP.",
		}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_budget_exceeded", Help: "Parts of the ruleset in force over a budget, by budget: merged-set-elements counts the groups whose policy chains would merge into sets of more elements than the budget; they walk their chains instead (the same verdicts, more rule lookups per new connection). ipsets (iptables backend) is 1 while the kernel's ipset table in weft's network namespace has no room for the merged layout's sets, so every group walks its chains.",
		}, []string{"budget"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_kernel_drift_repaired_total", Help: "Differences between the kernel and the rules weft applied (changed behind its back) that the periodic check found and repaired, by kind: table, chain, rule, set, element, map-element, hook.",
		}, []string{"kind"}),
	}
	m.budget.WithLabelValues("merged-set-elements").Set(0)
	m.reg.MustRegister(m.syncs, m.drift, m.budget, m.compileTime, m.applyTime, m.rulesetObjs, m.setMembers, m.policyErrors, m.clusterPols, m.isolatedLocal,
		m.cut, m.misconfigured, m.unknownDenied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if len(st) > 0 {
		s := st[0]
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "weft_ready", Help: "1 while weft enforces the cluster's current policy (a ruleset is applied, syncs succeed, the API server answers), else 0.",
			}, func() float64 { return boolFloat(s.Ready()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "weft_api_unreachable_since_seconds", Help: "Unix time since which the API server does not answer (rules stay as they are meanwhile); 0 while it answers.",
			}, func() float64 {
				if t := s.APIUnreachableSince(); !t.IsZero() {
					return float64(t.UnixNano()) / 1e9
				}
				return 0
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "weft_api_relists_total", Help: "Full re-lists of the cluster view after the API server came back from an outage.",
			}, func() float64 { return float64(s.Relists()) }),
		)
		if s.HookRepairs != nil {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "weft_hook_repairs_total", Help: "Times a rule stood before weft's jump in FORWARD and weft put its jump first again.",
			}, func() float64 { return float64(s.HookRepairs()) }))
		}
	}
	return m
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// BudgetExceeded records how many parts of the ruleset in force are over
// the budget named.
func (m *Metrics) BudgetExceeded(budget string, n int) {
	m.budget.WithLabelValues(budget).Set(float64(n))
}

// BudgetGauge is the weft_budget_exceeded gauge of budget (for tests).
func (m *Metrics) BudgetGauge(budget string) prometheus.Gauge {
	return m.budget.WithLabelValues(budget)
}

// ConnectionsCut counts n connections cut.
func (m *Metrics) ConnectionsCut(n int) { m.cut.Add(float64(n)) }

// Misconfigured sets the state of a misconfiguration check.
func (m *Metrics) Misconfigured(check string, bad bool) {
	m.misconfigured.WithLabelValues(check).Set(boolFloat(bad))
}

// DriftRepaired counts what a periodic check of the kernel found and
// repaired; pass it as syncer.Config.OnDrift.
func (m *Metrics) DriftRepaired(drift []backend.Drift) {
	for _, d := range drift {
		m.drift.WithLabelValues(d.Kind).Inc()
	}
}

// UnknownDenied records whether unknown pod addresses are dropped.
func (m *Metrics) UnknownDenied(denied bool) { m.unknownDenied.Set(boolFloat(denied)) }

// ObserveSync records one sync attempt; pass it as syncer.Config.OnSync.
func (m *Metrics) ObserveSync(r syncer.Result) {
	switch {
	case r.Err != nil:
		m.syncs.WithLabelValues("failed").Inc()
		return
	case r.Changed:
		m.syncs.WithLabelValues("applied").Inc()
		m.applyTime.Observe(r.Apply.Seconds())
	default:
		m.syncs.WithLabelValues("unchanged").Inc()
	}
	m.compileTime.Observe(r.Compile.Seconds())
	if r.Snapshot != nil {
		m.policyErrors.Set(float64(len(r.Snapshot.Errors())))
		for _, tier := range []policy.Tier{policy.TierAdmin, policy.TierBaseline} {
			m.clusterPols.WithLabelValues(tier.String()).Set(float64(len(r.Snapshot.ClusterPoliciesIn(tier))))
		}
	}
	if rs := r.Ruleset; rs != nil && r.Changed {
		m.rulesetObjs.WithLabelValues("sets").Set(float64(len(rs.Sets)))
		m.rulesetObjs.WithLabelValues("chains").Set(float64(len(rs.Chains)))
		m.rulesetObjs.WithLabelValues("groups").Set(float64(len(rs.Groups)))
		members := 0
		for i := range rs.Sets {
			members += rs.Sets[i].Len()
		}
		m.setMembers.Set(float64(members))
		isolated := map[string]int{"ingress": 0, "egress": 0}
		for _, g := range rs.Groups {
			if len(g.Policies) > 0 { // not the open groups of known, unisolated pods
				isolated[g.Direction.String()] += len(g.Members)
			}
		}
		for dir, n := range isolated {
			m.isolatedLocal.WithLabelValues(dir).Set(float64(n))
		}
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
