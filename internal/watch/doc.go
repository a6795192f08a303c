// Package watch keeps the cluster view one node needs — every pod (remote
// pods are peers), namespace and NetworkPolicy — with client-go shared
// informers, and turns it into immutable policy.Snapshots on demand. Events
// only signal that something changed; the syncer recomputes from the cache
// (level-triggered), so bursts coalesce.
package watch
