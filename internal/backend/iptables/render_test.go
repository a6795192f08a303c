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
	if p.IPSet != "" {
		t.Errorf("an empty ruleset needs no sets, got:\n%s", p.IPSet)
	}
}
