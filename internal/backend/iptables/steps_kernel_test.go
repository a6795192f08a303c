package iptables

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/ir"
)

func TestKernelNarrowAndGrowNFT(t *testing.T)    { inNamespace(t, ModeNFT, testNarrowAndGrow) }
func TestKernelNarrowAndGrowLegacy(t *testing.T) { inNamespace(t, ModeLegacy, testNarrowAndGrow) }

// testNarrowAndGrow applies the example of issue 13 to the kernel (a rule's
// ports narrow while its peer set gains pod d), with the policy chain
// walked and merged into sets. After every command the backend runs that
// changes something, a real SYN goes from d to a on the port that neither
// ruleset opens to d: it must never pass. At the end d reaches a on 80.
func testNarrowAndGrow(t *testing.T, mode Mode) {
	sh(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	startPod(t, "a", podA)
	d := startPod(t, "d", podD)
	for _, tc := range []struct {
		name   string
		budget int
		old    func() *ir.Ruleset
		closed uint16
	}{
		{"walking", -1, sampleRuleset, 85},
		{"merged", DefaultMergeBudget, mergedRuleset, 81},
	} {
		b := newTestBackend(t, mode)
		b.budget = tc.budget
		if err := b.Apply(context.Background(), tc.old()); err != nil {
			t.Fatal(err)
		}
		if connectWithin(t, d, podA, tc.closed, "0.3") {
			t.Fatalf("%s: d reaches a:%d before the change", tc.name, tc.closed)
		}
		var probed []string
		run := b.run
		b.run = func(name string, args []string, input string) (string, error) {
			out, err := run(name, args, input)
			if strings.HasSuffix(name, "-restore") || name == "ipset" && slices.Contains(args, "restore") {
				step := strings.TrimSpace(name + " " + firstLine(input))
				probed = append(probed, step)
				if connectWithin(t, d, podA, tc.closed, "0.3") {
					t.Errorf("%s: after %q d reaches a:%d, which neither ruleset allows", tc.name, step, tc.closed)
				}
			}
			return out, err
		}
		if err := b.Apply(context.Background(), narrowAndGrow(tc.old())); err != nil {
			t.Fatal(err)
		}
		b.run = run
		t.Logf("%s: probed after %q", tc.name, probed)
		if len(probed) < 3 {
			t.Errorf("%s: only %d steps probed, the change should take more", tc.name, len(probed))
		}
		if !connect(t, d, podA, 80) {
			t.Errorf("%s: d does not reach a:80 after the change", tc.name)
		}
		if connectWithin(t, d, podA, tc.closed, "0.3") {
			t.Errorf("%s: d reaches a:%d after the change", tc.name, tc.closed)
		}
		if err := b.Cleanup(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
