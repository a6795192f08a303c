package iptables

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/weftnet/weft/internal/ir"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func TestRenderGolden(t *testing.T) {
	p, err := Render(sampleRuleset())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.ipv4", p.IPv4)
	golden(t, "sample.ipv6", p.IPv6)
	golden(t, "sample.ipset", p.IPSet)
}

func TestRenderEmptyRulesetHasOnlyTheSkeleton(t *testing.T) {
	p, err := Render(&ir.Ruleset{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "empty.ipv4", p.IPv4)
	// Only the (empty) sets of unknown pod ranges, which the skeleton's
	// rules name.
	want := "create weft-unknown-v4 hash:net family inet hashsize 64 maxelem 65536\ncreate weft-unknown-v6 hash:net family inet6 hashsize 64 maxelem 65536\n"
	if p.IPSet != want {
		t.Errorf("an empty ruleset needs only the unknown-range sets, got:\n%s", p.IPSet)
	}
}

// TestRenderSaysWhichGroupsAreOverBudget: a group whose merged sets would
// exceed the budget walks its chains, and the state names it (the
// backend's OverBudget), with what its sets would hold.
func TestRenderSaysWhichGroupsAreOverBudget(t *testing.T) {
	st, err := renderBudget(mergedRuleset(), DefaultMergeBudget, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.overBudget) != 0 {
		t.Fatalf("within the default budget, over budget: %v", st.overBudget)
	}
	st, err = renderBudget(mergedRuleset(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.overBudget) == 0 {
		t.Fatal("with a budget of 1 element no group is over budget")
	}
	for g, n := range st.overBudget {
		if n <= 1 {
			t.Errorf("group %s over a budget of 1 with %d elements", g, n)
		}
	}
}
