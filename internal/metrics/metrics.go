package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	ready         prometheus.Gauge
	isolatedLocal *prometheus.GaugeVec
}

// New registers weft's metrics and the Go runtime's.
func New() *Metrics {
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
			Name: "weft_policy_errors", Help: "Parts of NetworkPolicies weft cannot understand (they allow nothing).",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_ready", Help: "1 once a ruleset has been applied, else 0.",
		}),
		isolatedLocal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_isolated_pod_addresses", Help: "Local pod addresses isolated by policy, by direction.",
		}, []string{"direction"}),
	}
	m.reg.MustRegister(m.syncs, m.compileTime, m.applyTime, m.rulesetObjs, m.setMembers, m.policyErrors, m.ready, m.isolatedLocal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

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
	}
	if rs := r.Ruleset; rs != nil && r.Changed {
		m.ready.Set(1)
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
			isolated[g.Direction.String()] += len(g.Members)
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
