package iptables

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/weftnet/weft/internal/ir"
)

// Logging (ir.Log). Each log point — the drop chains, the unknown-address
// chains, the audit chains of would-be drops and, with Log.Allowed, the
// accepts into isolated pods — starts
// with a rule that sends new connections to NFLOG, limited per source
// address by a hashlimit table of its own: one noisy source exhausts its
// own budget, never another's. NFLOG does not end the chain; the rule
// after it drops (or accepts) as without logging.

// Chains of the accepts that are logged (Log.Allowed), ingress only. A
// merged lookup of an isolated ingress group goes (-g) to
// chainIngressAccept, which logs and, ending, returns past the group chain
// (entered by goto) as -j RETURN would. A walked policy chain's Accept goes
// to chainIngressAllow, which logs and sets the mark as WEFT-ALLOW does.
// Both share one hashlimit table: one log point.
const (
	chainIngressAccept = "WEFT-INGRESS-ACCEPT"
	chainIngressAllow  = "WEFT-INGRESS-ALLOW"
)

// maxLogRate is the fastest rate hashlimit takes: it keeps the cost of one
// packet in millionths of a second.
const maxLogRate = 1000000

// logger renders the log rules of one ruleset; nil when it logs nothing.
type logger struct {
	log ir.Log
}

func newLogger(l ir.Log) (*logger, error) {
	if !l.Enabled {
		return nil, nil
	}
	// ir.Ruleset.Validate saw to a rate and burst of at least 1.
	if l.Rate > maxLogRate {
		return nil, fmt.Errorf("ruleset: log rate %d/s: want a rate of 1 to %d per second", l.Rate, maxLogRate)
	}
	return &logger{log: l}, nil
}

// logsAccepts reports whether accepts into group g are logged.
func (lg *logger) logsAccepts(g *ir.Group) bool {
	return lg != nil && lg.log.Allowed && g.Direction == ir.Ingress && isolating(g)
}

// isolating reports whether g holds pods that policies isolate; the group
// of pods no policy isolates (compile's open group) names no policies.
func isolating(g *ir.Group) bool { return len(g.Policies) > 0 }

// rate is Log.Rate as iptables-save prints it back: hashlimit stores the
// cost of a packet, 1,000,000/rate, rounded down (3600/sec reads back as
// 3610/sec).
func (lg *logger) rate() uint32 { return maxLogRate / (maxLogRate / lg.log.Rate) }

// spec is the rule (the part after "-A CHAIN ") that logs new connections
// at log point (action, dir), written as iptables-save prints it, so that
// adoption finds it unchanged.
func (lg *logger) spec(action ir.LogAction, dir ir.Direction) string {
	s := fmt.Sprintf("-m conntrack --ctstate NEW -m hashlimit --hashlimit-upto %d/sec --hashlimit-burst %d --hashlimit-mode srcip --hashlimit-name %s -j NFLOG --nflog-prefix %q",
		lg.rate(), lg.log.Burst, lg.hashlimitName(action, dir), ir.LogPrefix(action, dir))
	if lg.log.Group != 0 { // iptables-save leaves out the default group 0
		s += " --nflog-group " + strconv.Itoa(int(lg.log.Group))
	}
	if lg.log.SnapLen != 0 { // else the whole packet
		s += " --nflog-size " + strconv.FormatUint(uint64(lg.log.SnapLen), 10)
	}
	// Sent to the reader at once, not batched in the kernel.
	return s + " --nflog-threshold 1"
}

// hashlimitName names the hashlimit table of a log point, e.g.
// "weft-di-20-100" for drops of ingress at 20/s with bursts of 100. The
// kernel shares a table among all rules of one name (per family) and keeps
// the settings of the first rule that made it, so the name holds the
// settings: a new rate makes a new table. At most 15 characters; hashed
// when the numbers do not fit.
func (lg *logger) hashlimitName(action ir.LogAction, dir ir.Direction) string {
	letter := action.String()[:1]
	if action == ir.Audited {
		letter = "w" // would-be drops; "a" is accept's
	}
	base := "weft-" + letter + dir.String()[:1] + "-"
	name := base + strconv.Itoa(int(lg.rate())) + "-" + strconv.Itoa(int(lg.log.Burst))
	if len(name) <= 15 {
		return name
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%d", lg.rate(), lg.log.Burst)
	return base + fmt.Sprintf("%07x", h.Sum32()>>4)
}
