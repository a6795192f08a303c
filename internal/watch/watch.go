package watch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersnetworkingv1 "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/internal/policy"
)

// Watcher watches Pods, Namespaces and NetworkPolicies.
type Watcher struct {
	log      *slog.Logger
	factory  informers.SharedInformerFactory
	pods     listerscorev1.PodLister
	nss      listerscorev1.NamespaceLister
	policies listersnetworkingv1.NetworkPolicyLister
	synced   []cache.InformerSynced
	changes  chan struct{}

	mu        sync.Mutex
	lastError error
	cache     normCache
}

// New returns a Watcher on client. Call Start, then WaitForSync.
func New(client kubernetes.Interface, log *slog.Logger) *Watcher {
	w := &Watcher{
		log:     log,
		factory: informers.NewSharedInformerFactory(client, 0),
		changes: make(chan struct{}, 1),
		cache:   newNormCache(),
	}
	podInf := w.factory.Core().V1().Pods()
	nsInf := w.factory.Core().V1().Namespaces()
	npInf := w.factory.Networking().V1().NetworkPolicies()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.signal() },
		UpdateFunc: func(any, any) { w.signal() },
		DeleteFunc: func(any) { w.signal() },
	}
	for name, inf := range map[string]cache.SharedIndexInformer{"pods": podInf.Informer(), "namespaces": nsInf.Informer(), "networkpolicies": npInf.Informer()} {
		_, _ = inf.AddEventHandler(handler)
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.mu.Lock()
			w.lastError = fmt.Errorf("list/watch %s: %w", name, err)
			w.mu.Unlock()
			log.Warn("API server watch failed; retrying, rules in place stay as they are", "resource", name, "error", err)
		})
		w.synced = append(w.synced, inf.HasSynced)
	}
	// Keep only what policy needs: 10,000 pods should not cost a gigabyte.
	_ = podInf.Informer().SetTransform(trimPod)
	w.pods, w.nss, w.policies = podInf.Lister(), nsInf.Lister(), npInf.Lister()
	return w
}

func (w *Watcher) signal() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

// Changes receives a value after the cluster view changed; many changes
// between two receives coalesce into one.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Start starts the informers.
func (w *Watcher) Start(ctx context.Context) { w.factory.Start(ctx.Done()) }

// WaitForSync blocks until the informers hold a full view, logging every
// interval while the API server cannot be reached.
func (w *Watcher) WaitForSync(ctx context.Context, interval time.Duration) error {
	done := make(chan bool, 1)
	go func() { done <- cache.WaitForCacheSync(ctx.Done(), w.synced...) }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case ok := <-done:
			if !ok {
				return ctx.Err()
			}
			return nil
		case <-t.C:
			w.mu.Lock()
			err := w.lastError
			w.mu.Unlock()
			w.log.Warn("still waiting for the API server; not ready, rules in place stay as they are", "error", err)
		}
	}
}

// Snapshot builds an immutable snapshot of the current view. Not safe for
// concurrent use: one goroutine (the syncer) calls it.
func (w *Watcher) Snapshot() (*policy.Snapshot, error) {
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	nss, err := w.nss.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	nps, err := w.policies.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return w.cache.snapshot(nss, pods, nps), nil
}

// normCache keeps normalised objects by UID and resourceVersion, so a sync
// after one change normalises one object, not ten thousand.
type normCache struct {
	pods     map[types.UID]cached[*policy.Pod]
	nss      map[types.UID]cached[*policy.Namespace]
	policies map[types.UID]cached[*policy.Policy]
}

type cached[T any] struct {
	rv  string
	obj T
}

func newNormCache() normCache {
	return normCache{
		pods:     map[types.UID]cached[*policy.Pod]{},
		nss:      map[types.UID]cached[*policy.Namespace]{},
		policies: map[types.UID]cached[*policy.Policy]{},
	}
}

// normalize returns the cached normal form of each object, refreshing what
// changed and forgetting what is gone.
func normalize[K any, T any](m map[types.UID]cached[T], objs []K, meta func(K) (types.UID, string), conv func(K) T) []T {
	out := make([]T, 0, len(objs))
	seen := make(map[types.UID]bool, len(objs))
	for _, o := range objs {
		uid, rv := meta(o)
		seen[uid] = true
		c, ok := m[uid]
		if !ok || c.rv != rv || uid == "" {
			c = cached[T]{rv: rv, obj: conv(o)}
			m[uid] = c
		}
		out = append(out, c.obj)
	}
	for uid := range m {
		if !seen[uid] {
			delete(m, uid)
		}
	}
	return out
}

func (c *normCache) snapshot(nss []*corev1.Namespace, pods []*corev1.Pod, nps []*networkingv1.NetworkPolicy) *policy.Snapshot {
	return policy.BuildSnapshot(
		normalize(c.nss, nss, func(o *corev1.Namespace) (types.UID, string) { return o.UID, o.ResourceVersion }, policy.NamespaceFromAPI),
		normalize(c.pods, pods, func(o *corev1.Pod) (types.UID, string) { return o.UID, o.ResourceVersion }, policy.PodFromAPI),
		normalize(c.policies, nps, func(o *networkingv1.NetworkPolicy) (types.UID, string) { return o.UID, o.ResourceVersion }, policy.PolicyFromAPI),
	)
}

// trimPod drops every field of a pod that policy does not read.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{}
	out.Name, out.Namespace, out.UID, out.ResourceVersion, out.Labels = p.Name, p.Namespace, p.UID, p.ResourceVersion, p.Labels
	out.DeletionTimestamp = p.DeletionTimestamp
	out.Spec.NodeName, out.Spec.HostNetwork = p.Spec.NodeName, p.Spec.HostNetwork
	for _, c := range p.Spec.Containers {
		if len(c.Ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	out.Status.Phase, out.Status.PodIP, out.Status.PodIPs, out.Status.HostIP = p.Status.Phase, p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP
	return out, nil
}
