package events

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/policy"
)

var t0 = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

// brokenNP is a NetworkPolicy with a CIDR weft cannot read (one problem
// per cidr given).
func brokenNP(ns, name, uid string, cidrs ...string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	for _, c := range cidrs {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: c}}}})
	}
	return np
}

// domainCNP is a ClusterNetworkPolicy with domain names, which weft cannot
// match.
func domainCNP(name, uid string) *npav1alpha2.ClusterNetworkPolicy {
	return &npav1alpha2.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)},
		Spec: npav1alpha2.ClusterNetworkPolicySpec{
			Tier: npav1alpha2.AdminTier, Priority: 10,
			Subject: npav1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []npav1alpha2.ClusterNetworkPolicyEgressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionDeny,
				To: []npav1alpha2.ClusterNetworkPolicyEgressPeer{{DomainNames: []npav1alpha2.DomainName{"example.com"}}}}},
		},
	}
}

// snapshot holds the policies and Node objects for nodes.
func snapshot(nodes []string, nps []*networkingv1.NetworkPolicy, cnps ...*npav1alpha2.ClusterNetworkPolicy) *policy.Snapshot {
	snap := policy.NewSnapshot(nil, nil, nps)
	for _, n := range nodes {
		snap.AddNodes(&policy.Node{Name: n})
	}
	for _, c := range cnps {
		snap.AddClusterPolicies(policy.ClusterPolicyFromAPI(c))
	}
	return snap
}

// apiServer is a fake clientset that records who created which Event.
type apiServer struct {
	*fake.Clientset
	mu      sync.Mutex
	creates []string // "reportingInstance event-name"
}

func newAPIServer() *apiServer {
	s := &apiServer{Clientset: fake.NewClientset()}
	s.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ev := a.(k8stesting.CreateAction).GetObject().(*eventsv1.Event)
		s.mu.Lock()
		s.creates = append(s.creates, ev.ReportingInstance+" "+ev.Name)
		s.mu.Unlock()
		return false, nil, nil // the tracker stores it, or answers AlreadyExists
	})
	return s
}

func (s *apiServer) events(t *testing.T) []eventsv1.Event {
	t.Helper()
	list, err := s.EventsV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return strings.Compare(a.Namespace+a.Name, b.Namespace+b.Name) })
	return list.Items
}

func (s *apiServer) createCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.creates)
}

// cluster is one Reporter per node on one API server and one clock.
type cluster struct {
	api       *apiServer
	clock     *clocktesting.FakeClock
	reporters map[string]*Reporter
	log       *bytes.Buffer
}

func newCluster(nodes []string, cfg Config) *cluster {
	c := &cluster{api: newAPIServer(), clock: clocktesting.NewFakeClock(t0), reporters: map[string]*Reporter{}, log: &bytes.Buffer{}}
	for _, n := range nodes {
		cfg := cfg
		cfg.Client, cfg.Node, cfg.Clock = c.api, n, c.clock
		cfg.Log = slog.New(slog.NewTextHandler(c.log, nil))
		c.reporters[n] = New(cfg)
	}
	return c
}

// sync has every running weft observe snap and write what is due.
func (c *cluster) sync(snap *policy.Snapshot, running ...string) {
	for _, n := range running {
		c.reporters[n].Observe(snap)
		c.reporters[n].Flush(context.Background())
	}
}

var fiveNodes = []string{"node-1", "node-2", "node-3", "node-4", "node-5"}

func TestOneEventPerProblemAcrossNodes(t *testing.T) {
	c := newCluster(fiveNodes, Config{BackupDelay: time.Minute})
	snap := snapshot(fiveNodes, []*networkingv1.NetworkPolicy{
		brokenNP("x", "bad-cidr", "uid-1", "10.0.0.0/33"),
		brokenNP("y", "two-bad-cidrs", "uid-2", "10.0.0.0/33", "fd00::/129"),
	}, domainCNP("no-example-com", "uid-3"))
	problems := len(snap.Errors())
	if problems != 4 {
		t.Fatalf("the snapshot has %d problems, want 4: %v", problems, snap.Errors())
	}
	c.sync(snap, fiveNodes...)
	evs := c.api.events(t)
	if len(evs) != problems || c.api.createCount() != problems {
		t.Fatalf("after every node synced: %d Events from %d creates, want %d of each: %v", len(evs), c.api.createCount(), problems, c.api.creates)
	}
	for _, ev := range evs {
		key := refKey("", policy.PolicyRef{Namespace: ev.Regarding.Namespace, Name: ev.Regarding.Name})
		if ev.Regarding.Kind == "ClusterNetworkPolicy" {
			key = refKey("clusternetworkpolicy", policy.PolicyRef{Name: ev.Regarding.Name})
		}
		var first string
		for _, n := range fiveNodes {
			if WriterRank(fiveNodes, n, key, 2) == 0 {
				first = n
			}
		}
		if ev.ReportingInstance != "weft-"+first {
			t.Errorf("Event %s written by %s, want the first ranked writer weft-%s", ev.Name, ev.ReportingInstance, first)
		}
	}

	// The backups' turn: they find the Events there, and nothing changes.
	c.clock.Step(time.Minute)
	c.sync(snap, fiveNodes...)
	if got := c.api.createCount(); got != 2*problems {
		t.Errorf("after the backup delay: %d creates, want %d (each problem's backup once): %v", got, 2*problems, c.api.creates)
	}
	if diff := cmp.Diff(evs, c.api.events(t)); diff != "" {
		t.Errorf("Events changed by the backups (-before +after):\n%s", diff)
	}
	// Nothing more until the resend interval.
	c.clock.Step(10 * time.Minute)
	c.sync(snap, fiveNodes...)
	if got := c.api.createCount(); got != 2*problems {
		t.Errorf("%d creates before the resend interval, want %d", got, 2*problems)
	}
}

func TestBackupWritesWhenTheWriterIsDown(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	c := newCluster(nodes, Config{BackupDelay: time.Minute})
	snap := snapshot(nodes, []*networkingv1.NetworkPolicy{brokenNP("x", "bad", "uid-1", "10.0.0.0/33")})
	key := refKey("", policy.PolicyRef{Namespace: "x", Name: "bad"})
	var running []string
	var backup string
	for _, n := range nodes {
		switch WriterRank(nodes, n, key, 2) {
		case 0: // down
		case 1:
			backup = n
			running = append(running, n)
		default:
			running = append(running, n)
		}
	}
	c.sync(snap, running...)
	if n := len(c.api.events(t)); n != 0 {
		t.Fatalf("%d Events before the backup delay, with the writer down", n)
	}
	c.clock.Step(59 * time.Second)
	c.sync(snap, running...)
	if n := len(c.api.events(t)); n != 0 {
		t.Fatalf("%d Events before the backup delay, with the writer down", n)
	}
	c.clock.Step(time.Second)
	c.sync(snap, running...)
	evs := c.api.events(t)
	if len(evs) != 1 || evs[0].ReportingInstance != "weft-"+backup {
		t.Fatalf("Events after the backup delay: %+v; want one from weft-%s", evs, backup)
	}
	if c.api.createCount() != 1 {
		t.Errorf("creates: %v; only the backup should write", c.api.creates)
	}
}

// TestWriterFollowsTheNodes: the writer is ranked again when the Nodes
// change before the Event is written (a weft that saw no Nodes at first
// ranks itself first; once it sees them, the policy's writer writes).
func TestWriterFollowsTheNodes(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	key := refKey("", policy.PolicyRef{Namespace: "x", Name: "bad"})
	var writer, other string
	for _, n := range nodes {
		switch WriterRank(nodes, n, key, 2) {
		case 0:
			writer = n
		case -1:
			other = n
		}
	}
	c := newCluster(nodes, Config{BackupDelay: time.Minute})
	nps := []*networkingv1.NetworkPolicy{brokenNP("x", "bad", "uid-1", "10.0.0.0/33")}
	// The not-ranked node first sees a snapshot with only itself.
	c.reporters[other].Observe(snapshot([]string{other}, nps))
	// Then all Nodes, before it wrote anything.
	c.sync(snapshot(nodes, nps), other)
	if n := len(c.api.events(t)); n != 0 {
		t.Fatalf("%d Events from %s, which is no writer of the policy once it sees every Node", n, other)
	}
	c.sync(snapshot(nodes, nps), writer)
	if evs := c.api.events(t); len(evs) != 1 || evs[0].ReportingInstance != "weft-"+writer {
		t.Fatalf("Events %+v; want one from weft-%s", evs, writer)
	}
}

func TestEventContent(t *testing.T) {
	c := newCluster([]string{"node-1"}, Config{})
	c.sync(snapshot(nil, []*networkingv1.NetworkPolicy{brokenNP("x", "bad-cidr", "uid-1", "10.0.0.0/33")}, domainCNP("no-example-com", "uid-3")), "node-1")
	evs := c.api.events(t)
	if len(evs) != 2 {
		t.Fatalf("got %d Events, want 2", len(evs))
	}
	byKind := map[string]eventsv1.Event{}
	for _, ev := range evs {
		byKind[ev.Regarding.Kind] = ev
	}
	np, cnp := byKind["NetworkPolicy"], byKind["ClusterNetworkPolicy"]
	wantNP := corev1.ObjectReference{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1", Namespace: "x", Name: "bad-cidr", UID: "uid-1"}
	if diff := cmp.Diff(wantNP, np.Regarding); diff != "" || np.Namespace != "x" {
		t.Errorf("NetworkPolicy Event in %q regarding (-want +got):\n%s", np.Namespace, diff)
	}
	wantCNP := corev1.ObjectReference{Kind: "ClusterNetworkPolicy", APIVersion: "policy.networking.k8s.io/v1alpha2", Name: "no-example-com", UID: "uid-3"}
	if diff := cmp.Diff(wantCNP, cnp.Regarding); diff != "" || cnp.Namespace != "default" {
		t.Errorf("ClusterNetworkPolicy Event in %q (want default) regarding (-want +got):\n%s", cnp.Namespace, diff)
	}
	for _, ev := range evs {
		if ev.Type != corev1.EventTypeWarning || ev.Reason != Reason || ev.Action != Action ||
			ev.ReportingController != ReportingController || ev.ReportingInstance != "weft-node-1" || !ev.EventTime.Time.Equal(t0) {
			t.Errorf("Event %s: type %q reason %q action %q controller %q instance %q time %v", ev.Name, ev.Type, ev.Reason, ev.Action, ev.ReportingController, ev.ReportingInstance, ev.EventTime)
		}
		if errs := validation.IsDNS1123Subdomain(ev.Name); len(errs) > 0 {
			t.Errorf("Event name %q: %v", ev.Name, errs)
		}
	}
	if want := "weft cannot understand spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR \"10.0.0.0/33\"; this rule allows nothing; it fails closed: its pods stay isolated and the broken rule allows nothing"; np.Note != want {
		t.Errorf("NetworkPolicy note:\n got %s\nwant %s", np.Note, want)
	}
	if !strings.Contains(cnp.Note, "spec.egress[0].to[0].domainNames") || !strings.Contains(cnp.Note, "fails closed") {
		t.Errorf("ClusterNetworkPolicy note does not name the field and say it fails closed: %s", cnp.Note)
	}
}

func TestRateLimit(t *testing.T) {
	c := newCluster([]string{"node-1"}, Config{QPS: 1, Burst: 10})
	var nps []*networkingv1.NetworkPolicy
	for i := range 15 {
		nps = append(nps, brokenNP("x", fmt.Sprintf("bad-%02d", i), fmt.Sprintf("uid-%d", i), "10.0.0.0/33"))
	}
	snap := snapshot(nil, nps)
	r := c.reporters["node-1"]
	r.Observe(snap)
	next := r.Flush(context.Background())
	if got := c.api.createCount(); got != 10 {
		t.Errorf("first flush: %d creates, want the burst of 10", got)
	}
	if want := t0.Add(time.Second); !next.Equal(want) {
		t.Errorf("next write due %v, want %v", next, want)
	}
	c.clock.Step(time.Second)
	r.Flush(context.Background())
	if got := c.api.createCount(); got != 11 {
		t.Errorf("one second later: %d creates, want 11", got)
	}
	c.clock.Step(4 * time.Second)
	r.Flush(context.Background())
	if got, evs := c.api.createCount(), len(c.api.events(t)); got != 15 || evs != 15 {
		t.Errorf("five seconds later: %d creates and %d Events, want 15 of each", got, evs)
	}
}

func TestResendAfterExpiryAndReport(t *testing.T) {
	c := newCluster([]string{"node-1"}, Config{Resend: 30 * time.Minute})
	bad := brokenNP("x", "bad", "uid-1", "10.0.0.0/33")
	snap := snapshot(nil, []*networkingv1.NetworkPolicy{bad})
	c.sync(snap, "node-1")
	evs := c.api.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d Events", len(evs))
	}
	// The API server expires it (event TTL).
	if err := c.api.EventsV1().Events("x").Delete(context.Background(), evs[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.clock.Step(29 * time.Minute)
	c.sync(snap, "node-1")
	if len(c.api.events(t)) != 0 {
		t.Error("re-created before the resend interval")
	}
	c.clock.Step(time.Minute)
	c.sync(snap, "node-1")
	if evs := c.api.events(t); len(evs) != 1 || !evs[0].EventTime.Time.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("after the resend interval: %+v; want the Event again, of now", evs)
	}

	// Fixed, then broken again: reported again at once (the old Event is
	// there, so the create finds it).
	c.sync(snapshot(nil, nil), "node-1")
	before := c.api.createCount()
	c.sync(snap, "node-1")
	if c.api.createCount() != before+1 {
		t.Errorf("a problem back after it was fixed was not reported again")
	}
	// A new problem in the same policy is a new Event.
	c.sync(snapshot(nil, []*networkingv1.NetworkPolicy{brokenNP("x", "bad", "uid-1", "10.0.0.0/40")}), "node-1")
	if n := len(c.api.events(t)); n != 2 {
		t.Errorf("%d Events after the problem changed, want 2", n)
	}
}

func TestWriteErrorsAreLoggedOnceAndRetried(t *testing.T) {
	c := newCluster([]string{"node-1"}, Config{})
	forbid, attempts := true, 0
	c.api.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		attempts++
		if forbid {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "", fmt.Errorf("User \"system:serviceaccount:kube-system:weft\" cannot create resource \"events\""))
		}
		return false, nil, nil
	})
	snap := snapshot(nil, []*networkingv1.NetworkPolicy{brokenNP("x", "bad", "uid-1", "10.0.0.0/33")})
	c.sync(snap, "node-1")
	c.clock.Step(2 * time.Second)
	c.sync(snap, "node-1")
	c.clock.Step(4 * time.Second)
	c.sync(snap, "node-1")
	if got := attempts; got != 3 {
		t.Errorf("%d attempts after 0, 2 and 6 seconds, want 3 (backoff 2 s, then 4 s)", got)
	}
	if n := strings.Count(c.log.String(), "cannot post an Event"); n != 1 {
		t.Errorf("the same error logged %d times, want once:\n%s", n, c.log.String())
	}
	if !strings.Contains(c.log.String(), "forbidden") || !strings.Contains(c.log.String(), "policy weft cannot fully understand") {
		t.Errorf("the log does not give the API server's refusal:\n%s", c.log.String())
	}
	forbid = false
	c.clock.Step(8 * time.Second)
	c.sync(snap, "node-1")
	if n := len(c.api.events(t)); n != 1 {
		t.Errorf("%d Events once allowed, want 1", n)
	}
}

func TestWriterRank(t *testing.T) {
	perNode := map[string]int{}
	for i := range 200 {
		key := fmt.Sprintf("/ns-%d/policy", i)
		var ranks []int
		for _, n := range fiveNodes {
			r := WriterRank(fiveNodes, n, key, 2)
			ranks = append(ranks, r)
			if r == 0 {
				perNode[n]++
			}
		}
		slices.Sort(ranks)
		if diff := cmp.Diff([]int{-1, -1, -1, 0, 1}, ranks); diff != "" {
			t.Fatalf("ranks for %s (-want +got):\n%s", key, diff)
		}
	}
	// Rendezvous hashing spreads the policies: each node writes for some
	// (200 policies over 5 nodes: 40 each on average).
	for _, n := range fiveNodes {
		if perNode[n] < 15 {
			t.Errorf("node %s is the first writer of %d of 200 policies: %v", n, perNode[n], perNode)
		}
	}
	// A node removed only moves the policies it wrote.
	four := fiveNodes[:4]
	for i := range 200 {
		key := fmt.Sprintf("/ns-%d/policy", i)
		for _, n := range four {
			if WriterRank(fiveNodes, n, key, 1) == 0 && WriterRank(four, n, key, 1) != 0 {
				t.Errorf("%s lost %s when node-5 left", n, key)
			}
		}
	}
	if got := WriterRank(fiveNodes, "unknown-node", "/x/y", 2); got != 0 {
		t.Errorf("a node not among the Node objects ranks %d, want 0 (it writes)", got)
	}
}

func TestEventName(t *testing.T) {
	e := policy.FieldError{Policy: policy.PolicyRef{Namespace: "x", Name: "bad"}, Field: "spec.ingress[0]", Msg: "m"}
	name := EventName(e, "uid-1")
	if name != EventName(e, "uid-1") || !strings.HasPrefix(name, "bad.weft-") {
		t.Errorf("EventName = %q: want deterministic, starting with the policy's name", name)
	}
	other := e
	other.Field = "spec.ingress[1]"
	for what, n := range map[string]string{"uid": EventName(e, "uid-2"), "field": EventName(other, "uid-1")} {
		if n == name {
			t.Errorf("another %s gives the same Event name %q", what, n)
		}
	}
	long := e
	long.Policy.Name = strings.Repeat("a", 199) + "-" + strings.Repeat("b", 53)
	n := EventName(long, "u")
	if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
		t.Errorf("Event name for a 253-character policy name: %v", errs)
	}
}

// TestRun checks the loop: an observed problem is written without a Flush
// from outside, and Run ends with its context.
func TestRun(t *testing.T) {
	api := newAPIServer()
	r := New(Config{Client: api, Node: "node-1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Observe(snapshot(nil, []*networkingv1.NetworkPolicy{brokenNP("x", "bad", "uid-1", "10.0.0.0/33")}))
	deadline := time.Now().Add(10 * time.Second)
	for len(api.events(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run wrote no Event within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
