package main

import (
	"github.com/weftnet/weft/internal/policy"
)

// afterSync runs the checks that follow each successful sync, the costly
// ones only when the part of the cluster they read changed since the
// snapshot seen last (policy.Snapshot.DeltaFrom), so that a pod's change at
// 100,000 pods does not walk every policy and namespace again. A snapshot
// not derived from the last one runs them all.
type afterSync struct {
	// always runs after every sync: timed findings (no local pods after a
	// minute, the bridges) and what ages (the CNI hook's reports).
	always []func(*policy.Snapshot)
	// policies runs when policies, cluster policies or nodes changed:
	// policy problems (Events, and which node writes them).
	policies func(*policy.Snapshot)
	// namespaces runs when namespaces changed (the legacy annotation).
	namespaces func(*policy.Snapshot)
	seen       *policy.Snapshot
}

func (a *afterSync) run(snap *policy.Snapshot) {
	if snap == nil {
		return
	}
	for _, f := range a.always {
		f(snap)
	}
	d, derived := snap.DeltaFrom(a.seen)
	same := snap == a.seen
	a.seen = snap
	if same {
		return
	}
	if !derived || d.Policies || d.ClusterPolicies || d.Nodes {
		a.policies(snap)
	}
	if !derived || len(d.Namespaces) > 0 {
		a.namespaces(snap)
	}
}
