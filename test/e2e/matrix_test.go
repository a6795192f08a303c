package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/internal/reach"
	"github.com/weftnet/weft/internal/scenarios"
)

// weftCLI runs the weft binary inside the first node, where the lab's
// kubeconfig reaches the API server, and returns its exit status, stdout
// and stderr.
func (c *cluster) weftCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return c.weftCLIOn(t, 0, args...)
}

// weftCLIOn is weftCLI inside node i.
func (c *cluster) weftCLIOn(t testing.TB, i int, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.lab.Nodes[i].NetNS, c.env.weft}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("weft %v: %v", args, err)
	return 0, "", ""
}

// liveMatrix is `weft matrix --kubeconfig ... --output json`.
type liveMatrix struct {
	WhatIf  []string      `json:"whatIf"`
	Before  *reach.Matrix `json:"before"`
	Matrix  *reach.Matrix `json:"matrix"`
	Changed []reach.Cell  `json:"changed"`
}

func (c *cluster) weftMatrix(t testing.TB, args ...string) liveMatrix {
	t.Helper()
	args = append([]string{"matrix", "--kubeconfig", c.lab.Kubeconfig(), "--namespaces", "x,y,z", "--output", "json"}, args...)
	code, out, errOut := c.weftCLI(t, args...)
	if code != 0 {
		t.Fatalf("weft %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	var m liveMatrix
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Matrix == nil {
		t.Fatalf("weft %s: not a matrix (%v):\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

// storyMatrixLive: `weft matrix --kubeconfig` and `weft explain
// --kubeconfig` against the lab's API server. On a catalogue scenario (its
// matrices already checked against the kernel by runScenario), weft matrix
// prints the scenario's matrix and the one the lab probes; a what-if policy
// given with --files predicts the matrix the kernel shows once the policy
// is created for real; explain agrees cell by cell and refuses unknown pods.
func storyMatrixLive(t *testing.T, c *cluster) {
	sc := scenarios.ByName("ingress-and-egress")
	c.runScenario(t, sc)
	if t.Failed() {
		return
	}
	ctx := context.Background()
	for _, p := range sc.Probes {
		got := c.weftMatrix(t, "--port", itoa(int(p.Port))+"/"+string(p.Protocol), "--family", itoa(int(p.Family)))
		if d := reach.Diff(p.Expect, got.Matrix); d != "" {
			t.Errorf("weft matrix, probe %s, against the scenario's matrix:\n%s", p.ProbeKey, d)
		}
		eps := c.endpoints(t, got.Matrix.From)
		probed, errs := c.lab.ProbeMatrix(ctx, eps, eps, target(p.ProbeKey))
		if d := reach.Diff(probed, got.Matrix); d != "" {
			t.Errorf("weft matrix, probe %s, against the probed matrix (probe errors %v):\n%s", p.ProbeKey, errs, d)
		}
	}

	// explain agrees with the matrix, as exit status and words.
	kc := c.lab.Kubeconfig()
	for _, tc := range []struct {
		from, to string
		code     int
		says     string
	}{
		{"y/a", "y/b", 3, "egress of y/a: BLOCKED"},
		{"z/a", "y/c", 0, "ALLOWED"},
		{"x/a", "y/a", 3, "ingress of y/a: BLOCKED"},
	} {
		code, out, errOut := c.weftCLI(t, "explain", "--kubeconfig", kc, "--from", tc.from, "--to", tc.to, "--port", "80")
		if code != tc.code || !strings.Contains(out, tc.says) {
			t.Errorf("weft explain --from %s --to %s: exit %d (want %d), output lacks %q?\n%s%s", tc.from, tc.to, code, tc.code, tc.says, out, errOut)
		}
		t.Logf("weft explain --kubeconfig K --from %s --to %s --port 80 (exit %d):\n%s", tc.from, tc.to, code, out)
	}
	code, _, errOut := c.weftCLI(t, "explain", "--kubeconfig", kc, "--from", "y/ghost", "--to", "y/a", "--port", "80")
	if code != 2 || !strings.Contains(errOut, "pod y/ghost is not in the cluster (pods of namespace y: a, b, c)") {
		t.Errorf("explain of an unknown pod: exit %d, want 2 with a clear error:\n%s", code, errOut)
	}
	code, _, errOut = c.weftCLI(t, "matrix", "--kubeconfig", kc, "--namespaces", "x,nope")
	if code != 2 || !strings.Contains(errOut, `namespace "nope" is not in the cluster`) {
		t.Errorf("matrix of an unknown namespace: exit %d, want 2 with a clear error:\n%s", code, errOut)
	}

	// What-if: x accepts only x. Predict, then create it and probe.
	whatIf := netpol("x", "x-from-x", networkingv1.NetworkPolicySpec{
		Ingress: fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(scenarios.NamespaceLabel, "x")}),
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "x-from-x.yaml")
	if err := os.WriteFile(path, []byte(policyYAML(t, whatIf)), 0o644); err != nil {
		t.Fatal(err)
	}
	// (ip netns exec keeps the host's file system: weft inside the node
	// reads the file.)
	r := c.weftMatrix(t, "--files", path, "--port", "80/TCP")
	tcp80Expect := sc.Probes[0].Expect
	if d := reach.Diff(tcp80Expect, r.Before); d != "" {
		t.Errorf("what-if: before is not the scenario's matrix:\n%s", d)
	}
	if len(r.WhatIf) != 1 || r.WhatIf[0] != "NetworkPolicy x/x-from-x added" || len(r.Changed) == 0 {
		t.Errorf("what-if: changes %v, %d changed cells", r.WhatIf, len(r.Changed))
	}
	if code, out, errOut := c.weftCLI(t, "matrix", "--kubeconfig", kc, "--files", path, "--namespaces", "x,y"); code != 0 {
		t.Errorf("weft matrix what-if, text: exit %d\n%s", code, errOut)
	} else {
		t.Logf("weft matrix --kubeconfig K --files x-from-x.yaml --namespaces x,y:\n%s", out)
	}
	c.create(t, whatIf)
	c.expectMatrix(t, tcp80, r.Matrix)
	if after := c.weftMatrix(t, "--port", "80"); !after.Matrix.Equal(r.Matrix) {
		t.Errorf("weft matrix after creating the policy differs from the what-if's prediction:\n%s", reach.Diff(r.Matrix, after.Matrix))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// policyYAML is p as a manifest.
func policyYAML(t testing.TB, p *networkingv1.NetworkPolicy) string {
	t.Helper()
	p = p.DeepCopy()
	p.APIVersion, p.Kind = "networking.k8s.io/v1", "NetworkPolicy"
	b, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
