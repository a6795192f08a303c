package ir

import "strings"

// Log says which packets the kernel copies to an NFLOG group, for weft to
// explain and count. The zero value logs nothing.
type Log struct {
	// Enabled turns the log rules on; Group is then the NFLOG group.
	Enabled bool
	Group   uint16
	// Rate and Burst bound, per source address and per log point, the
	// packets copied: Rate per second on average, Burst at once. Packets
	// beyond them are still dropped (or accepted), only not logged.
	Rate, Burst uint32
	// Allowed also logs new connections accepted into isolated pods: the
	// Accept rules of ingress policy chains (not those of open groups).
	Allowed bool
	// SnapLen is the most bytes of each packet copied (headers suffice).
	SnapLen uint32
}

// DefaultLog is the logging weft asks for: group 86 as weave-npc used,
// 20 new connections per second per source with bursts of 100.
var DefaultLog = Log{Enabled: true, Group: 86, Rate: 20, Burst: 100, SnapLen: 128}

// LogAction says why a packet was logged.
type LogAction uint8

// Dropped: no policy allows it. Unknown: its local address is in the pod
// ranges but no known pod holds it. Accepted: a policy allowed it into an
// isolated pod (Log.Allowed). Audited: no policy allows it, but the local
// pod is audited in that direction, so it passed (Group.Audit, Audit
// verdicts); enforcing would have dropped it.
const (
	Dropped LogAction = iota
	Unknown
	Accepted
	Audited
)

var logActionWords = [...]string{Dropped: "drop", Unknown: "unknown", Accepted: "accept", Audited: "audit"}

func (a LogAction) String() string { return logActionWords[a] }

// LogPrefix is the NFLOG prefix of packets logged for action in direction d,
// e.g. "weft drop ingress", "weft audit egress". Both backends use it; the reader parses it back.
func LogPrefix(action LogAction, d Direction) string {
	return "weft " + action.String() + " " + d.String()
}

// ParseLogPrefix reverses LogPrefix.
func ParseLogPrefix(prefix string) (LogAction, Direction, bool) {
	f := strings.Fields(prefix)
	if len(f) != 3 || f[0] != "weft" {
		return 0, 0, false
	}
	var d Direction
	switch f[2] {
	case "ingress":
		d = Ingress
	case "egress":
		d = Egress
	default:
		return 0, 0, false
	}
	for a, w := range logActionWords {
		if w == f[1] {
			return LogAction(a), d, true
		}
	}
	return 0, 0, false
}
