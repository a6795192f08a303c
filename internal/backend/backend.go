// Package backend is what weft's kernel backends (iptables+ipset, nftables)
// have in common: the interface the syncer drives and the names they share.
package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/internal/ir"
)

// Backend programs the kernel's packet filter of the network namespace weft
// runs in.
type Backend interface {
	// Name is "iptables" or "nftables".
	Name() string
	// Apply makes the kernel hold exactly rs, atomically: on error the rules
	// that were in place stay whole, and the error says what the kernel or
	// the tool refused. The first Apply of a process adopts and replaces what
	// an earlier weft left, without a moment in which isolated pods are open.
	Apply(ctx context.Context, rs *ir.Ruleset) error
	// Cleanup removes every chain, rule, set and table weft owns, and
	// nothing else. It succeeds when there is nothing to remove.
	Cleanup(ctx context.Context) error
}

// BudgetReporter is implemented by backends that merge a group's policy
// chains into sets within a budget of elements (ir.MergeOptions.Budget):
// OverBudget names the groups of the last applied ruleset whose merged sets
// would have exceeded it, with the elements they would hold. Those groups
// walk their policy chains instead: the same verdicts (never more open),
// more rule lookups per new connection.
type BudgetReporter interface {
	OverBudget() map[string]int
	// Budget is the most elements a group's merged sets may hold.
	Budget() int
}

// SetLimitReporter is implemented by backends whose sets come from a kernel
// table of bounded size (ipset: about 65,000 sets per network namespace,
// shared with every other tool there). When the merged layout (the
// per-group sets of ir.PlanGroup) needs more sets than the table has room
// for, such a backend applies the same ruleset without merged sets: every
// group walks its policy chains, which gives the same verdicts with fewer
// sets (never a more open layout) and more rule lookups per new connection.
type SetLimitReporter interface {
	// SetLimitFallback describes the fallback the ruleset applied last is
	// in; nil when it has its merged layout.
	SetLimitFallback() *SetLimitFallback
}

// SetLimitFallback describes a ruleset applied without merged sets because
// the kernel's set table had no room for them.
type SetLimitFallback struct {
	// Merged is how many sets the merged layout needed when it was last
	// tried and refused; Applied is how many the layout in force holds.
	Merged, Applied int
	// InNamespace is how many sets the network namespace held, weft's and
	// other tools', right after the merged layout was refused, and Others
	// how many of them are not weft's (-1 each: they could not be listed).
	InNamespace, Others int
	// Refusal is what the kernel said.
	Refusal string
	// Retry is how long after a refusal the backend tries the merged
	// layout again even though it needs as many sets (it tries it at once
	// when it needs fewer), with the first apply after that.
	Retry time.Duration
}

// VerifyAttempts is how many times a Verifier reads the kernel back while
// weft keeps applying changes (each Apply in between makes a read stale)
// before it gives up.
const VerifyAttempts = 5

// ErrBusy is what Verify's error wraps when weft applied changes each time
// it read the kernel back: nothing is known to differ; check later.
var ErrBusy = errors.New("weft applied changes while the kernel was read back")

// ReadBeside reads the kernel back with read while not holding mu (at
// scale a read-back takes long, and an Apply must not wait for it), and
// returns the reading, with mu held, if no write happened meanwhile
// (*writes, which the backend counts under mu, did not move); else it reads
// again, up to VerifyAttempts times, then returns an error wrapping
// ErrBusy. ready, called under mu, says why there is nothing to compare
// with yet.
func ReadBeside[T any](mu sync.Locker, writes *uint64, ready func() error, read func() (T, error)) (T, error) {
	var zero T
	for attempt := 1; ; attempt++ {
		mu.Lock()
		if err := ready(); err != nil {
			mu.Unlock()
			return zero, err
		}
		before := *writes
		mu.Unlock()
		v, err := read()
		if err != nil {
			return zero, err
		}
		mu.Lock()
		if *writes == before {
			return v, nil
		}
		mu.Unlock()
		if attempt == VerifyAttempts {
			return zero, fmt.Errorf("%w, each of the %d times; try again", ErrBusy, attempt)
		}
	}
}

// OverBudgetGroups keeps what a backend's last Apply found over the merge
// budget; backends embed it to implement BudgetReporter.
type OverBudgetGroups struct {
	mu     sync.Mutex
	groups map[string]int
	limit  int
}

// SetOverBudget records the groups over budget limit of the ruleset applied.
func (o *OverBudgetGroups) SetOverBudget(groups map[string]int, limit int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.groups, o.limit = groups, limit
}

// OverBudget implements BudgetReporter.
func (o *OverBudgetGroups) OverBudget() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.groups)
}

// Budget implements BudgetReporter.
func (o *OverBudgetGroups) Budget() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.limit
}

// Forgetter is implemented by backends that can forget what they believe the
// kernel holds, so that their next Apply reads the kernel again and rewrites
// all they own. The syncer uses it to repair, now and then, rules changed or
// removed behind weft's back.
type Forgetter interface {
	Forget()
}

// HookChecker is implemented by backends whose hook into the kernel's
// chains can be displaced by other tools (iptables: a rule inserted before
// weft's jump in FORWARD). The syncer calls CheckHooks on every sync that
// applies nothing; it puts the hook back and says what stood in front. An
// error means the backend forgot its view: the next Apply must run even for
// an unchanged ruleset.
type HookChecker interface {
	CheckHooks(ctx context.Context) (repaired []string, err error)
}

// Drift is one difference between what weft applied and what the kernel
// holds now: something changed behind weft's back.
type Drift struct {
	// Kind is what differs: "table", "chain", "rule", "set", "element",
	// "map-element" or "hook".
	Kind string `json:"kind"`
	// Object names the chain, set, map or hook concerned.
	Object string `json:"object"`
	// Change is "missing" (weft's, gone from the kernel), "extra" (in the
	// kernel, not weft's), "changed" or "displaced" (a foreign rule before
	// weft's hook).
	Change string `json:"change"`
	// Detail is the element, rule or foreign rule concerned.
	Detail string `json:"detail,omitempty"`
}

func (d Drift) String() string {
	s := d.Change + " " + d.Kind + " " + d.Object
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	return s
}

// Verifier is implemented by backends that can read back what they own and
// compare it with what they applied last.
type Verifier interface {
	// Verify reads the kernel and returns every difference from the ruleset
	// applied last (none: the kernel holds exactly it). With repair it then
	// changes exactly what differs, in one step that keeps what is right in
	// place; the drift returned is what it found. An error means the kernel
	// could not be read or repaired; the caller should rewrite all (Forget).
	Verify(ctx context.Context, repair bool) ([]Drift, error)
}

// SequenceDrift compares the rules of one chain, want (what weft wrote) and
// have (what the kernel holds), as a longest common subsequence: each rule
// missing from have and each rule added to it is one Drift of kind "rule",
// so that one inserted rule is one difference. show shortens a rule for
// the Drift's detail.
func SequenceDrift(object string, want, have []string, show func(string) string) []Drift {
	if slices.Equal(want, have) {
		return nil
	}
	// lcs[i][j]: length of the longest common subsequence of want[i:], have[j:].
	lcs := make([][]int, len(want)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(have)+1)
	}
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(have) - 1; j >= 0; j-- {
			if want[i] == have[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var drift []Drift
	i, j := 0, 0
	for i < len(want) || j < len(have) {
		switch {
		case i < len(want) && j < len(have) && want[i] == have[j]:
			i++
			j++
		case j < len(have) && (i == len(want) || lcs[i][j+1] >= lcs[i+1][j]):
			drift = append(drift, Drift{Kind: "rule", Object: object, Change: "extra", Detail: fmt.Sprintf("rule %d: %s", j+1, show(have[j]))})
			j++
		default:
			drift = append(drift, Drift{Kind: "rule", Object: object, Change: "missing", Detail: fmt.Sprintf("rule %d: %s", i+1, show(want[i]))})
			i++
		}
	}
	return drift
}

// AddressView is what the kernel holds for one address, read back: the
// groups its packets are dispatched to and the sets that hold it.
type AddressView struct {
	Addr string `json:"addr"`
	// Groups are "ingress GROUP" or "egress GROUP": the group chains the
	// kernel sends the address's packets to, as a local pod.
	Groups []string `json:"groups"`
	// Sets are the other sets of weft's that hold the address (as a peer,
	// alone or in a prefix, or paired with a protocol and port).
	Sets []string `json:"sets"`
}

// Reader is implemented by backends that can say what the kernel holds for
// given addresses (weft explain on a node).
type Reader interface {
	Lookup(ctx context.Context, addrs []netip.Addr) ([]AddressView, error)
}

// ElementHolds reports whether a set element in canonical text (an
// address, a prefix, an address range "a-b", optionally followed by
// " . protocol . port" parts) holds addr in its first part.
func ElementHolds(elem string, addr netip.Addr) bool {
	first, _, _ := strings.Cut(elem, " . ")
	first, _, _ = strings.Cut(first, ",") // ipset's "addr,proto:port"
	if a, err := netip.ParseAddr(first); err == nil {
		return a == addr
	}
	if p, err := netip.ParsePrefix(first); err == nil {
		return p.Contains(addr)
	}
	if lo, hi, ok := strings.Cut(first, "-"); ok {
		l, errL := netip.ParseAddr(lo)
		h, errH := netip.ParseAddr(hi)
		return errL == nil && errH == nil && l.BitLen() == addr.BitLen() && l.Compare(addr) <= 0 && addr.Compare(h) <= 0
	}
	return false
}
