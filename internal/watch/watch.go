package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	npainformers "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions"

	"github.com/weftnet/weft/internal/policy"
)

// Config tunes a Watcher. Zero values take the defaults.
type Config struct {
	// ProbeInterval is how often the API server is probed (default 1s). A
	// failed probe marks the view stale; the first probe that succeeds after
	// that lists everything again, so weft catches up at once instead of
	// waiting out client-go's watch backoff (up to 30 s).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (default 2s).
	ProbeTimeout time.Duration
	// ClusterPolicies, when set, is the client for ClusterNetworkPolicies
	// (policy.networking.k8s.io/v1alpha2); they are watched while the API
	// server serves that resource (its CRD is installed), looked for every
	// CRDInterval (default 10s).
	ClusterPolicies npaclient.Interface
	CRDInterval     time.Duration
}

// Watcher watches Pods, Namespaces, Nodes and NetworkPolicies, and merges in
// what the CNI hook reports (see CNIAdd and CNIDel).
type Watcher struct {
	client  kubernetes.Interface
	log     *slog.Logger
	cfg     Config
	changes chan struct{}

	mu        sync.Mutex
	inf       *informerSet // the view Snapshot reads
	health    Health
	lastErr   error
	forbidden map[string]forbiddenWatch // resource → the last refusal to list or watch it
	cni       cniState
	restarts  atomic.Int64

	// interner shares label sets and strings among the pods and
	// namespaces the informers keep.
	interner *policy.Interner
	// What changed since the last snapshot (under mu); fullNext asks for
	// the next snapshot to be built from every object.
	dirty    dirtyKeys
	fullNext bool
	// The last snapshot and what it was built from (Snapshot's goroutine).
	last        *policy.Snapshot
	lastInf     *informerSet
	lastOverlay cniView
	lastFull    time.Time

	regenMu   sync.Mutex      // one new generation of informers at a time
	cnpServed atomic.Bool     // the API server serves ClusterNetworkPolicies (last look)
	cnpSaid   string          // what was last said about them: "absent", "present"
	ties      map[string]bool // priority ties already warned about
}

// relistTimeout bounds a re-list after an outage.
const relistTimeout = time.Minute

// forbiddenWatch is the API server's last refusal to let weft list or watch
// a resource: weft may not see changes of it, though it answers.
type forbiddenWatch struct {
	at  time.Time
	err error
}

// forbiddenFor is how long a refusal keeps the view stale: client-go
// retries a refused watch after at most 30 s (plus jitter), so a refusal
// older than this was followed by a watch that worked.
const forbiddenFor = 2 * time.Minute

// informerSet is one generation of informers: after an API outage weft
// starts a new set, which lists everything again, and drops the old one.
// Their caches hold the normal form of each object (see cached).
type informerSet struct {
	factory  informers.SharedInformerFactory
	cancel   context.CancelFunc
	pods     cache.Store
	nss      cache.Store
	nodes    cache.Store
	policies cache.Store
	synced   []cache.InformerSynced
	// cnps is nil when this generation does not watch ClusterNetworkPolicies.
	cnpFactory npainformers.SharedInformerFactory
	cnps       cache.Store
}

// Health is whether the watcher's view is current.
type Health struct {
	// Synced is set once the first full view was listed.
	Synced bool
	// Since is when the API server stopped answering (zero while it answers).
	Since time.Time
	// Err is the last error talking to the API server while it does not answer.
	Err error
}

// New returns a Watcher on client. Call Start, then WaitForSync.
func New(client kubernetes.Interface, log *slog.Logger, cfg ...Config) *Watcher {
	w := &Watcher{
		client:    client,
		log:       log,
		changes:   make(chan struct{}, 1),
		interner:  policy.NewInterner(),
		dirty:     newDirtyKeys(),
		cni:       newCNIState(),
		forbidden: map[string]forbiddenWatch{},
	}
	if len(cfg) > 0 {
		w.cfg = cfg[0]
	}
	if w.cfg.ProbeInterval == 0 {
		w.cfg.ProbeInterval = time.Second
	}
	if w.cfg.ProbeTimeout == 0 {
		w.cfg.ProbeTimeout = 2 * time.Second
	}
	return w
}

// newInformers builds (but does not start) a generation of informers.
func (w *Watcher) newInformers() *informerSet {
	s := &informerSet{factory: informers.NewSharedInformerFactory(w.client, 0)}
	c, in := w.client, w.interner
	core, networking := c.CoreV1().RESTClient(), c.NetworkingV1().RESTClient()
	podInf := s.factory.InformerFor(&corev1.Pod{}, func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
		return cachedInformer(c, &corev1.Pod{},
			builtinList(core, "pods", func() *corev1.Pod { return &corev1.Pod{} }, c.CoreV1().Pods("").List),
			c.CoreV1().Pods("").Watch, in.PodFromAPI)
	})
	nsInf := s.factory.InformerFor(&corev1.Namespace{}, func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
		return cachedInformer(c, &corev1.Namespace{},
			builtinList(core, "namespaces", func() *corev1.Namespace { return &corev1.Namespace{} }, c.CoreV1().Namespaces().List),
			c.CoreV1().Namespaces().Watch,
			func(ns *corev1.Namespace) *policy.Namespace { return in.NamespaceFromAPI(trimNamespace(ns)) })
	})
	nodeInf := s.factory.InformerFor(&corev1.Node{}, func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
		return cachedInformer(c, &corev1.Node{},
			builtinList(core, "nodes", func() *corev1.Node { return &corev1.Node{} }, c.CoreV1().Nodes().List),
			c.CoreV1().Nodes().Watch, policy.NodeFromAPI)
	})
	npInf := s.factory.InformerFor(&networkingv1.NetworkPolicy{}, func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
		return cachedInformer(c, &networkingv1.NetworkPolicy{},
			builtinList(networking, "networkpolicies", func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, c.NetworkingV1().NetworkPolicies("").List),
			c.NetworkingV1().NetworkPolicies("").Watch, policy.PolicyFromAPI)
	})
	watched := map[string]cache.SharedIndexInformer{"pods": podInf, "namespaces": nsInf, "nodes": nodeInf, "networkpolicies": npInf}
	if cnp := w.cfg.ClusterPolicies; cnp != nil && w.cnpServed.Load() {
		s.cnpFactory = npainformers.NewSharedInformerFactory(cnp, 0)
		cnpInf := s.cnpFactory.InformerFor(&npav1alpha2.ClusterNetworkPolicy{}, func(npaclient.Interface, time.Duration) cache.SharedIndexInformer {
			return cachedInformer(cnp, &npav1alpha2.ClusterNetworkPolicy{},
				typedList[*npav1alpha2.ClusterNetworkPolicy](cnp.PolicyV1alpha2().ClusterNetworkPolicies().List),
				cnp.PolicyV1alpha2().ClusterNetworkPolicies().Watch,
				policy.ClusterPolicyFromAPI)
		})
		watched["clusternetworkpolicies"] = cnpInf
		s.cnps = cnpInf.GetStore()
	}
	marks := map[string]func(d *dirtyKeys, key string){
		"pods":                   func(d *dirtyKeys, key string) { d.pods[key] = true },
		"namespaces":             func(d *dirtyKeys, key string) { d.namespaces[key] = true },
		"nodes":                  func(d *dirtyKeys, key string) { d.nodes[key] = true },
		"networkpolicies":        func(d *dirtyKeys, key string) { d.policies[key] = true },
		"clusternetworkpolicies": func(d *dirtyKeys, _ string) { d.clusterPolicies = true },
	}
	for name, inf := range watched {
		_, _ = inf.AddEventHandler(w.dirtyHandler(marks[name]))
		_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
			if ctx.Err() != nil {
				return // this generation is being dropped
			}
			w.mu.Lock()
			w.lastErr = fmt.Errorf("list/watch %s: %w", name, err)
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				w.forbidden[name] = forbiddenWatch{at: time.Now(), err: err}
			}
			w.mu.Unlock()
			w.log.Warn("API server watch failed; retrying, rules in place stay as they are", "resource", name, "error", err)
		})
		s.synced = append(s.synced, inf.HasSynced)
	}
	s.pods, s.nss, s.nodes, s.policies = podInf.GetStore(), nsInf.GetStore(), nodeInf.GetStore(), npInf.GetStore()
	return s
}

func (s *informerSet) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.factory.Start(ctx.Done())
	if s.cnpFactory != nil {
		s.cnpFactory.Start(ctx.Done())
	}
}

func (s *informerSet) stop() {
	s.cancel()
	go s.factory.Shutdown() // waits for the informers' goroutines; nobody needs to wait for that
	if s.cnpFactory != nil {
		go s.cnpFactory.Shutdown()
	}
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

// Start starts the informers and the API server probe.
func (w *Watcher) Start(ctx context.Context) {
	if w.cfg.ClusterPolicies != nil {
		w.lookForCRD(ctx)
	}
	s := w.newInformers()
	s.start(ctx)
	w.mu.Lock()
	w.inf = s
	w.mu.Unlock()
	go w.probeLoop(ctx)
	if w.cfg.ClusterPolicies != nil {
		go w.crdLoop(ctx)
	}
}

// cnpGroupVersion and cnpResource are what the ClusterNetworkPolicy CRD
// serves.
const (
	cnpGroupVersion = "policy.networking.k8s.io/v1alpha2"
	cnpResource     = "clusternetworkpolicies"
)

// ServesClusterPolicies asks the API server's discovery whether it serves
// ClusterNetworkPolicies (their CRD is installed and established). An error
// means it could not tell.
func ServesClusterPolicies(ctx context.Context, client kubernetes.Interface) (bool, error) {
	// JSON whatever the client prefers (weft's asks for protobuf).
	body, err := client.Discovery().RESTClient().Get().AbsPath("/apis/"+cnpGroupVersion).SetHeader("Accept", "application/json").DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return false, fmt.Errorf("discovery of %s: %w", cnpGroupVersion, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == cnpResource }), nil
}

// lookForCRD asks the API server whether it serves ClusterNetworkPolicies
// and records the answer; it says so when the answer changes. It reports
// whether the answer changed. An error (the server away) changes nothing.
func (w *Watcher) lookForCRD(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.ProbeTimeout)
	defer cancel()
	served, err := ServesClusterPolicies(ctx, w.client)
	if err != nil {
		w.log.Debug("cannot tell whether ClusterNetworkPolicies are served", "error", err)
		return false
	}
	changed := w.cnpServed.Swap(served) != served
	said := "absent"
	if served {
		said = "present"
	}
	if said != w.cnpSaid {
		if served {
			w.log.Info("ClusterNetworkPolicies are served (" + cnpGroupVersion + "): enforcing their Admin and Baseline tiers around NetworkPolicy")
		} else {
			w.log.Info("the ClusterNetworkPolicy CRD (" + cnpGroupVersion + ") is not installed: enforcing NetworkPolicy alone; ClusterNetworkPolicies are picked up when it appears, without a restart")
		}
		w.cnpSaid = said
	}
	return changed
}

// crdLoop looks for the ClusterNetworkPolicy CRD every CRDInterval; when it
// appears or goes, a new generation of informers (with or without them)
// lists everything and replaces the old one.
func (w *Watcher) crdLoop(ctx context.Context) {
	every := w.cfg.CRDInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.lookForCRD(ctx) {
			w.regenerate(ctx, "the ClusterNetworkPolicy CRD appeared or went")
		}
	}
}

// WaitForSync blocks until the informers hold a full view, logging every
// interval while the API server cannot be reached.
func (w *Watcher) WaitForSync(ctx context.Context, interval time.Duration) error {
	// The informers of the current generation: a generation may be
	// replaced meanwhile (the ClusterNetworkPolicy CRD appeared or went),
	// and the dropped one never syncs.
	synced := func() bool {
		w.mu.Lock()
		fs := w.inf.synced
		w.mu.Unlock()
		for _, f := range fs {
			if !f() {
				return false
			}
		}
		return true
	}
	start := time.Now()
	poll := time.NewTicker(10 * time.Millisecond) // start-up waits on this
	defer poll.Stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if synced() {
			w.mu.Lock()
			w.health.Synced = true
			w.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		case <-t.C:
			w.mu.Lock()
			err := w.lastErr
			if err == nil {
				err = w.health.Err
			}
			w.mu.Unlock()
			if err == nil {
				// It answers: a large cluster takes a while to list.
				w.log.Info("still listing the cluster from the API server; not ready, rules in place stay as they are", "waited", time.Since(start).Round(time.Second))
				continue
			}
			w.log.Warn("still waiting for the API server; not ready, rules in place stay as they are", "error", err)
		}
	}
}

// Health reports whether the view is current.
func (w *Watcher) Health() Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.health
}

// Stale returns why the view may be out of date ("" while the API server
// answers).
func (w *Watcher) Stale() string {
	h := w.Health()
	if h.Since.IsZero() {
		w.mu.Lock()
		defer w.mu.Unlock()
		var refused []string
		for name, f := range w.forbidden {
			if time.Since(f.at) < forbiddenFor {
				refused = append(refused, fmt.Sprintf("%s (%v)", name, f.err))
			}
		}
		if len(refused) == 0 {
			return ""
		}
		slices.Sort(refused)
		return fmt.Sprintf("the API server refuses to let weft list or watch %s: changes may go unseen; grant the verbs of deploy/rbac.yaml", strings.Join(refused, ", "))
	}
	return fmt.Sprintf("API server unreachable since %s (%s): %v; the rules in place stay as they are",
		h.Since.UTC().Format(time.RFC3339), time.Since(h.Since).Round(time.Second), h.Err)
}

// Relists returns how many times the watcher listed everything again after
// the API server came back.
func (w *Watcher) Relists() int64 { return w.restarts.Load() }

// probeLoop asks the API server every ProbeInterval whether it is there. A
// failure marks the view stale (Health.Since); the first success after that
// starts a new generation of informers, which list everything at once.
func (w *Watcher) probeLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		down := !w.health.Since.IsZero()
		if err != nil {
			if !down {
				w.health.Since = time.Now()
				w.log.Warn("API server unreachable; rules in place stay as they are, not ready until it answers", "error", err)
			}
			w.health.Err = err
			w.mu.Unlock()
			continue
		}
		w.mu.Unlock()
		if down {
			w.relist(ctx)
		}
	}
}

func (w *Watcher) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.ProbeTimeout)
	defer cancel()
	if _, err := w.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("probe API server /readyz: %w", err)
	}
	return nil
}

// relist replaces the informers with a new generation once it has listed
// everything; until then Snapshot reads the old view.
func (w *Watcher) relist(ctx context.Context) {
	w.regenerate(ctx, "")
}

// regenerate starts a new generation of informers and, once it has listed
// everything, makes it the view; why is "" after an API outage, else what
// changed.
func (w *Watcher) regenerate(ctx context.Context, why string) {
	w.regenMu.Lock()
	defer w.regenMu.Unlock()
	start := time.Now()
	s := w.newInformers()
	s.start(ctx)
	// Bounded: should the server go away again meanwhile, the probe loop
	// goes on and tries again at its next success.
	listCtx, cancel := context.WithTimeout(ctx, relistTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(listCtx.Done(), s.synced...) {
		s.stop()
		return
	}
	w.mu.Lock()
	old := w.inf
	w.inf = s
	outage := time.Since(w.health.Since)
	// The dropped generation's watch errors are no longer the view's.
	w.lastErr = nil
	if why == "" {
		w.health.Since, w.health.Err = time.Time{}, nil
	}
	w.mu.Unlock()
	old.stop()
	if why == "" {
		w.restarts.Add(1)
		w.log.Info("API server answers again; listed everything anew", "outage", outage.Round(time.Millisecond), "list", time.Since(start).Round(time.Millisecond))
	} else {
		w.log.Info("watching anew: "+why, "list", time.Since(start).Round(time.Millisecond))
	}
	w.signal()
}

// Snapshot builds an immutable snapshot of the current view: derived from
// the one before by the objects that changed since (their cost, not the
// cluster's), or built from every object at the start, after the informers
// were started anew, and every fullEvery. Not safe for concurrent use: one
// goroutine (the syncer) calls it.
func (w *Watcher) Snapshot() (*policy.Snapshot, error) {
	w.mu.Lock()
	s := w.inf
	dirty, full := w.dirty, w.fullNext
	w.dirty, w.fullNext = newDirtyKeys(), false
	overlay := w.cni.view()
	w.mu.Unlock()
	if s == nil {
		return nil, errors.New("watcher not started")
	}
	if !full && w.last != nil && w.lastInf == s && time.Since(w.lastFull) < fullEvery {
		if overlay.generation != w.lastOverlay.generation {
			for key := range overlayChanged(w.lastOverlay, overlay) {
				dirty.pods[key] = true
			}
		}
		if snap, ok := w.deriveSnapshot(w.last, s, dirty, overlay); ok {
			w.last, w.lastOverlay = snap, overlay
			w.warnTies(snap)
			return snap, nil
		}
	}
	var cnps []*policy.ClusterPolicy
	if s.cnps != nil {
		cnps = normalForms[*policy.ClusterPolicy](s.cnps)
	}
	snap := buildSnapshot(normalForms[*policy.Namespace](s.nss), normalForms[*policy.Pod](s.pods), normalForms[*policy.Node](s.nodes),
		normalForms[*policy.Policy](s.policies), cnps, overlay)
	w.last, w.lastInf, w.lastOverlay, w.lastFull = snap, s, overlay, time.Now()
	w.warnTies(snap)
	return snap, nil
}

// warnTies warns once about each pair of cluster policies of one tier with
// the same priority: the API leaves their order to the implementation.
func (w *Watcher) warnTies(snap *policy.Snapshot) {
	for _, t := range snap.PriorityTies() {
		key := t[0] + "\x00" + t[1]
		if w.ties[key] {
			continue
		}
		if w.ties == nil {
			w.ties = map[string]bool{}
		}
		w.ties[key] = true
		w.log.Warn("two ClusterNetworkPolicies of one tier have the same priority: the API leaves their order open; weft applies them by name (give them different priorities to say which comes first)",
			"first", t[0], "second", t[1])
	}
}

// buildSnapshot is the one place where normalised objects become a
// policy.Snapshot built from every object: the watcher's view and one-shot
// lists (NewSnapshot) alike.
func buildSnapshot(nss []*policy.Namespace, pods []*policy.Pod, nodes []*policy.Node, nps []*policy.Policy, cnps []*policy.ClusterPolicy, overlay cniView) *policy.Snapshot {
	snap := policy.BuildSnapshot(nss, overlay.apply(pods), nps)
	snap.AddNodes(nodes...)
	snap.AddClusterPolicies(cnps...)
	snap.CNIGeneration = overlay.generation
	return snap
}

// namespaceAnnotations are the namespace annotations weft reads.
var namespaceAnnotations = []string{policy.EnforcementAnnotation, policy.LegacyIsolationAnnotation}

// trimNamespace keeps a namespace's name, labels and the annotations weft
// reads (namespaceAnnotations).
func trimNamespace(ns *corev1.Namespace) *corev1.Namespace {
	out := &corev1.Namespace{}
	out.Name, out.UID, out.ResourceVersion, out.Labels = ns.Name, ns.UID, ns.ResourceVersion, ns.Labels
	for _, key := range namespaceAnnotations {
		if v, ok := ns.Annotations[key]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[key] = v
		}
	}
	return out
}

// cniState is what the CNI hook reported: the addresses of pods whose
// sandbox exists (ADD), which may not be in their status yet, and addresses
// that pods released (DEL) while their objects may still name them.
type cniState struct {
	generation uint64
	added      map[string]cniPod       // by "namespace/name"
	released   map[netip.Addr]string   // address → the pod that released it
	byID       map[string]string       // container ID → pod key, for DEL without addresses
	addrsOfID  map[string][]netip.Addr // container ID → addresses reported at ADD
}

type cniPod struct {
	containerID string
	ips         []netip.Addr
	at          time.Time
}

// cniForgetAfter is how long weft keeps what ADD said about a pod the API
// does not show: the watch may be a little behind the kubelet, never this
// much.
const cniForgetAfter = 2 * time.Minute

func newCNIState() cniState {
	return cniState{added: map[string]cniPod{}, released: map[netip.Addr]string{}, byID: map[string]string{}, addrsOfID: map[string][]netip.Addr{}}
}

// cniView is an immutable copy of cniState for one snapshot.
type cniView struct {
	generation uint64
	added      map[string]cniPod
	released   map[netip.Addr]string
}

func (s *cniState) view() cniView {
	v := cniView{generation: s.generation, added: make(map[string]cniPod, len(s.added)), released: make(map[netip.Addr]string, len(s.released))}
	for k, p := range s.added {
		v.added[k] = p
	}
	for a, k := range s.released {
		v.released[a] = k
	}
	return v
}

// apply returns pods with the CNI hook's knowledge merged in: a pod's
// addresses reported at ADD replace those of its status (the sandbox is
// newer than the status), and addresses a pod released are no longer its.
// Pods it changes are copies; the cached originals stay as they are.
func (v cniView) apply(pods []*policy.Pod) []*policy.Pod {
	if len(v.added) == 0 && len(v.released) == 0 {
		return pods
	}
	for i, p := range pods {
		key := p.Key()
		ips := p.IPs
		if a, ok := v.added[key]; ok && !p.HostNetwork && !p.Finished {
			ips = a.ips
		}
		kept := ips
		if len(v.released) > 0 {
			kept = slices.DeleteFunc(slices.Clone(ips), func(ip netip.Addr) bool { return v.released[ip] == key })
		}
		if !slices.Equal(kept, p.IPs) {
			c := *p
			c.IPs = kept
			pods[i] = &c
		}
	}
	return pods
}

// CNIAdd records that the CNI hook set up pod namespace/name with ips, and
// returns the generation a snapshot must have to include it.
func (w *Watcher) CNIAdd(namespace, name, containerID string, ips []netip.Addr) uint64 {
	key := namespace + "/" + name
	w.mu.Lock()
	s := &w.cni
	if old, ok := s.added[key]; ok && old.containerID != containerID {
		delete(s.byID, old.containerID)
		delete(s.addrsOfID, old.containerID)
	}
	s.added[key] = cniPod{containerID: containerID, ips: slices.Clone(ips), at: time.Now()}
	s.byID[containerID] = key
	s.addrsOfID[containerID] = slices.Clone(ips)
	for _, ip := range ips {
		// This pod's own release of the address is void now; another
		// pod's stands: the address is no longer that pod's, whatever its
		// object still says.
		if s.released[ip] == key {
			delete(s.released, ip)
		}
	}
	s.generation++
	gen := s.generation
	w.mu.Unlock()
	w.signal()
	return gen
}

// CNIDel records that pod namespace/name (container containerID) released
// ips (all it reported at ADD when ips is empty), and returns the generation
// a snapshot must have to include that.
func (w *Watcher) CNIDel(namespace, name, containerID string, ips []netip.Addr) uint64 {
	key := namespace + "/" + name
	w.mu.Lock()
	s := &w.cni
	if len(ips) == 0 {
		ips = s.addrsOfID[containerID]
	}
	if a, ok := s.added[key]; ok && (a.containerID == containerID || containerID == "") {
		if len(ips) == 0 {
			ips = a.ips
		}
		delete(s.added, key)
	}
	delete(s.byID, containerID)
	delete(s.addrsOfID, containerID)
	for _, ip := range ips {
		s.released[ip] = key
	}
	s.generation++
	gen := s.generation
	w.mu.Unlock()
	w.signal()
	return gen
}

// ForgetCNI drops what the CNI hook said about pods that snap no longer
// holds: released addresses of deleted pods (no pod claims them anyway), and
// ADDs of pods the API has not shown for cniForgetAfter. It changes no
// snapshot; call it now and then.
func (w *Watcher) ForgetCNI(snap *policy.Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.cni
	exists := func(key string) bool {
		ns, name, _ := strings.Cut(key, "/")
		return snap.Pod(ns, name) != nil
	}
	for a, key := range s.released {
		if !exists(key) {
			delete(s.released, a)
		}
	}
	for key, p := range s.added {
		if !exists(key) && time.Since(p.at) > cniForgetAfter {
			delete(s.added, key)
			delete(s.byID, p.containerID)
			delete(s.addrsOfID, p.containerID)
		}
	}
}
