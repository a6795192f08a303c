package watch

import (
	"maps"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/internal/policy"
)

// fullEvery is how often the watcher builds its snapshot anew from every
// object instead of deriving it from the one before: a safety net that
// costs one full compile now and then, never needed while the derivation is
// right (the compile package's differential tests hold it to that).
const fullEvery = 10 * time.Minute

// dirtyKeys are the objects that changed since the last snapshot, by kind
// and key, as the informers' event handlers saw them.
type dirtyKeys struct {
	pods, namespaces, nodes, policies map[string]bool
	clusterPolicies                   bool
}

func newDirtyKeys() dirtyKeys {
	return dirtyKeys{pods: map[string]bool{}, namespaces: map[string]bool{}, nodes: map[string]bool{}, policies: map[string]bool{}}
}

// dirtyHandler records the key of each object an informer reports into the
// set mark returns (under w.mu), then signals a change.
func (w *Watcher) dirtyHandler(mark func(d *dirtyKeys, key string)) cache.ResourceEventHandler {
	record := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		w.mu.Lock()
		if err != nil {
			w.fullNext = true // an object without a key: read everything
		} else {
			mark(&w.dirty, key)
		}
		w.mu.Unlock()
		w.signal()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
		DeleteFunc: record,
	}
}

// deriveSnapshot returns prev with the objects of dirty read again from s's
// caches; false when it cannot (then build the snapshot in full).
func (w *Watcher) deriveSnapshot(prev *policy.Snapshot, s *informerSet, dirty dirtyKeys, overlay cniView) (*policy.Snapshot, bool) {
	ch := policy.Changes{Pods: map[string]*policy.Pod{}, Namespaces: map[string]*policy.Namespace{}, Policies: map[string]*policy.Policy{}, Nodes: map[string]*policy.Node{}}
	ok := readChanged(s.pods, dirty.pods, ch.Pods) && readChanged(s.nss, dirty.namespaces, ch.Namespaces) &&
		readChanged(s.nodes, dirty.nodes, ch.Nodes) && readChanged(s.policies, dirty.policies, ch.Policies)
	if !ok {
		return nil, false
	}
	for key, p := range ch.Pods {
		if p != nil {
			ch.Pods[key] = overlay.apply([]*policy.Pod{p})[0]
		}
	}
	if dirty.clusterPolicies && s.cnps != nil {
		ch.ClusterPolicies, ch.SetClusterPolicies = normalForms[*policy.ClusterPolicy](s.cnps), true
	}
	snap := prev.With(ch)
	snap.CNIGeneration = overlay.generation
	return snap, true
}

// readChanged puts the normal form of each object of keys that store holds
// into out, nil for those it does not hold (deleted); false when the store
// cannot be read.
func readChanged[T any](store cache.Store, keys map[string]bool, out map[string]T) bool {
	for key := range keys {
		obj, exists, err := store.GetByKey(key)
		if err != nil {
			return false
		}
		var normal T
		if exists {
			c, ok := obj.(*cached[T])
			if !ok {
				return false
			}
			normal = c.normal
		}
		out[key] = normal
	}
	return true
}

// overlayKeys are the pods whose addresses a CNI view changes.
func (v cniView) keys() map[string]bool {
	out := make(map[string]bool, len(v.added)+len(v.released))
	for k := range v.added {
		out[k] = true
	}
	for _, k := range v.released {
		out[k] = true
	}
	return out
}

// overlayChanged returns the pods whose addresses differ between two CNI
// views: any pod either names.
func overlayChanged(a, b cniView) map[string]bool {
	out := a.keys()
	maps.Copy(out, b.keys())
	return out
}
