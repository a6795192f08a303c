package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/lab"
)

// world is a lab loaded with one scale's cluster.
type world struct {
	s      scale
	lab    *lab.Lab
	node   *lab.Node
	client kubernetes.Interface // not rate-limited, for the load and the changes
	gen    *clustergen.Cluster
	plan   *plan
	// local are the real pods by "namespace/name".
	local map[string]*lab.Pod
	// churnPods and churnPolicies are API-only objects in namespaces
	// without local pods: what the background churn edits.
	churnPods     []*corev1.Pod
	churnPolicies []*networkingv1.NetworkPolicy
	loadTime      time.Duration
}

// loadWorld starts a one-node lab and writes the scale's cluster into its
// API server: namespaces, the other nodes' Node objects, the real local
// pods, the API-only pods (created, then their status written, many at a
// time), the generated policies and the plan's friends policies.
func loadWorld(b *testing.B, s scale) *world {
	b.Helper()
	ctx := context.Background()
	gen := s.generate()
	pl, err := s.makePlan(gen)
	if err != nil {
		b.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	l, err := lab.Start(startCtx, lab.Config{Nodes: 1, ProbeTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	stopSignal := l.CloseOnSignal()
	b.Cleanup(func() {
		stopSignal()
		if err := l.Close(); err != nil {
			b.Errorf("close lab: %v", err)
		}
	})
	cfg := l.RESTConfig()
	cfg.QPS = -1 // no client-side rate limit: the API server is what is loaded
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	w := &world{s: s, lab: l, node: l.Nodes[0], client: client, gen: gen, plan: pl, local: map[string]*lab.Pod{}}
	begin := time.Now()
	step := func(what string, n int, fn func(i int) error) {
		t0 := time.Now()
		if err := parallel(ctx, s.loadWorkers, n, fn); err != nil {
			b.Fatalf("%s: load %s: %v", s.Name, what, err)
		}
		slog.Info("scale: loaded", "scale", s.Name, "what", what, "count", n, "took", time.Since(t0).Round(time.Millisecond))
	}
	step("namespaces", len(gen.Namespaces), func(i int) error {
		_, err := client.CoreV1().Namespaces().Create(ctx, gen.Namespaces[i], metav1.CreateOptions{})
		return err
	})
	step("nodes", s.otherNodes, func(k int) error { return w.writeNode(ctx, k) })
	localNS := map[string]bool{}
	var remote []*corev1.Pod
	t0 := time.Now()
	for _, p := range gen.Pods {
		if p.Spec.NodeName != s.benchNode {
			remote = append(remote, p)
			continue
		}
		localNS[p.Namespace] = true
		// One at a time: the lab plumbs a pod's same-node peers.
		lp, err := l.AddPod(ctx, lab.PodSpec{Namespace: p.Namespace, Name: p.Name, Node: w.node, Labels: p.Labels,
			IPv4: podAddr(p), Families: []lab.Family{lab.IPv4}, Ports: p.Spec.Containers[0].Ports})
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		w.local[lp.ID()] = lp
	}
	slog.Info("scale: loaded", "scale", s.Name, "what", "real local pods", "count", len(w.local), "took", time.Since(t0).Round(time.Millisecond))
	step("API-only pods", len(remote), func(i int) error { return w.writeAPIOnlyPod(ctx, remote[i]) })
	policies := append([]*networkingv1.NetworkPolicy(nil), gen.Policies...)
	for _, p := range pl.pairs {
		policies = append(policies, p.friends)
	}
	step("policies", len(policies), func(i int) error {
		_, err := client.NetworkingV1().NetworkPolicies(policies[i].Namespace).Create(ctx, policies[i], metav1.CreateOptions{})
		return err
	})
	w.loadTime = time.Since(begin)
	for _, p := range remote {
		if !localNS[p.Namespace] {
			w.churnPods = append(w.churnPods, p)
		}
	}
	for _, p := range gen.Policies {
		if !localNS[p.Namespace] {
			w.churnPolicies = append(w.churnPolicies, p)
		}
	}
	if len(w.churnPods) == 0 || len(w.churnPolicies) == 0 {
		b.Fatalf("%s: no API-only pods or policies outside the local pods' namespaces to churn", s.Name)
	}
	return w
}

// writeNode writes the Node object of API-only node k, Ready, with its
// pod range and address.
func (w *world) writeNode(ctx context.Context, k int) error {
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: otherNodeName(k), Labels: map[string]string{"kubernetes.io/hostname": otherNodeName(k)}},
		Spec:       corev1.NodeSpec{PodCIDR: otherNodeRange(k).String(), PodCIDRs: []string{otherNodeRange(k).String()}},
	}
	created, err := w.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: otherNodeAddr(k).String()},
			{Type: corev1.NodeHostName, Address: otherNodeName(k)},
		},
	}
	_, err = w.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

// writeAPIOnlyPod creates the Pod object, then writes its status (the API
// server ignores the status of a create), as lab.WriteAPIOnlyPod does but
// with the benchmark's client, which has no rate limit.
func (w *world) writeAPIOnlyPod(ctx context.Context, p *corev1.Pod) error {
	obj := p.DeepCopy()
	obj.Status = corev1.PodStatus{}
	created, err := w.client.CoreV1().Pods(obj.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Pod object %s/%s: %w", p.Namespace, p.Name, err)
	}
	created.Status = p.Status
	if _, err := w.client.CoreV1().Pods(obj.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write Pod status %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// lpod is the real pod of a generated local pod.
func (w *world) lpod(p *corev1.Pod) *lab.Pod { return w.local[p.Namespace+"/"+p.Name] }

// parallel runs fn(0) … fn(n-1) on workers goroutines and returns the first
// error (the others are counted in it).
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	failed := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		return fmt.Errorf("%d of %d failed, the first: %w", failed, n, first)
	}
	return errors.Join(ctx.Err())
}
