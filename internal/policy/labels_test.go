package policy

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sameMap reports whether a and b are one map, not two equal ones.
func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func TestInternerSharesEqualLabelSets(t *testing.T) {
	in := NewInterner()
	a := in.Labels(map[string]string{"app": "web", "tier": "front"})
	b := in.Labels(map[string]string{"tier": "front", "app": "web"})
	c := in.Labels(map[string]string{"app": "web", "tier": "back"})
	d := in.Labels(map[string]string{"app": "web"})
	if !sameMap(a, b) {
		t.Error("two equal label sets are not shared")
	}
	for _, other := range []map[string]string{c, d} {
		if sameMap(a, other) || maps.Equal(a, other) {
			t.Errorf("different label sets %v and %v are one", a, other)
		}
	}
	if want := map[string]string{"app": "web", "tier": "back"}; !maps.Equal(c, want) {
		t.Errorf("interned %v, want %v", c, want)
	}
	if e := in.Labels(nil); e == nil || len(e) != 0 {
		t.Errorf("no labels gave %#v, want an empty set", e)
	}
}

// More sets than one generation holds: every set returned still equals
// what was asked, and a set in use survives the change of generation.
func TestInternerGenerations(t *testing.T) {
	in := NewInterner()
	hot := in.Labels(map[string]string{"app": "hot"})
	for i := range 3 * internedSets {
		m := map[string]string{"pod": fmt.Sprint(i)}
		if got := in.Labels(m); !maps.Equal(got, m) {
			t.Fatalf("interned %v, want %v", got, m)
		}
		if i%1000 == 0 {
			if again := in.Labels(map[string]string{"app": "hot"}); !sameMap(hot, again) {
				t.Fatalf("a set in use was not kept across generations (after %d sets)", i)
			}
		}
	}
	if n := len(in.cur) + len(in.prev); n > 2*internedSets {
		t.Errorf("the interner holds %d hashes, want at most %d", n, 2*internedSets)
	}
}

// Pods normalised through an Interner equal those normalised alone; pods
// with equal labels share them. Safe for concurrent use (run with -race).
func TestInternerPodFromAPI(t *testing.T) {
	in := NewInterner()
	mk := func(i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprint("p", i), Labels: map[string]string{"app": fmt.Sprint(i % 3)}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprint("10.0.0.", i)},
		}
	}
	var wg sync.WaitGroup
	got := make([]*Pod, 30)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = in.PodFromAPI(mk(i))
		}()
	}
	wg.Wait()
	for i, p := range got {
		if want := PodFromAPI(mk(i)); !reflect.DeepEqual(want, p) {
			t.Errorf("pod %d: interned %+v, want %+v", i, p, want)
		}
		if !sameMap(p.Labels, got[i%3].Labels) {
			t.Errorf("pod %d does not share its labels with pod %d", i, i%3)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}}}
	if want, got := NamespaceFromAPI(ns), in.NamespaceFromAPI(ns); !reflect.DeepEqual(want, got) {
		t.Errorf("namespace: interned %+v, want %+v", got, want)
	}
}
