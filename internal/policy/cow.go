package policy

import (
	"maps"
	"net/netip"
)

// cowShards is how many parts a cowMap is split into.
const cowShards = 256

// cowMap is a map split into shards that snapshots share: a changed copy
// (edit) clones only the shards it writes, so deriving a snapshot after one
// change costs a shard, not the whole map. A cowMap that a snapshot holds is
// never written again.
type cowMap[K comparable, V any] struct {
	shard func(K) uint8
	parts [cowShards]map[K]V
}

func newCowMap[K comparable, V any](shard func(K) uint8) *cowMap[K, V] {
	return &cowMap[K, V]{shard: shard}
}

func (m *cowMap[K, V]) get(k K) (V, bool) {
	v, ok := m.parts[m.shard(k)][k]
	return v, ok
}

// cowEdit is a copy of a cowMap being written; done returns it.
type cowEdit[K comparable, V any] struct {
	m     *cowMap[K, V]
	owned [cowShards]bool
}

// edit returns a writable copy of m; m does not change.
func (m *cowMap[K, V]) edit() *cowEdit[K, V] {
	c := *m
	return &cowEdit[K, V]{m: &c}
}

func (e *cowEdit[K, V]) part(k K) map[K]V {
	i := e.m.shard(k)
	if !e.owned[i] {
		e.m.parts[i] = maps.Clone(e.m.parts[i])
		if e.m.parts[i] == nil {
			e.m.parts[i] = map[K]V{}
		}
		e.owned[i] = true
	}
	return e.m.parts[i]
}

func (e *cowEdit[K, V]) get(k K) (V, bool) { return e.m.get(k) }
func (e *cowEdit[K, V]) set(k K, v V)      { e.part(k)[k] = v }
func (e *cowEdit[K, V]) del(k K) {
	if _, ok := e.m.get(k); ok {
		delete(e.part(k), k)
	}
}
func (e *cowEdit[K, V]) done() *cowMap[K, V] { return e.m }

func addrShard(a netip.Addr) uint8 {
	b := a.As16()
	return b[15] ^ b[14]*7
}

func stringShard(s string) uint8 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return uint8(h ^ h>>8 ^ h>>16 ^ h>>24)
}
