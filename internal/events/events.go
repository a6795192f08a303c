package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"

	"github.com/weftnet/weft/internal/policy"
)

// Reason is the Events' reason.
const Reason = "PolicyNotUnderstood"

// Action is the Events' action: what weft did about the policy.
const Action = "FailClosed"

// ReportingController names weft as the Events' reporter.
const ReportingController = "weft.dev/weft"

// Config configures a Reporter.
type Config struct {
	// Client writes the Events.
	Client kubernetes.Interface
	// Node is this node's name: the reporting instance, and this weft's
	// name in the writer ranking.
	Node string
	Log  *slog.Logger
	// Writers is how many nodes per policy write (default 2: the writer
	// and one backup).
	Writers int
	// BackupDelay is how long the n-th ranked writer waits, times n-1,
	// before it writes (default 1 minute).
	BackupDelay time.Duration
	// Resend is how often a lasting problem's Event is created again
	// (default 30 minutes).
	Resend time.Duration
	// QPS and Burst bound the writes of this weft (default 1 per second,
	// bursts of 10).
	QPS   float32
	Burst int
	// Clock is the time source (default the real clock).
	Clock clock.WithTicker
}

// Reporter posts an Event for each policy problem of the snapshots it is
// given. Observe never blocks; Run does the writing.
type Reporter struct {
	cfg     Config
	limiter flowcontrol.RateLimiter
	wake    chan struct{}

	mu       sync.Mutex
	problems map[string]*problem // by Event name
}

// problem is one problem of one policy and what was done about it.
type problem struct {
	event    *eventsv1.Event
	rank     int       // this node's place among the policy's writers (0 first); -1: not a writer
	seen     time.Time // when the problem was first observed
	written  bool      // the Event is on the API server (written by this node or another)
	due      time.Time // when to write next
	attempts int       // failed writes in a row
	saidErr  string    // the last write error logged, to log each once
}

// New returns a Reporter; call Run to have it write.
func New(cfg Config) *Reporter {
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.BackupDelay <= 0 {
		cfg.BackupDelay = time.Minute
	}
	if cfg.Resend <= 0 {
		cfg.Resend = 30 * time.Minute
	}
	if cfg.QPS <= 0 {
		cfg.QPS = 1
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{
		cfg:      cfg,
		limiter:  flowcontrol.NewTokenBucketRateLimiterWithClock(cfg.QPS, cfg.Burst, cfg.Clock),
		wake:     make(chan struct{}, 1),
		problems: map[string]*problem{},
	}
}

// Observe takes the problems of snap: new ones are scheduled (at once for
// this node if it is the policy's first writer, later for a backup), gone
// ones forgotten, so that a problem that comes back is reported again.
func (r *Reporter) Observe(snap *policy.Snapshot) {
	now := r.cfg.Clock.Now()
	nodes := make([]string, 0, len(snap.Nodes))
	for name := range snap.Nodes {
		nodes = append(nodes, name)
	}
	uids := policyUIDs(snap)
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range snap.Errors() {
		ev := r.event(e, uids[refKey(e.Kind, e.Policy)])
		seen[ev.Name] = true
		rank := WriterRank(nodes, r.cfg.Node, refKey(e.Kind, e.Policy), r.cfg.Writers)
		p, ok := r.problems[ev.Name]
		switch {
		case !ok:
			p = &problem{event: ev, seen: now, rank: -1}
			r.problems[ev.Name] = p
		case p.written || rank == p.rank:
			continue
		}
		// New, or the Nodes changed before the Event was written: this
		// node's turn follows its place among the writers now.
		p.rank = rank
		if rank >= 0 {
			p.due = p.seen.Add(time.Duration(rank) * r.cfg.BackupDelay)
		}
	}
	for name := range r.problems {
		if !seen[name] {
			delete(r.problems, name)
		}
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run writes due Events until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	for {
		next := r.Flush(ctx)
		var timer clock.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = r.cfg.Clock.NewTimer(max(next.Sub(r.cfg.Clock.Now()), 10*time.Millisecond))
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// Flush writes every Event that is due now, as far as the rate limit
// allows, and returns when the next one is due (zero: none).
func (r *Reporter) Flush(ctx context.Context) time.Time {
	for {
		p, next := r.nextDue()
		if p == nil {
			return next
		}
		if !r.limiter.TryAccept() {
			// Try again in a second, when the bucket has refilled.
			return r.cfg.Clock.Now().Add(time.Second)
		}
		r.write(ctx, p)
	}
}

// nextDue returns a problem due now (nil if none) and otherwise when the
// next is due.
func (r *Reporter) nextDue() (*problem, time.Time) {
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	names := make([]string, 0, len(r.problems))
	for name := range r.problems {
		names = append(names, name)
	}
	slices.Sort(names) // the same order every time, for tests and logs
	for _, name := range names {
		p := r.problems[name]
		if p.rank < 0 {
			continue
		}
		if !p.due.After(now) {
			return p, time.Time{}
		}
		if next.IsZero() || p.due.Before(next) {
			next = p.due
		}
	}
	return nil, next
}

// write creates p's Event and schedules the next write.
func (r *Reporter) write(ctx context.Context, p *problem) {
	ev := p.event.DeepCopy()
	ev.EventTime = metav1.NewMicroTime(r.cfg.Clock.Now())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := r.cfg.Client.EventsV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	cancel()
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.problems[ev.Name] != p {
		return // forgotten meanwhile
	}
	switch {
	case err == nil:
		r.cfg.Log.Info("posted an Event about a policy weft cannot fully understand", "event", ev.Namespace+"/"+ev.Name, "regarding", regardingText(ev.Regarding))
		fallthrough
	case apierrors.IsAlreadyExists(err):
		// Another weft wrote it, or this one before the Event expired.
		p.attempts, p.saidErr, p.written = 0, "", true
		p.due = now.Add(r.cfg.Resend)
	default:
		p.attempts++
		backoff := min(time.Duration(1<<min(p.attempts, 10))*time.Second, r.cfg.Resend)
		p.due = now.Add(backoff)
		if msg := err.Error(); msg != p.saidErr {
			p.saidErr = msg
			r.cfg.Log.Warn("cannot post an Event about a policy weft cannot fully understand; retrying (the problem is logged all the same)",
				"event", ev.Namespace+"/"+ev.Name, "regarding", regardingText(ev.Regarding), "retryIn", backoff.String(), "error", err)
		}
	}
}

// event is the Event for problem e of the policy with uid.
func (r *Reporter) event(e policy.FieldError, uid string) *eventsv1.Event {
	ns := e.Policy.Namespace
	regarding := corev1.ObjectReference{Namespace: ns, Name: e.Policy.Name, UID: types.UID(uid)}
	consequence := "its pods stay isolated and the broken rule allows nothing"
	if e.Kind != "" {
		regarding.Kind, regarding.APIVersion = "ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2"
		consequence = "a broken Accept rule allows nothing, a broken Deny or Pass rule denies all it might cover"
		// Events about cluster-scoped objects live in the default
		// namespace, as Kubernetes' own recorders put them.
		ns = metav1.NamespaceDefault
	} else {
		regarding.Kind, regarding.APIVersion = "NetworkPolicy", "networking.k8s.io/v1"
	}
	note := fmt.Sprintf("weft cannot understand %s: %s; it fails closed: %s", e.Field, e.Msg, consequence)
	if len(note) > 1024 { // the API's limit
		note = note[:1021] + "..."
	}
	instance := "weft-" + r.cfg.Node
	if len(instance) > 128 {
		instance = instance[:128]
	}
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: EventName(e, uid)},
		Regarding:           regarding,
		Reason:              Reason,
		Action:              Action,
		Note:                note,
		Type:                corev1.EventTypeWarning,
		ReportingController: ReportingController,
		ReportingInstance:   instance,
	}
}

// EventName is the Event's name for problem e of the policy with uid: the
// policy's name, a dot and a hash of the policy and the problem. Every weft
// computes the same name, so the cluster holds one Event per problem.
func EventName(e policy.FieldError, uid string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{e.Kind, e.Policy.Namespace, e.Policy.Name, uid, e.Field, e.Msg}, "\x00")))
	name := e.Policy.Name
	if len(name) > 200 {
		name = strings.TrimRight(name[:200], ".-")
	}
	return name + ".weft-" + hex.EncodeToString(sum[:8])
}

// WriterRank is node's place (0 first) among the writers of the policy
// with key, ranked by rendezvous hashing over nodes; -1 when node is not
// one of the first writers. When node is not among nodes (the Node objects
// are not known), it counts itself the first writer: the Event's name
// still keeps the cluster to one Event per problem.
func WriterRank(nodes []string, node, key string, writers int) int {
	if !slices.Contains(nodes, node) {
		return 0
	}
	mine := rendezvous(node, key)
	rank := 0
	for _, n := range nodes {
		if n == node {
			continue
		}
		if h := rendezvous(n, key); h > mine || (h == mine && n < node) {
			rank++
		}
	}
	if rank >= writers {
		return -1
	}
	return rank
}

func rendezvous(node, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(key))
	// FNV's low bits mix poorly for similar inputs: finish with a
	// multiply-xorshift so that nearby names rank independently.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

func refKey(kind string, ref policy.PolicyRef) string {
	return kind + "/" + ref.Namespace + "/" + ref.Name
}

func policyUIDs(snap *policy.Snapshot) map[string]string {
	out := map[string]string{}
	for _, p := range snap.Policies {
		if len(p.Errors) > 0 {
			out[refKey("", p.PolicyRef)] = p.UID
		}
	}
	for _, p := range snap.ClusterPolicies {
		if len(p.Errors) > 0 {
			out[refKey("clusternetworkpolicy", policy.PolicyRef{Name: p.Name})] = p.UID
		}
	}
	return out
}

func regardingText(ref corev1.ObjectReference) string {
	if ref.Namespace != "" {
		return ref.Kind + " " + ref.Namespace + "/" + ref.Name
	}
	return ref.Kind + " " + ref.Name
}
