package iptables

import (
	"errors"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/backend"
)

// The kernel keeps a network namespace's ipsets in one table, shared with
// every other tool there, that grows to about 65,000 sets and no further
// ("maximal number of sets reached"). The merged layout adds per-group sets
// to the ir's peer sets; walking every group's policy chains gives the same
// verdicts with fewer sets. So when the kernel refuses to create a set of
// the merged layout, Apply renders the same ruleset with every group
// walking its chains and applies that; the refused attempt changed nothing
// (sets are created in the first step, which is rolled back). Later
// applies keep walking until the merged layout needs fewer sets than it
// did when it was refused, or mergedRetry has passed (other tools may have
// freed sets meanwhile); then they try it again, and fall back again if it
// is refused.

// setTableFullMsg is what ipset says when the kernel's set table is full.
const setTableFullMsg = "maximal number of sets reached"

// mergedRetry is how long after a refusal of the merged layout Apply tries
// it again even though it needs as many sets as then.
const mergedRetry = 10 * time.Minute

// setLimit is the backend's fallback from the merged layout.
type setLimit struct {
	// fallback is nil while the merged layout is in force.
	fallback *backend.SetLimitFallback
	// retryAt is when the merged layout is tried again whatever it needs.
	retryAt time.Time
}

// mayFit says whether an apply should try merged, the merged layout of its
// ruleset, again.
func (l *setLimit) mayFit(merged *state) bool {
	return len(merged.sets) < l.fallback.Merged || !time.Now().Before(l.retryAt)
}

// fellBack records a fallback: the merged layout of mergedSets sets was
// refused with refusal, the walking layout of applied sets is in force.
// count lists the namespace's sets.
func (l *setLimit) fellBack(mergedSets, applied int, refusal string, count func() (all, others int)) {
	all, others := count()
	l.fallback = &backend.SetLimitFallback{Merged: mergedSets, Applied: applied, InNamespace: all, Others: others, Refusal: refusal, Retry: mergedRetry}
	l.retryAt = time.Now().Add(mergedRetry)
}

// SetLimitFallback implements backend.SetLimitReporter.
func (b *Backend) SetLimitFallback() *backend.SetLimitFallback {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit.fallback == nil {
		return nil
	}
	fb := *b.limit.fallback
	return &fb
}

// setTableFull returns what ipset said when err is the kernel's refusal to
// create a set because its set table is full, else "".
func setTableFull(err error) string {
	var te *ToolError
	if errors.As(err, &te) && strings.Contains(te.Output, setTableFullMsg) {
		return te.Output
	}
	return ""
}

// countSets counts the namespace's ipsets and those of them that are not
// weft's; -1, -1 when they cannot be listed.
func (b *Backend) countSets() (all, others int) {
	out, err := b.run("ipset", []string{"list", "-n"}, "")
	if err != nil {
		b.log.Debug("could not list the ipsets to count them", "error", err)
		return -1, -1
	}
	for _, name := range strings.Fields(out) {
		all++
		if !ownedSet(name) {
			others++
		}
	}
	return all, others
}
