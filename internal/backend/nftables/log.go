package nftables

import (
	"fmt"
	"strconv"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// Logging (ir.Log). Each log point — a drop of a new connection, a drop of
// an unknown address, an accept into an isolated pod, a would-be drop of an
// audited pod — has, per direction
// and family, a dynamic set keyed by source address whose elements carry
// the rate limit. So each source has a budget of its own at each log point:
// one noisy source exhausts its own, never another's. `update` (not `add`)
// refreshes an element's timeout on every packet, so a source that keeps
// sending keeps its spent bucket instead of getting a fresh burst each time
// the element would expire. Packets over the limit, or from a new source
// while the set is full, are not logged; their verdict does not change.

// chainAcceptIngress accepts, after logging, what ingress policy allows
// into isolated pods when ir.Log.Allowed is set; accepts go to it instead
// of accepting in place.
const chainAcceptIngress = "accept-ingress"

const (
	// logSetTimeout is how long a source's bucket outlives its last packet.
	// A bucket refills in Burst/Rate seconds anyway; the timeout only
	// bounds how long an idle source holds an element.
	logSetTimeout = time.Minute
	// logSetSize bounds the sources tracked per log point and family.
	logSetSize uint64 = 65535
)

// logSetName is the set of log point action in direction dir, family fam,
// e.g. "log-drop-in4".
func logSetName(action ir.LogAction, dir ir.Direction, fam ir.Family) string {
	d := "in"
	if dir == ir.Egress {
		d = "eg"
	}
	return "log-" + action.String() + "-" + d + strconv.Itoa(int(fam))
}

// logger renders the log rules of one ruleset; nil when it logs nothing.
type logger struct {
	log ir.Log
}

// newLogger returns the logger of l, of a valid ruleset.
func newLogger(l ir.Log) *logger {
	if !l.Enabled {
		return nil
	}
	return &logger{log: l}
}

// logsAccepts reports whether accepts into group g are logged.
func (lg *logger) logsAccepts(g *ir.Group) bool {
	return lg != nil && lg.log.Allowed && g.Direction == ir.Ingress && isolating(g)
}

// isolating reports whether g holds pods that policies isolate; the group
// of pods no policy isolates (compile's open group) names no policies.
func isolating(g *ir.Group) bool { return len(g.Policies) > 0 }

// rule is the statement that logs new connections of family fam at log
// point (action, dir): it has no verdict, so the packet goes on to the
// next rule whether it was logged or not.
func (lg *logger) rule(action ir.LogAction, dir ir.Direction, fam ir.Family) string {
	kw := "ip"
	if fam == ir.IPv6 {
		kw = "ip6"
	}
	s := fmt.Sprintf("ct state new update @%s { %s saddr limit rate %d/second burst %d packets } log prefix %q group %d",
		logSetName(action, dir, fam), kw, lg.log.Rate, lg.log.Burst, ir.LogPrefix(action, dir), lg.log.Group)
	if lg.log.SnapLen > 0 {
		s += " snaplen " + strconv.FormatUint(uint64(lg.log.SnapLen), 10)
	}
	// Sent to the reader at once, not batched in the kernel.
	return s + " queue-threshold 1"
}

// rules is rule for both families, IPv4 first.
func (lg *logger) rules(action ir.LogAction, dir ir.Direction) []ruleText {
	return []ruleText{{rule: lg.rule(action, dir, ir.IPv4)}, {rule: lg.rule(action, dir, ir.IPv6)}}
}

// audits reports whether rs audits anything: an audited group (whose
// chains may hold Audit verdicts; Validate allows them nowhere else).
func audits(rs *ir.Ruleset) bool {
	for i := range rs.Groups {
		if rs.Groups[i].Audit {
			return true
		}
	}
	return false
}

// addObjects adds the log sets, the chains that log and drop unknown
// addresses and policy rules' drops, when accepts are logged the chain that
// logs and accepts them, and when the ruleset audits (audit) the log
// point of would-be drops and the chains that log and accept policy rules'
// audited drops.
func (lg *logger) addObjects(d *desired, audit bool) {
	timeout, size := logSetTimeout, logSetSize
	add := func(action ir.LogAction, dir ir.Direction) {
		for _, fam := range []ir.Family{ir.IPv4, ir.IPv6} {
			name := logSetName(action, dir, fam)
			typ := "ipv4_addr"
			if fam == ir.IPv6 {
				typ = "ipv6_addr"
			}
			d.sets[name] = &setObj{kind: logSources, def: knftables.Set{
				Name: name, Type: typ, Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: &timeout, Size: &size,
				Comment: comment(fmt.Sprintf("%s %s log: source -> its rate limit", dir, action))}}
		}
	}
	for _, dir := range []ir.Direction{ir.Ingress, ir.Egress} {
		add(ir.Dropped, dir)
		add(ir.Unknown, dir)
		d.chains[unknownChain(dir)] = &chainObj{
			def:   knftables.Chain{Name: unknownChain(dir), Comment: comment(dir.String() + ": log and drop unknown local pod addresses")},
			rules: append(lg.rules(ir.Unknown, dir), ruleText{rule: "drop", comment: dir.String() + ": unknown local pod address"}),
		}
		d.chains[dropChain(dir)] = &chainObj{
			def:   knftables.Chain{Name: dropChain(dir), Comment: comment(dir.String() + ": log and drop what a policy rule drops")},
			rules: append(lg.rules(ir.Dropped, dir), ruleText{rule: "drop", comment: dir.String() + ": a policy rule drops it"}),
		}
	}
	if audit {
		for _, dir := range []ir.Direction{ir.Ingress, ir.Egress} {
			add(ir.Audited, dir)
			d.chains[auditChain(dir)] = &chainObj{
				def:   knftables.Chain{Name: auditChain(dir), Comment: comment(dir.String() + " of audited pods: log what a policy rule would drop, accept")},
				rules: append(lg.rules(ir.Audited, dir), ruleText{rule: "accept", comment: dir.String() + ": a policy rule would drop it; audited"}),
			}
		}
	}
	if !lg.log.Allowed {
		return
	}
	add(ir.Accepted, ir.Ingress)
	c := &chainObj{def: knftables.Chain{Name: chainAcceptIngress, Comment: comment("ingress into isolated pods: log new connections, accept")}}
	c.rules = append(lg.rules(ir.Accepted, ir.Ingress), ruleText{rule: "accept"})
	d.chains[chainAcceptIngress] = c
}

// logSources is the kind of the log sets: the kernel fills them.
const logSources ir.SetKind = 103

// dropChain logs, then drops, what a policy rule (ir.Drop) of direction dir
// drops, when logging; group chains log their own final drop in place.
func dropChain(dir ir.Direction) string { return "drop-" + dir.String() }

// auditChain logs as would-be-dropped, then accepts, what a policy rule
// (ir.Audit) of direction dir would drop in an audited group.
func auditChain(dir ir.Direction) string { return "audit-" + dir.String() }

// unknownChain logs, then drops, packets of unknown local pod addresses of
// direction dir, when logging.
func unknownChain(dir ir.Direction) string { return "unknown-" + dir.String() }
