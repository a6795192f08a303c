package main

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/policy"
)

// TestAfterSyncSkipsOnlyWhatDidNotChange: over 300 random changes, the
// policy checks (Events) run exactly when policies, cluster policies or
// nodes changed, and when they are skipped the policy problems and nodes
// they would read are what they read last; likewise the namespace check
// (legacy annotation). A snapshot not derived from the last, or the first,
// runs everything; the same snapshot again runs only what always runs.
func TestAfterSyncSkipsOnlyWhatDidNotChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 4))
	st := clustergen.NewStream(clustergen.Random(rng, clustergen.RandomConfig{Namespaces: 4, Pods: 30, Policies: 10, Nodes: 3}))
	var always, pols, nss int
	var polSeen, nsSeen *policy.Snapshot
	a := &afterSync{
		always:     []func(*policy.Snapshot){func(*policy.Snapshot) { always++ }},
		policies:   func(s *policy.Snapshot) { pols++; polSeen = s },
		namespaces: func(s *policy.Snapshot) { nss++; nsSeen = s },
	}
	a.run(st.Snapshot())
	if always != 1 || pols != 1 || nss != 1 {
		t.Fatalf("first snapshot: always %d, policies %d, namespaces %d runs; want 1 each", always, pols, nss)
	}
	a.run(st.Snapshot())
	if always != 2 || pols != 1 || nss != 1 {
		t.Fatalf("the same snapshot again: always %d, policies %d, namespaces %d runs; want 2, 1, 1", always, pols, nss)
	}
	skippedPol, skippedNS := 0, 0
	prev := st.Snapshot() // what a saw last
	for i := range 300 {
		what := st.Next(rng)
		snap := st.Snapshot()
		if i%50 == 49 {
			snap = st.Full() // as after a re-list: not derived
		}
		p0, n0 := pols, nss
		a.run(snap)
		d, derived := snap.DeltaFrom(prev)
		prev = snap
		wantPol := !derived || d.Policies || d.ClusterPolicies || d.Nodes
		wantNS := !derived || len(d.Namespaces) > 0
		if got := pols > p0; got != wantPol {
			t.Fatalf("change %d (%s): policy checks ran %v, want %v", i, what, got, wantPol)
		}
		if got := nss > n0; got != wantNS {
			t.Fatalf("change %d (%s): namespace checks ran %v, want %v", i, what, got, wantNS)
		}
		if !wantPol {
			skippedPol++
			if !reflect.DeepEqual(snap.Errors(), polSeen.Errors()) || !reflect.DeepEqual(snap.Nodes, polSeen.Nodes) {
				t.Fatalf("change %d (%s): policy checks skipped, yet the problems or nodes differ from what they saw", i, what)
			}
		}
		if !wantNS {
			skippedNS++
			if !reflect.DeepEqual(snap.Namespaces, nsSeen.Namespaces) {
				t.Fatalf("change %d (%s): namespace checks skipped, yet the namespaces differ from what they saw", i, what)
			}
		}
	}
	if always != 302 {
		t.Errorf("what always runs ran %d times, want 302", always)
	}
	if skippedPol == 0 || skippedNS == 0 {
		t.Errorf("nothing was skipped (policy checks %d, namespace checks %d): the test proves nothing", skippedPol, skippedNS)
	}
	t.Logf("skipped: policy checks %d, namespace checks %d of 300", skippedPol, skippedNS)
}
