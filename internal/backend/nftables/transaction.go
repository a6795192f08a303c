package nftables

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/ir"
)

// writeFull writes a transaction that replaces whatever table inet weft holds
// with d. The add before the delete makes the delete succeed when there is no
// table yet; the kernel commits the whole batch at once, so packets see either
// the old table or the new one, never none.
func writeFull(tx *knftables.Transaction, d *desired, st *SyncStats, batch int) {
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
		added, _ := setKeyDiff(nil, d.sets[name])
		writeSetElements(tx, false, name, added, batch)
		st.ElementsAdded += len(added)
	}
	for _, name := range sortedKeys(d.chains) {
		addRules(tx, name, d.chains[name].rules)
		st.ChainsWritten++
	}
	for _, name := range sortedKeys(d.maps) {
		writeMapElements(tx, false, name, d.maps[name].elems, batch)
		st.ElementsAdded += len(d.maps[name].elems)
	}
}

// writeIncremental writes the transaction that turns old into want. It
// returns false, having written nothing useful, when an object's definition
// changed (a set's type, a base chain's hook): then only a full sync can
// replace it atomically.
func writeIncremental(tx *knftables.Transaction, old, want *desired, st *SyncStats, batch int) bool {
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
	// 2. Set members: those no longer wanted go first, since an interval
	// set refuses a new element that overlaps an old one (a port range that
	// grew, a prefix that shrank); then the new ones, before rules that look
	// them up. The kernel applies the whole transaction at once, so no packet
	// sees the set in between.
	for _, name := range sortedKeys(want.sets) {
		added, removed := setKeyDiff(old.sets[name], want.sets[name])
		writeSetElements(tx, true, name, removed, batch)
		st.ElementsDeleted += len(removed)
		writeSetElements(tx, false, name, added, batch)
		st.ElementsAdded += len(added)
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
		writeMapElements(tx, true, name, removed, batch)
		writeMapElements(tx, false, name, added, batch)
		st.ElementsDeleted += len(removed)
		st.ElementsAdded += len(added)
	}
	// 5. Chains no longer wanted: flush them all first, so that no rule of
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
	// 6. Sets and maps no longer wanted: their last users are gone by now.
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

// writeMapElements adds (or deletes) dispatch map elements, batch of them
// per nft command, as writeSetElements does. In a batch every element but
// the last travels in the Key, with its comment and value:
// `{ a comment "x/p" : jump g1, b comment "x/q" : jump g2 }`.
func writeMapElements(tx *knftables.Transaction, del bool, name string, elems []mapElem, batch int) {
	batch = max(batch, 1)
	for len(elems) > 0 {
		n := min(batch, len(elems))
		chunk := elems[:n]
		elems = elems[n:]
		if del {
			keys := make([]string, n)
			for i, e := range chunk {
				keys[i] = e.addr.String()
			}
			tx.Delete(&knftables.Element{Map: name, Key: []string{strings.Join(keys, ", ")}})
			continue
		}
		var lead strings.Builder
		for _, e := range chunk[:n-1] {
			lead.WriteString(e.addr.String())
			if e.pod != "" {
				lead.WriteString(` comment "` + commentText(e.pod) + `"`)
			}
			lead.WriteString(" : jump " + e.chain + ", ")
		}
		last := chunk[n-1]
		el := &knftables.Element{Map: name, Key: []string{lead.String() + last.addr.String()}, Value: []string{"jump " + last.chain}}
		if last.pod != "" {
			c := commentText(last.pod)
			el.Comment = &c
		}
		tx.Add(el)
	}
}

// setKeyDiff returns the element keys of the members of want that old (nil
// for a new set) lacks, and of those of old that want lacks.
func setKeyDiff(old, want *setObj) (added, removed [][]string) {
	if old == nil {
		old = &setObj{}
	}
	switch want.kind {
	case ir.AddrSet:
		add, rm := diffSorted(old.addrs, want.addrs, netip.Addr.Compare)
		return mapKeys(add, addrKey), mapKeys(rm, addrKey)
	case ir.NetSet:
		add, rm := diffSorted(old.prefixes, want.prefixes, ir.ComparePrefixes)
		return mapKeys(add, prefixKey), mapKeys(rm, prefixKey)
	case ir.EndpointSet:
		add, rm := diffSorted(old.endpoints, want.endpoints, ir.CompareEndpoints)
		return mapKeys(add, endpointKey), mapKeys(rm, endpointKey)
	case anyNets:
		add, rm := diffSorted(old.prefixes, want.prefixes, ir.ComparePrefixes)
		return mapKeys(add, netKeys), mapKeys(rm, netKeys)
	case allowBoxes:
		add, rm := diffSorted(old.boxes, want.boxes, ir.CompareBoxes)
		return mapKeys(add, boxKey), mapKeys(rm, boxKey)
	case selfPairs:
		add, rm := diffSorted(old.addrs, want.addrs, netip.Addr.Compare)
		return mapKeys(add, pairKey), mapKeys(rm, pairKey)
	}
	return nil, nil
}

func mapKeys[T any](xs []T, key func(T) []string) [][]string {
	out := make([][]string, len(xs))
	for i, x := range xs {
		out[i] = key(x)
	}
	return out
}

func addrKey(a netip.Addr) []string     { return []string{a.String()} }
func pairKey(a netip.Addr) []string     { return []string{a.String(), a.String()} }
func prefixKey(p netip.Prefix) []string { return []string{p.String()} }

// writeSetElements adds (or deletes) set elements, batch of them per nft
// command. nft spends as much on a command as on the element in it, so a
// full sync at 10,000 pods takes half the time with batches. knftables has no
// multi-element command: a batch travels as one Element whose Key is the
// elements' list ("a, b, c"), which nft reads exactly as `{ a, b, c }`. The
// fake would take that for one element, so the fake runs with batch 1.
func writeSetElements(tx *knftables.Transaction, del bool, set string, keys [][]string, batch int) {
	op := tx.Add
	if del {
		op = tx.Delete
	}
	if batch <= 1 {
		for _, k := range keys {
			op(&knftables.Element{Set: set, Key: k})
		}
		return
	}
	for len(keys) > 0 {
		n := min(batch, len(keys))
		items := make([]string, n)
		for i, k := range keys[:n] {
			items[i] = strings.Join(k, " . ")
		}
		op(&knftables.Element{Set: set, Key: []string{strings.Join(items, ", ")}})
		keys = keys[n:]
	}
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
	if len(old) == len(want) && (len(old) == 0 || &old[0] == &want[0]) {
		return nil, nil // the same slice: a set the compiler kept as it was
	}
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
	return a.Type == b.Type && slices.Equal(a.Flags, b.Flags) && ptrEqual(a.Comment, b.Comment) &&
		ptrEqual(a.Timeout, b.Timeout) && ptrEqual(a.Size, b.Size)
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
