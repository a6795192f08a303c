package watch

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/policy"
)

// TestDerivedSnapshotFollowsTheAPI writes random changes through an API
// client (client-go's fake) and checks that the watcher's snapshot, derived
// change by change from what the informers report, comes to equal one built
// from every object.
func TestDerivedSnapshotFollowsTheAPI(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 4, Pods: 30, Policies: 8, Nodes: 3})
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range c.Namespaces {
		mustDo(t, create(ctx, client, ns))
	}
	for _, p := range c.Pods {
		mustDo(t, create(ctx, client, p))
	}
	for _, np := range c.Policies {
		mustDo(t, create(ctx, client, np))
	}
	// (The fake has no /readyz to probe.)
	w := New(client, slog.New(slog.DiscardHandler), Config{ProbeInterval: time.Hour})
	w.Start(ctx)
	if err := w.WaitForSync(ctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	derived := 0
	var prev *policy.Snapshot
	for step := range 300 {
		ch := c.Mutate(rng)
		for key, p := range ch.Pods {
			ns, name, _ := strings.Cut(key, "/")
			mustDo(t, write(ctx, client, p, func() error { return client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}) }))
		}
		for name, ns := range ch.Namespaces {
			mustDo(t, write(ctx, client, ns, func() error { return client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}) }))
		}
		for key, np := range ch.Policies {
			ns, name, _ := strings.Cut(key, "/")
			mustDo(t, write(ctx, client, np, func() error {
				return client.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, metav1.DeleteOptions{})
			}))
		}
		for _, n := range ch.Nodes {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}}
			for _, a := range n.Addrs {
				node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
			}
			mustDo(t, write(ctx, client, node, nil))
		}
		// The informers report the change a little later: wait until the
		// view has it, then compare.
		deadline := time.Now().Add(5 * time.Second)
		for {
			snap, err := w.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := snap.DeltaFrom(prev); ok {
				derived++
			}
			prev = snap
			full := w.fullSnapshot(t)
			d := policy.Diff(full, snap)
			if d == "" && viewHas(snap, c) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%s): the derived snapshot does not come to equal one built from every object: %s", step, ch.What, d)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if derived == 0 {
		t.Fatal("no snapshot was derived from the one before: the test did not test the derivation")
	}
	t.Logf("300 changes; %d snapshots derived from the one before", derived)
}

// viewHas reports whether snap has every pod and policy of c as c has it
// (the informers caught up).
func viewHas(snap *policy.Snapshot, c *clustergen.Cluster) bool {
	if len(snap.Pods) != len(c.Pods) || len(snap.Policies) != len(c.Policies) {
		return false
	}
	for _, p := range c.Pods {
		if got := snap.Pod(p.Namespace, p.Name); got == nil || !maps.Equal(got.Labels, labels.Set(p.Labels)) {
			return false
		}
	}
	return true
}

// fullSnapshot builds the view from every object of the informers' caches,
// as the watcher does at the start.
func (w *Watcher) fullSnapshot(t *testing.T) *policy.Snapshot {
	t.Helper()
	s := w.inf
	return buildSnapshot(normalForms[*policy.Namespace](s.nss), normalForms[*policy.Pod](s.pods), normalForms[*policy.Node](s.nodes),
		normalForms[*policy.Policy](s.policies), nil, cniView{})
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(ctx context.Context, client *fake.Clientset, obj any) error {
	return write(ctx, client, obj, nil)
}

// write creates or updates obj; a nil obj is deleted with del.
func write(ctx context.Context, client *fake.Clientset, obj any, del func() error) error {
	switch o := obj.(type) {
	case *corev1.Pod:
		if o == nil {
			return del()
		}
		o = o.DeepCopy()
		o.ResourceVersion = ""
		if _, err := client.CoreV1().Pods(o.Namespace).Update(ctx, o, metav1.UpdateOptions{}); err == nil {
			return nil
		}
		_, err := client.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		return err
	case *corev1.Namespace:
		if o == nil {
			return del()
		}
		o = o.DeepCopy()
		if _, err := client.CoreV1().Namespaces().Update(ctx, o, metav1.UpdateOptions{}); err == nil {
			return nil
		}
		_, err := client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		return err
	case *networkingv1.NetworkPolicy:
		if o == nil {
			return del()
		}
		o = o.DeepCopy()
		if _, err := client.NetworkingV1().NetworkPolicies(o.Namespace).Update(ctx, o, metav1.UpdateOptions{}); err == nil {
			return nil
		}
		_, err := client.NetworkingV1().NetworkPolicies(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		return err
	case *corev1.Node:
		if _, err := client.CoreV1().Nodes().Update(ctx, o, metav1.UpdateOptions{}); err == nil {
			return nil
		}
		_, err := client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
		return err
	}
	return nil
}
