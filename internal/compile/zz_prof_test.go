package compile

import (
	"reflect"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/policy"
)

func TestZZProf(t *testing.T) {
	for _, sc := range []clustergen.ScaleConfig{
		{Pods: 10000, Namespaces: 1000, Policies: 2000, LocalPods: 60, Nodes: 20, Seed: 1},
		{Pods: 100000, Namespaces: 10000, Policies: 10000, LocalPods: 100, Nodes: 20, Seed: 1},
	} {
		c := clustergen.Scale(sc)
		s := c.Snapshot
		nss := make([]*policy.Namespace, 0, len(s.Namespaces))
		for _, ns := range s.Namespaces {
			nss = append(nss, ns)
		}
		t0 := time.Now()
		snap := policy.BuildSnapshot(nss, s.Pods, s.Policies)
		t1 := time.Now()
		rs := Compile(snap, "node-1")
		t2 := time.Now()
		rs2 := Compile(snap, "node-1")
		t3 := time.Now()
		eq := reflect.DeepEqual(rs, rs2)
		t4 := time.Now()
		t.Logf("pods=%d build=%v compile=%v compile2=%v deepequal=%v eq=%v sets=%d chains=%d groups=%d", sc.Pods, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), eq, len(rs.Sets), len(rs.Chains), len(rs.Groups))
	}
}
