// Package watch keeps the cluster view one node needs — every pod (remote
// pods are peers), namespace and NetworkPolicy — with client-go shared
// informers, and turns it into immutable policy.Snapshots on demand. Events
// only signal that something changed; the syncer recomputes from the cache
// (level-triggered), so bursts coalesce.
//
// The informers' caches hold each object's normal form only (policy.Pod,
// ...), made once when the object arrives, with label sets and strings
// shared among pods (policy.Interner); lists are decoded and converted one
// item at a time (cache.go, stream.go). At 100,000 pods the view costs
// about 50 MB instead of about 340 MB.
//
// List reads the same objects once, with plain list calls, for commands
// that answer and exit (weft explain and weft matrix against a live
// cluster); NewSnapshot turns them, or objects read from manifest files,
// into a snapshot by the watcher's own conversions.
package watch
