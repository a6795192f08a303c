package metrics

import "github.com/prometheus/client_golang/prometheus"

// NFLogCounters count blocked-connection logging; they satisfy
// nflog.Counters.
type NFLogCounters struct {
	blocked     *prometheus.CounterVec
	wouldBlock  *prometheus.CounterVec
	byNamespace bool
	lost        prometheus.Counter
	summarised  prometheus.Counter
	reading     prometheus.Gauge
}

// NFLog registers the blocked-connection metrics. byNamespace adds the
// destination pod's namespace as a label (--metrics-blocked-by-namespace);
// by default the labels are bounded: protocol and direction only.
func (m *Metrics) NFLog(byNamespace bool) *NFLogCounters {
	labels := []string{"protocol", "direction"}
	if byNamespace {
		labels = append(labels, "namespace")
	}
	c := &NFLogCounters{
		byNamespace: byNamespace,
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_blocked_connections_total",
			Help: "New connections dropped because no policy allows them (or their local address is unknown), as the kernel logged them: rate-limited per source address, and TCP retransmissions of a blocked SYN count again. Successor of weave-npc's weavenpc_blocked_connections_total.",
		}, labels),
		wouldBlock: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_audit_would_block_total",
			Help: "New connections of audited pods (weft run --mode audit, namespace annotation weft.dev/enforcement: audit) that enforcing would have dropped: logged and let through, as the kernel logged them (rate-limited per source address like weft_blocked_connections_total, which they are not part of).",
		}, labels),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_nflog_messages_lost_total",
			Help: "Blocked-connection log messages that never became a line: the NFLOG socket overran (ENOBUFS) or weft's queue was full.",
		}),
		summarised: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_log_lines_summarised_total",
			Help: "Blocked-connection log lines not written one by one but counted in a summary line (\"… and N more like it\").",
		}),
		reading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_nflog_reading",
			Help: "1 while weft reads its NFLOG group; 0 when it cannot (another process holds the group, netlink errors): blocked traffic is then still dropped, only not logged.",
		}),
	}
	m.reg.MustRegister(c.blocked, c.wouldBlock, c.lost, c.summarised, c.reading)
	return c
}

// Blocked counts one blocked connection attempt.
func (c *NFLogCounters) Blocked(protocol, direction, namespace string) {
	if c.byNamespace {
		c.blocked.WithLabelValues(protocol, direction, namespace).Inc()
		return
	}
	c.blocked.WithLabelValues(protocol, direction).Inc()
}

// WouldBlock counts one connection attempt that audit let through.
func (c *NFLogCounters) WouldBlock(protocol, direction, namespace string) {
	if c.byNamespace {
		c.wouldBlock.WithLabelValues(protocol, direction, namespace).Inc()
		return
	}
	c.wouldBlock.WithLabelValues(protocol, direction).Inc()
}

// Lost counts n lost messages.
func (c *NFLogCounters) Lost(n int) { c.lost.Add(float64(n)) }

// Summarised counts n events folded into summaries.
func (c *NFLogCounters) Summarised(n int) { c.summarised.Add(float64(n)) }

// Reading sets whether the group is read.
func (c *NFLogCounters) Reading(ok bool) { c.reading.Set(boolFloat(ok)) }
