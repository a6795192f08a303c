package scale

import (
	"testing"
)

// TestPlan checks, without a lab, that each scale's generated cluster gives
// the benchmark its probes: pairs of real local pods that are blocked and
// opened by a policy and by a label, and a path a generated policy opens.
func TestPlan(t *testing.T) {
	for _, s := range scales {
		t.Run(s.Name, func(t *testing.T) {
			if s.Pods > 10_000 && testing.Short() {
				t.Skip("-short: the largest scale takes seconds to generate")
			}
			c := s.generate()
			if got := len(s.localPods(c)); got != s.LocalPods {
				t.Fatalf("%d local pods, want %d", got, s.LocalPods)
			}
			seen := map[string]bool{}
			for _, p := range c.Pods {
				ip := p.Status.PodIPs[0].IP
				if seen[ip] {
					t.Fatalf("address %s given twice", ip)
				}
				seen[ip] = true
			}
			pl, err := s.makePlan(c)
			if err != nil {
				t.Fatal(err)
			}
			if len(pl.pairs) != s.pairs {
				t.Fatalf("%d pairs, want %d", len(pl.pairs), s.pairs)
			}
			for _, p := range pl.pairs {
				if p.from.Spec.NodeName != s.benchNode || p.to.Spec.NodeName != s.benchNode {
					t.Errorf("pair %s: not both on %s", p, s.benchNode)
				}
			}
			t.Logf("pairs %v; allowed %s by %v", pl.pairs, pl.allowed, pl.allowedBy)
		})
	}
}
