package nflog

import (
	"sync"
	"time"

	"github.com/weftnet/weft/internal/policy"
)

// View is the cluster view weft enforced from At on, as the evaluator that
// explains packets sees it.
type View struct {
	At   time.Time
	Eval policy.Evaluator
}

// History keeps the views enforced over the last while, so a packet is
// explained by the view the kernel held when it came, not by a newer one: an
// address reused by a new pod since, or a pod deleted since, is told as it
// was. It is safe for concurrent use.
type History struct {
	// Keep is how long a view is kept after a newer one replaced it
	// (default 10s); at most Max views are kept (default 64).
	Keep time.Duration
	Max  int
	// MaxBytes bounds what the views kept hold, by estimate (default
	// 64 MiB): a snapshot built from every object holds indexes of about
	// 150 bytes a pod; one derived from the view before it shares them and
	// holds about 10 bytes a pod (its sorted pod list) and what changed.
	// So at 100,000 pods a view built anew and some thirty derived ones
	// are kept. The newest two are always kept.
	MaxBytes int

	mu    sync.Mutex
	views []View // oldest first
}

// Add records that v is enforced from v.At on.
func (h *History) Add(v View) {
	keep, max, maxBytes := h.Keep, h.Max, h.MaxBytes
	if keep <= 0 {
		keep = 10 * time.Second
	}
	if max <= 0 {
		max = 64
	}
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.views); n > 0 && h.views[n-1].Eval.Snapshot == v.Eval.Snapshot {
		return // the same view again (a sync that changed nothing)
	}
	h.views = append(h.views, v)
	// Views replaced more than keep ago can no longer explain a packet.
	drop := 0
	for drop < len(h.views)-1 && v.At.Sub(h.views[drop+1].At) > keep {
		drop++
	}
	if n := len(h.views) - drop; n > max {
		drop += n - max
	}
	bytes := 0
	for i := len(h.views) - 1; i >= drop; i-- {
		prev := View{}
		if i > 0 {
			prev = h.views[i-1]
		}
		bytes += viewBytes(h.views[i], prev)
		if bytes > maxBytes && i < len(h.views)-2 {
			drop = i + 1
			break
		}
	}
	if drop > 0 {
		h.views = append(h.views[:0:0], h.views[drop:]...)
	}
}

// viewBytes estimates what v holds beside prev, the view before it (see
// MaxBytes).
func viewBytes(v, prev View) int {
	snap := v.Eval.Snapshot
	if snap == nil {
		return 0
	}
	if d, ok := snap.DeltaFrom(prev.Eval.Snapshot); ok {
		return 10*len(snap.Pods) + 300*(len(d.Pods)+len(d.Namespaces))
	}
	return 150 * len(snap.Pods)
}

// Latest returns the newest view, or nil before the first.
func (h *History) Latest() *View {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.views) == 0 {
		return nil
	}
	v := h.views[len(h.views)-1]
	return &v
}

// Candidates returns the views that may have been in force when a packet
// was logged at t, most likely first: the view in force at t, then those
// that came into force up to slack after t (the packet's time and the views'
// times are read at different moments: a packet can be read after the sync
// that followed it, a view recorded just after the kernel got it), then
// those in force up to slack before t. If t precedes every view kept, the
// oldest comes first.
func (h *History) Candidates(t time.Time, slack time.Duration) []View {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.views) == 0 {
		return nil
	}
	at := 0
	for i, v := range h.views {
		if !v.At.After(t) {
			at = i
		}
	}
	out := []View{h.views[at]}
	for i := at + 1; i < len(h.views) && !h.views[i].At.After(t.Add(slack)); i++ {
		out = append(out, h.views[i])
	}
	for i := at - 1; i >= 0 && h.views[i+1].At.After(t.Add(-slack)); i-- {
		out = append(out, h.views[i])
	}
	return out
}
