package e2e

import (
	"testing"

	"github.com/weftnet/weft/internal/scenarios"
)

// Backends are the backends the suite runs on, each with the same tests.
var backends = []string{"iptables", "nftables"}

// TestBackends runs the whole suite once per backend: every catalogue
// scenario (TestBackends/<backend>/scenario/<name>) and every story
// (TestBackends/<backend>/story/<name>).
func TestBackends(t *testing.T) {
	e := needEnv(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			c := startCluster(t, e, backend)
			t.Run("scenario", func(t *testing.T) {
				for _, sc := range scenarios.All() {
					t.Run(sc.Name, func(t *testing.T) { c.runScenario(t, sc) })
				}
			})
			t.Run("story", func(t *testing.T) {
				for _, s := range stories() {
					t.Run(s.name, func(t *testing.T) {
						c.logOnFailure(t)
						c.deleteAllPolicies(t)
						c.applyModel(t, scenarios.NewModel())
						c.expectOpen(t)
						if t.Failed() {
							return
						}
						s.run(t, c)
					})
				}
			})
		})
	}
}
