package compile

import (
	"net/netip"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Incremental compiles the successive snapshots of one node, reusing what a
// change did not touch: the peer and named-port sets, kept up to date
// address by address from the pods that changed, and each policy's chains.
// When a snapshot was not derived from the one compiled before
// (policy.Snapshot.With), or the options changed, it compiles in full. Its
// output always equals Compile's for the same snapshot and options (the
// differential tests hold it to that). Not safe for concurrent use.
type Incremental struct {
	opts   Options
	prev   *policy.Snapshot
	sets   map[string]*setEntry
	chains map[chainKey]*chainEntry
	// Stats counts what the last Compile did.
	Stats IncrementalStats
}

// IncrementalStats says how much of a compile was reused.
type IncrementalStats struct {
	// Full is set when the compile started afresh.
	Full bool
	// SetsReused, SetsPatched and SetsBuilt count the sets of the ruleset
	// taken as they were, updated for the changed addresses, or computed.
	SetsReused, SetsPatched, SetsBuilt int
	// ChainsReused counts policy chains taken as they were.
	ChainsReused int
}

type chainKey struct {
	pol *policy.Policy
	dir policy.Direction
}

type chainEntry struct {
	chain *ir.Chain
	used  bool
}

// setEntry is a set the compiler made and what it stands for.
type setEntry struct {
	set  *ir.Set
	used bool
	kind setKind
	// podSet: the pods of namespace ns (nsSel nil) or of the namespaces
	// nsSel selects (then selected), that podSel (nil: all) selects.
	ns       string
	nsSel    labels.Selector
	podSel   labels.Selector
	selected map[string]bool
	// namedSet: the endpoints of container ports called port, of proto,
	// of the pods on node ("": of every pod).
	port  string
	proto policy.Protocol
	node  string
}

type setKind uint8

const (
	fixedSet setKind = iota // depends on nothing in the cluster (ipBlock)
	podSet
	namedSet
)

// NewIncremental returns an Incremental compiler.
func NewIncremental() *Incremental { return &Incremental{} }

// Compile returns the ruleset of snap for opts, as CompileWith does.
func (inc *Incremental) Compile(snap *policy.Snapshot, opts Options) *ir.Ruleset {
	inc.Stats = IncrementalStats{}
	delta, ok := snap.DeltaFrom(inc.prev)
	if !ok || !reflect.DeepEqual(opts, inc.opts) || inc.sets == nil {
		inc.sets, inc.chains = map[string]*setEntry{}, map[chainKey]*chainEntry{}
		inc.Stats.Full = true
	} else {
		inc.update(snap, delta)
	}
	inc.opts, inc.prev = opts, snap
	for _, e := range inc.sets {
		e.used = false
	}
	for _, e := range inc.chains {
		e.used = false
	}
	c := newCompiler(snap, opts)
	c.inc = inc
	rs := c.compile()
	for name, e := range inc.sets {
		if !e.used {
			delete(inc.sets, name)
		}
	}
	for k, e := range inc.chains {
		if !e.used {
			delete(inc.chains, k)
		}
	}
	return rs
}

// update brings the kept sets from the snapshot compiled before to snap,
// which changed it by d: sets whose namespaces changed are dropped (and
// computed again when used), the others patched for the addresses of the
// pods that changed.
func (inc *Incremental) update(snap *policy.Snapshot, d *policy.Delta) {
	for _, ns := range d.Namespaces {
		for name, e := range inc.sets {
			if e.kind != podSet || e.nsSel == nil {
				continue
			}
			was := ns[0] != nil && e.nsSel.Matches(ns[0].Labels)
			is := ns[1] != nil && e.nsSel.Matches(ns[1].Labels)
			if was != is {
				delete(inc.sets, name)
			}
		}
	}
	if len(d.Pods) == 0 {
		return
	}
	var addrs []netip.Addr
	for _, c := range d.Pods {
		for _, p := range c {
			if p != nil {
				addrs = append(addrs, p.IPs...)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	owners := make([]*policy.Pod, len(addrs))
	for i, a := range addrs {
		owners[i] = snap.PodByIP(a)
	}
	for _, e := range inc.sets {
		switch e.kind {
		case podSet:
			if e.patchAddrs(addrs, owners) {
				inc.Stats.SetsPatched++
			}
		case namedSet:
			if e.patchEndpoints(addrs, owners) {
				inc.Stats.SetsPatched++
			}
		}
	}
}

// holds reports whether the pod set holds owner's addresses.
func (e *setEntry) holds(owner *policy.Pod) bool {
	if owner == nil {
		return false
	}
	if e.nsSel == nil {
		if owner.Namespace != e.ns {
			return false
		}
	} else if !e.selected[owner.Namespace] {
		return false
	}
	return e.podSel == nil || e.podSel.Matches(owner.Labels)
}

// patchAddrs updates a pod set for addrs (sorted), whose owners are now
// owners: an address is in the set when its owner is. It reports whether
// the set changed.
func (e *setEntry) patchAddrs(addrs []netip.Addr, owners []*policy.Pod) bool {
	old := e.set.Addrs
	var out []netip.Addr
	changed := false
	j := 0
	for i, a := range addrs {
		if ir.FamilyOf(a) != e.set.Family {
			continue
		}
		k, found := slices.BinarySearchFunc(old[j:], a, netip.Addr.Compare)
		in := e.holds(owners[i])
		if found == in {
			continue
		}
		if !changed {
			out, changed = make([]netip.Addr, 0, len(old)+1), true
		}
		out = append(out, old[j:j+k]...)
		j += k
		if found {
			j++
		} else {
			out = append(out, a)
		}
	}
	if changed {
		if out = append(out, old[j:]...); len(out) == 0 {
			out = nil // as a computed set has it
		}
		s := *e.set
		s.Addrs = out
		e.set = &s
	}
	return changed
}

// patchEndpoints updates a named-port set for addrs (sorted), whose owners
// are now owners: an address's endpoints are its owner's ports of the name.
// It reports whether the set changed.
func (e *setEntry) patchEndpoints(addrs []netip.Addr, owners []*policy.Pod) bool {
	old := e.set.Endpoints
	var out []ir.Endpoint
	changed := false
	j := 0
	for i, a := range addrs {
		if ir.FamilyOf(a) != e.set.Family {
			continue
		}
		lo, _ := slices.BinarySearchFunc(old[j:], a, func(ep ir.Endpoint, a netip.Addr) int { return ep.Addr.Compare(a) })
		lo += j
		hi := lo
		for hi < len(old) && old[hi].Addr == a {
			hi++
		}
		var now []ir.Endpoint
		if p := owners[i]; p != nil && (e.node == "" || policy.IsLocal(p, e.node)) {
			for _, cp := range p.Ports {
				if cp.Name == e.port && cp.Protocol == e.proto {
					now = append(now, ir.Endpoint{Addr: a, Protocol: uint8(cp.Protocol), Port: cp.Port})
				}
			}
			slices.SortFunc(now, ir.CompareEndpoints)
			now = slices.Compact(now)
		}
		if slices.Equal(now, old[lo:hi]) {
			continue
		}
		if !changed {
			out, changed = make([]ir.Endpoint, 0, len(old)+len(now)), true
		}
		out = append(out, old[j:lo]...)
		out = append(out, now...)
		j = hi
	}
	if changed {
		if out = append(out, old[j:]...); len(out) == 0 {
			out = nil
		}
		s := *e.set
		s.Endpoints = out
		e.set = &s
	}
	return changed
}

// cachedSet returns the kept set called name, marking it used; nil if none.
func (inc *Incremental) cachedSet(name string) *ir.Set {
	e := inc.sets[name]
	if e == nil {
		return nil
	}
	if !e.used {
		e.used = true
		inc.Stats.SetsReused++
	}
	return e.set
}

// keep records a set the compiler computed.
func (inc *Incremental) keep(e *setEntry) {
	e.used = true
	inc.sets[e.set.Name] = e
	inc.Stats.SetsBuilt++
}
