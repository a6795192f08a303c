package watch

import (
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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
// listers; false when it cannot (then build the snapshot in full).
func (w *Watcher) deriveSnapshot(prev *policy.Snapshot, s *informerSet, dirty dirtyKeys, overlay cniView) (*policy.Snapshot, bool) {
	ch := policy.Changes{Pods: map[string]*policy.Pod{}, Namespaces: map[string]*policy.Namespace{}, Policies: map[string]*policy.Policy{}, Nodes: map[string]*policy.Node{}}
	for key := range dirty.pods {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		obj, err := s.pods.Pods(ns).Get(name)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, false
		}
		var p *policy.Pod
		if err == nil {
			p = normalizeOne(w.cache.pods, key, obj.UID, obj.ResourceVersion, func() *policy.Pod { return policy.PodFromAPI(obj) })
			p = overlay.apply([]*policy.Pod{p})[0]
		} else {
			delete(w.cache.pods, key)
		}
		ch.Pods[key] = p
	}
	for key := range dirty.namespaces {
		obj, err := s.nss.Get(key)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, false
		}
		var n *policy.Namespace
		if err == nil {
			n = normalizeOne(w.cache.nss, key, obj.UID, obj.ResourceVersion, func() *policy.Namespace { return policy.NamespaceFromAPI(obj) })
		} else {
			delete(w.cache.nss, key)
		}
		ch.Namespaces[key] = n
	}
	for key := range dirty.nodes {
		obj, err := s.nodes.Get(key)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, false
		}
		var n *policy.Node
		if err == nil {
			n = normalizeOne(w.cache.nodes, key, obj.UID, obj.ResourceVersion, func() *policy.Node { return policy.NodeFromAPI(obj) })
		} else {
			delete(w.cache.nodes, key)
		}
		ch.Nodes[key] = n
	}
	for key := range dirty.policies {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		obj, err := s.policies.NetworkPolicies(ns).Get(name)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, false
		}
		var p *policy.Policy
		if err == nil {
			p = normalizeOne(w.cache.policies, key, obj.UID, obj.ResourceVersion, func() *policy.Policy { return policy.PolicyFromAPI(obj) })
		} else {
			delete(w.cache.policies, key)
		}
		ch.Policies[key] = p
	}
	if dirty.clusterPolicies && s.cnps != nil {
		cnps, err := s.cnps.List(everything)
		if err != nil {
			return nil, false
		}
		ch.ClusterPolicies, ch.SetClusterPolicies = normalize(w.cache.cnps, cnps, cnpMeta, policy.ClusterPolicyFromAPI), true
	}
	snap := prev.With(ch)
	snap.CNIGeneration = overlay.generation
	return snap, true
}

// normalizeOne returns the cached normal form of the object key if it is of
// this uid and resourceVersion, else conv's, which it caches.
func normalizeOne[T any](m map[string]cached[T], key string, uid types.UID, rv string, conv func() T) T {
	if c, ok := m[key]; ok && c.uid == uid && c.rv == rv && uid != "" {
		return c.obj
	}
	obj := conv()
	m[key] = cached[T]{uid: uid, rv: rv, obj: obj}
	return obj
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

// Meta functions of the object kinds, for normalize.
func podMeta(o *corev1.Pod) (string, types.UID, string) {
	return o.Namespace + "/" + o.Name, o.UID, o.ResourceVersion
}
func nsMeta(o *corev1.Namespace) (string, types.UID, string) {
	return o.Name, o.UID, o.ResourceVersion
}
func nodeMeta(o *corev1.Node) (string, types.UID, string) { return o.Name, o.UID, o.ResourceVersion }
func policyMeta(o *networkingv1.NetworkPolicy) (string, types.UID, string) {
	return o.Namespace + "/" + o.Name, o.UID, o.ResourceVersion
}
