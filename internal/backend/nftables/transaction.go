package nftables

import (
	"net/netip"
	"slices"
	"strconv"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// writeFull writes a transaction that replaces whatever table inet weft holds
// with d. The add before the delete makes the delete succeed when there is no
// table yet; the kernel commits the whole batch at once, so packets see either
// the old table or the new one, never none.
func writeFull(tx *knftables.Transaction, d *desired, st *SyncStats) {
	st.Full = true
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	c := tableComment
	tx.Add(&knftables.Table{Comment: &c})
	for _, name := range sortedKeys(d.chains) {
		def := d.chains[name].def
		tx.Add(&def)
		st.ObjectsAdded++
	}
	for _, name := range sortedKeys(d.sets) {
		def := d.sets[name].def
		tx.Add(&def)
		st.ObjectsAdded++
	}
	for _, name := range sortedKeys(d.maps) {
		def := d.maps[name].def
		tx.Add(&def)
		st.ObjectsAdded++
	}
	for _, name := range sortedKeys(d.sets) {
		st.ElementsAdded += addSetElements(tx, d.sets[name], nil)
	}
	for _, name := range sortedKeys(d.chains) {
		addRules(tx, name, d.chains[name].rules)
		st.ChainsWritten++
	}
	for _, name := range sortedKeys(d.maps) {
		for _, e := range d.maps[name].elems {
			tx.Add(mapElement(name, e))
			st.ElementsAdded++
		}
	}
}

// writeIncremental writes the transaction that turns old into want. It
// returns false, having written nothing useful, when an object's definition
// changed (a set's type, a base chain's hook): then only a full sync can
// replace it atomically.
func writeIncremental(tx *knftables.Transaction, old, want *desired, st *SyncStats) bool {
	for name, s := range want.sets {
		if o := old.sets[name]; o != nil && !sameSetDef(&o.def, &s.def) {
			return false
		}
	}
	for name, m := range want.maps {
		if o := old.maps[name]; o != nil && !sameMapDef(&o.def, &m.def) {
			return false
		}
	}
	for name, c := range want.chains {
		if o := old.chains[name]; o != nil && !sameChainDef(&o.def, &c.def) {
			return false
		}
	}

	// 1. New objects, empty.
	for _, name := range sortedKeys(want.chains) {
		if old.chains[name] == nil {
			def := want.chains[name].def
			tx.Add(&def)
			st.ObjectsAdded++
		}
	}
	for _, name := range sortedKeys(want.sets) {
		if old.sets[name] == nil {
			def := want.sets[name].def
			tx.Add(&def)
			st.ObjectsAdded++
		}
	}
	for _, name := range sortedKeys(want.maps) {
		if old.maps[name] == nil {
			def := want.maps[name].def
			tx.Add(&def)
			st.ObjectsAdded++
		}
	}
	// 2. New set members, before rules that look them up.
	for _, name := range sortedKeys(want.sets) {
		st.ElementsAdded += addSetElements(tx, want.sets[name], old.sets[name])
	}
	// 3. Chains whose rules changed: flush and refill.
	for _, name := range sortedKeys(want.chains) {
		c, o := want.chains[name], old.chains[name]
		if o != nil && slices.Equal(o.rules, c.rules) {
			continue
		}
		if o != nil && len(o.rules) > 0 {
			tx.Flush(&knftables.Chain{Name: name})
		}
		addRules(tx, name, c.rules)
		st.ChainsWritten++
	}
	// 4. Dispatch map members: a changed member is deleted, then re-added.
	for _, name := range sortedKeys(want.maps) {
		var oldElems []mapElem
		if o := old.maps[name]; o != nil {
			oldElems = o.elems
		}
		added, removed := diffSorted(oldElems, want.maps[name].elems, compareMapElem)
		for _, e := range removed {
			tx.Delete(&knftables.Element{Map: name, Key: []string{e.addr.String()}})
			st.ElementsDeleted++
		}
		for _, e := range added {
			tx.Add(mapElement(name, e))
			st.ElementsAdded++
		}
	}
	// 5. Set members no longer wanted, once no new rule depends on them.
	for _, name := range sortedKeys(want.sets) {
		if o := old.sets[name]; o != nil {
			st.ElementsDeleted += deleteSetElements(tx, o, want.sets[name])
		}
	}
	// 6. Chains no longer wanted: flush them all first, so that no rule of
	// one still jumps to another, then delete them.
	var gone []string
	for _, name := range sortedKeys(old.chains) {
		if want.chains[name] == nil {
			gone = append(gone, name)
			if len(old.chains[name].rules) > 0 {
				tx.Flush(&knftables.Chain{Name: name})
			}
		}
	}
	for _, name := range gone {
		tx.Delete(&knftables.Chain{Name: name})
		st.ObjectsDeleted++
	}
	// 7. Sets and maps no longer wanted: their last users are gone by now.
	for _, name := range sortedKeys(old.sets) {
		if want.sets[name] == nil {
			tx.Delete(&knftables.Set{Name: name})
			st.ObjectsDeleted++
		}
	}
	for _, name := range sortedKeys(old.maps) {
		if want.maps[name] == nil {
			tx.Delete(&knftables.Map{Name: name})
			st.ObjectsDeleted++
		}
	}
	return true
}

func addRules(tx *knftables.Transaction, chain string, rules []ruleText) {
	for _, r := range rules {
		rule := &knftables.Rule{Chain: chain, Rule: r.rule}
		if r.comment != "" {
			c := r.comment
			rule.Comment = &c
		}
		tx.Add(rule)
	}
}

func mapElement(name string, e mapElem) *knftables.Element {
	el := &knftables.Element{Map: name, Key: []string{e.addr.String()}, Value: []string{"jump " + e.chain}}
	if e.pod != "" {
		c := commentText(e.pod)
		el.Comment = &c
	}
	return el
}

// addSetElements adds the members of s that old (nil for a new set) lacks.
func addSetElements(tx *knftables.Transaction, s, old *setObj) int {
	if old == nil {
		old = &setObj{}
	}
	n := 0
	switch s.kind {
	case ir.AddrSet:
		added, _ := diffSorted(old.addrs, s.addrs, netip.Addr.Compare)
		for _, a := range added {
			tx.Add(&knftables.Element{Set: s.def.Name, Key: []string{a.String()}})
		}
		n = len(added)
	case ir.NetSet:
		added, _ := diffSorted(old.prefixes, s.prefixes, comparePrefix)
		for _, p := range added {
			tx.Add(&knftables.Element{Set: s.def.Name, Key: []string{p.String()}})
		}
		n = len(added)
	case ir.EndpointSet:
		added, _ := diffSorted(old.endpoints, s.endpoints, ir.CompareEndpoints)
		for _, e := range added {
			tx.Add(&knftables.Element{Set: s.def.Name, Key: endpointKey(e)})
		}
		n = len(added)
	}
	return n
}

// deleteSetElements deletes the members of old that s lacks.
func deleteSetElements(tx *knftables.Transaction, old, s *setObj) int {
	n := 0
	switch s.kind {
	case ir.AddrSet:
		_, removed := diffSorted(old.addrs, s.addrs, netip.Addr.Compare)
		for _, a := range removed {
			tx.Delete(&knftables.Element{Set: s.def.Name, Key: []string{a.String()}})
		}
		n = len(removed)
	case ir.NetSet:
		_, removed := diffSorted(old.prefixes, s.prefixes, comparePrefix)
		for _, p := range removed {
			tx.Delete(&knftables.Element{Set: s.def.Name, Key: []string{p.String()}})
		}
		n = len(removed)
	case ir.EndpointSet:
		_, removed := diffSorted(old.endpoints, s.endpoints, ir.CompareEndpoints)
		for _, e := range removed {
			tx.Delete(&knftables.Element{Set: s.def.Name, Key: endpointKey(e)})
		}
		n = len(removed)
	}
	return n
}

func endpointKey(e ir.Endpoint) []string {
	return []string{e.Addr.String(), protoName(e.Protocol), strconv.Itoa(int(e.Port))}
}

func compareMapElem(a, b mapElem) int {
	if c := a.addr.Compare(b.addr); c != 0 {
		return c
	}
	if a.chain != b.chain {
		if a.chain < b.chain {
			return -1
		}
		return 1
	}
	switch {
	case a.pod < b.pod:
		return -1
	case a.pod > b.pod:
		return 1
	}
	return 0
}

// diffSorted returns the elements of want missing from old (added) and those
// of old missing from want (removed). Both inputs are sorted by cmp.
func diffSorted[T any](old, want []T, cmp func(a, b T) int) (added, removed []T) {
	i, j := 0, 0
	for i < len(old) && j < len(want) {
		switch c := cmp(old[i], want[j]); {
		case c == 0:
			i++
			j++
		case c < 0:
			removed = append(removed, old[i])
			i++
		default:
			added = append(added, want[j])
			j++
		}
	}
	removed = append(removed, old[i:]...)
	added = append(added, want[j:]...)
	return added, removed
}

func sameSetDef(a, b *knftables.Set) bool {
	return a.Type == b.Type && slices.Equal(a.Flags, b.Flags) && ptrEqual(a.Comment, b.Comment)
}

func sameMapDef(a, b *knftables.Map) bool {
	return a.Type == b.Type && slices.Equal(a.Flags, b.Flags) && ptrEqual(a.Comment, b.Comment)
}

func sameChainDef(a, b *knftables.Chain) bool {
	return ptrEqual(a.Type, b.Type) && ptrEqual(a.Hook, b.Hook) && ptrEqual(a.Priority, b.Priority) &&
		ptrEqual(a.Policy, b.Policy) && ptrEqual(a.Comment, b.Comment)
}

func ptrEqual[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
