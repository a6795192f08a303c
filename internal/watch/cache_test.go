package watch

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/policy"
)

// withClutter gives objects what real ones carry and policy never reads:
// annotations, managed fields, volumes, more containers; and one namespace
// weft's enforcement annotation, which it does read.
func withClutter(c *clustergen.Cluster) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{}}`)}}
	for i, ns := range c.Namespaces {
		ns.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
		if i == 0 {
			ns.Annotations[policy.EnforcementAnnotation] = "audit"
		}
		ns.ManagedFields = managed
	}
	for _, p := range c.Pods {
		p.Annotations = map[string]string{"prometheus.io/scrape": "true"}
		p.ManagedFields = managed
		p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "envoy", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}})
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	for _, np := range c.Policies {
		np.ManagedFields = managed
	}
}

// The watcher keeps each object's normal form only, made when the object
// arrives, with label sets and strings shared among objects. Its snapshot
// holds the same pods as the snapshot of the full objects, compiles to the
// same ruleset on every node, and the evaluator decides every flow alike.
func TestCachedViewDecidesAsFullObjects(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			c := clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 4, Pods: 40, Policies: 10, Nodes: 3})
			withClutter(c)
			client := fakeClientOf(c, 3)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := New(client, slog.New(slog.DiscardHandler), Config{ProbeInterval: time.Hour})
			w.Start(ctx)
			if err := w.WaitForSync(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, err := w.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			// The same objects as the API server holds them, converted whole.
			objs, err := List(ctx, client, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs.Pods) != len(c.Pods) || len(objs.Pods[0].Annotations) == 0 {
				t.Fatalf("the full objects are not full: %d pods, annotations %v", len(objs.Pods), objs.Pods[0].Annotations)
			}
			want := NewSnapshot(objs)
			if diff := cmp.Diff(want.Pods, got.Pods, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("pods (-full objects +cached):\n%s", diff)
			}
			for name, ns := range want.Namespaces {
				if diff := cmp.Diff(ns.Labels, got.Namespaces[name].Labels); diff != "" {
					t.Errorf("labels of namespace %s (-full objects +cached):\n%s", name, diff)
				}
			}
			for i := range 3 {
				node := clustergen.NodeName(i)
				if diff := cmp.Diff(compile.Compile(want, node), compile.Compile(got, node), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
					t.Errorf("ruleset of %s (-full objects +cached):\n%s", node, diff)
				}
				ew, eg := policy.Evaluator{Snapshot: want, Node: node}, policy.Evaluator{Snapshot: got, Node: node}
				for _, f := range clustergen.RandomFlows(rng, c, 200) {
					dw, dg := ew.Decide(f), eg.Decide(f)
					if dw.Passes() != dg.Passes() || dw.Egress.Allowed != dg.Egress.Allowed || dw.Ingress.Allowed != dg.Ingress.Allowed {
						t.Errorf("%v on %s: full objects decide %+v, cached %+v", f, node, dw, dg)
					}
				}
			}
		})
	}
}
