package status

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
)

func TestBuildAndText(t *testing.T) {
	a := netip.MustParseAddr
	rs := &ir.Ruleset{
		Sets:   []ir.Set{{Name: "s", Addrs: []netip.Addr{a("10.32.0.9"), a("10.32.0.8")}}},
		Chains: []ir.Chain{{Name: "c", Rules: []ir.Rule{{}, {}}}},
		Groups: []ir.Group{
			{Name: "g-in", Direction: ir.Ingress, Policies: []string{"y/deny", "y/web"}, Members: []ir.Member{{Addr: a("10.32.0.7"), Pod: "y/a"}, {Addr: a("fd00::7"), Pod: "y/a"}}},
			{Name: "open-in", Direction: ir.Ingress, Members: []ir.Member{{Addr: a("10.32.0.6"), Pod: "x/b"}}},
			{Name: "g-eg", Direction: ir.Egress, Policies: []string{"x/egress"}, Audit: true, Members: []ir.Member{{Addr: a("10.32.0.6"), Pod: "x/b"}}},
		},
	}
	r := Build("node-1", nil, rs)
	want := []Pod{
		{Pod: "x/b", Addrs: []string{"10.32.0.6"}, Egress: &Isolation{Group: "g-eg", Policies: []string{"x/egress"}, Audit: true}},
		{Pod: "y/a", Addrs: []string{"10.32.0.7", "fd00::7"}, Ingress: &Isolation{Group: "g-in", Policies: []string{"y/deny", "y/web"}}},
	}
	if diff := cmp.Diff(want, r.Pods); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if want := (Counts{LocalPods: 2, Groups: 3, Chains: 1, Rules: 2, Sets: 1, Elements: 2}); r.Counts != want {
		t.Errorf("counts %+v, want %+v", r.Counts, want)
	}
	r.Ready, r.Backend = true, "nftables"
	r.Verify = &Verify{Drift: []backend.Drift{{Kind: "element", Object: "s", Change: "missing", Detail: "10.32.0.8"}}}
	var buf bytes.Buffer
	r.WriteText(&buf)
	for _, line := range []string{
		"node node-1: weft , nftables backend, ready",
		"in force: 2 local pods, 3 groups, 1 chains, 2 rules, 1 sets, 2 set elements",
		"y/a  10.32.0.7,fd00::7  y/deny,y/web      - (open)",
		"x/b  10.32.0.6          - (open)          x/egress (audit)",
		"verify: 1 differences between the kernel and what weft applied:",
		"  missing element s: 10.32.0.8",
	} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("text lacks %q:\n%s", line, buf.String())
		}
	}
}
