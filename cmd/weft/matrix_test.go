package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/internal/reach"
	"github.com/weftnet/weft/internal/scenarios"
)

// writeScenario writes a catalogue scenario's model (namespaces, pods,
// nodes) and policies as manifest files into a new folder.
func writeScenario(t *testing.T, sc *scenarios.Scenario) string {
	t.Helper()
	m := sc.Model()
	var docs []string
	add := func(apiVersion, kind string, obj any) {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		fields["apiVersion"], fields["kind"] = apiVersion, kind
		y, err := yaml.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(y))
	}
	for _, ns := range m.Namespaces {
		add("v1", "Namespace", ns)
	}
	for _, p := range m.Pods {
		add("v1", "Pod", p)
	}
	for _, n := range m.Nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}}
		for _, ip := range n.IPs {
			node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
		}
		add("v1", "Node", node)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	docs = nil
	for _, p := range sc.Policies {
		add("networking.k8s.io/v1", "NetworkPolicy", p)
	}
	if len(docs) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "policies.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type matrixJSON struct {
	Protocol string        `json:"protocol"`
	Port     int           `json:"port"`
	Family   string        `json:"family"`
	WhatIf   []string      `json:"whatIf"`
	Before   *reach.Matrix `json:"before"`
	Matrix   *reach.Matrix `json:"matrix"`
	Changed  []reach.Cell  `json:"changed"`
}

func runMatrixJSON(t *testing.T, args ...string) matrixJSON {
	t.Helper()
	code, out, errOut := runWeft(append(append([]string{"matrix"}, args...), "--output", "json")...)
	if code != exitOK {
		t.Fatalf("weft matrix %v: exit %d\n%s", args, code, errOut)
	}
	var r matrixJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("weft matrix %v: output is not JSON: %v\n%s", args, err, out)
	}
	return r
}

// TestMatrixCatalogue writes every scenario of the catalogue as manifest
// files and checks that `weft matrix --files` prints, for every probe, the
// scenario's hand-written matrix between its pods (nodes and host-network
// pods are no rows of weft matrix).
func TestMatrixCatalogue(t *testing.T) {
	for _, sc := range scenarios.All() {
		t.Run(sc.Name, func(t *testing.T) {
			dir := writeScenario(t, sc)
			m := sc.Model()
			for _, p := range sc.Probes {
				got := runMatrixJSON(t, "--files", dir, "--port", fmt.Sprintf("%d/%s", p.Port, p.Protocol), "--family", fmt.Sprint(int(p.Family)))
				var names []string
				for _, name := range p.Expect.From {
					if e, ok := m.Endpoint(name); ok && e.Kind == scenarios.PodEndpoint {
						if _, has := e.IP(p.Family); has {
							names = append(names, name)
						}
					}
				}
				want := reach.NewMatrix(names, names, false)
				for _, from := range names {
					for _, to := range names {
						a, _ := p.Expect.Allowed(from, to)
						want.Set(from, to, a)
					}
				}
				if got.Matrix == nil {
					t.Fatalf("probe %s: no matrix", p.ProbeKey)
				}
				// weft matrix sorts pods by namespace/name; the catalogue
				// lists them in model order: compare cell by cell.
				sorted := reach.NewMatrix(got.Matrix.From, got.Matrix.To, false)
				for _, from := range got.Matrix.From {
					for _, to := range got.Matrix.To {
						a, ok := want.Allowed(from, to)
						if !ok {
							t.Fatalf("probe %s: weft matrix lists %s or %s, which the scenario's matrix lacks", p.ProbeKey, from, to)
						}
						sorted.Set(from, to, a)
					}
				}
				if len(got.Matrix.From) != len(names) {
					t.Errorf("probe %s: weft matrix lists %v, want the pods %v", p.ProbeKey, got.Matrix.From, names)
				}
				if d := reach.Diff(sorted, got.Matrix); d != "" {
					t.Errorf("probe %s:\n%s", p.ProbeKey, d)
				}
			}
		})
	}
}

// TestMatrixWhatIf: the three-tier policies as a what-if on the bare
// application, matrices written by hand.
func TestMatrixWhatIf(t *testing.T) {
	tier := "../../examples/three-tier"
	r := runMatrixJSON(t, "--files", tier+"/cluster.yaml", "--what-if", tier+"/policies.yaml", "--port", "8080")
	wantAfter := reach.MustParseMatrix(`
	                  outside/client shop/data shop/middle shop/presentation
	outside/client          .            X          X              X
	shop/data               .            .          X              X
	shop/middle             .            .          .              X
	shop/presentation       .            X          .              .`)
	if d := reach.Diff(wantAfter, r.Matrix); d != "" {
		t.Errorf("after:\n%s", d)
	}
	if d := reach.Diff(reach.NewMatrix(wantAfter.From, wantAfter.To, true), r.Before); d != "" {
		t.Errorf("before (no policy: all allowed):\n%s", d)
	}
	if len(r.Changed) != 7 || r.Changed[0] != (reach.Cell{From: "outside/client", To: "shop/data", Allowed: false}) {
		t.Errorf("changed cells: %+v", r.Changed)
	}
	if len(r.WhatIf) != 3 || r.WhatIf[0] != "NetworkPolicy shop/presentation-policy added" {
		t.Errorf("what-if changes: %v", r.WhatIf)
	}

	// The text form: before, after, the changes marked, and the summary.
	code, out, errOut := runWeft("matrix", "--files", tier+"/cluster.yaml", "--what-if", tier+"/policies.yaml", "--port", "8080", "--namespaces", "shop")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"What-if: NetworkPolicy shop/presentation-policy added, NetworkPolicy shop/middle-tier-policy added, NetworkPolicy shop/data-tier-policy added.",
		"Before (TCP/8080 over IPv4, 3 pods of the manifests;",
		"Changes ('-' blocked now, allowed before; '+' allowed now, blocked before):",
		"shop/middle           .          .              -",
		"4 of 9 cells change: 4 now blocked, 0 now allowed.",
		"  shop/presentation -> shop/data: now blocked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Taking a policy away again is a what-if too: replacing it with one
	// that selects nothing opens what it closed ('+').
	dir := t.TempDir()
	open := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: data-tier-policy, namespace: shop}
spec: {podSelector: {matchLabels: {tier: none}}}
`
	if err := os.WriteFile(filepath.Join(dir, "open.yaml"), []byte(open), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runMatrixJSON(t, "--files", tier, "--what-if", dir, "--pods", "shop/presentation,outside/client,shop/data", "--port", "5432")
	want := []reach.Cell{{From: "outside/client", To: "shop/data", Allowed: true}, {From: "shop/presentation", To: "shop/data", Allowed: true}}
	if fmt.Sprint(r.Changed) != fmt.Sprint(want) || r.WhatIf[0] != "NetworkPolicy shop/data-tier-policy replaced" {
		t.Errorf("changed %+v (what-if %v), want %+v", r.Changed, r.WhatIf, want)
	}
}

func TestMatrixChoosingPods(t *testing.T) {
	tier := "../../examples/three-tier"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"outside/client", "shop/data", "shop/middle", "shop/presentation"}},
		{[]string{"--namespaces", "outside"}, []string{"outside/client"}},
		{[]string{"--namespaces", "outside", "--pods", "shop/data,outside/client"}, []string{"outside/client", "shop/data"}},
		{[]string{"--pods", "shop/middle", "--pods", "shop/data", "--family", "6"}, []string{"shop/data", "shop/middle"}},
	} {
		r := runMatrixJSON(t, append([]string{"--files", tier}, tc.args...)...)
		if fmt.Sprint(r.Matrix.From) != fmt.Sprint(tc.want) || fmt.Sprint(r.Matrix.To) != fmt.Sprint(tc.want) {
			t.Errorf("%v: pods %v, want %v", tc.args, r.Matrix.From, tc.want)
		}
	}
}

func TestMatrixBadInput(t *testing.T) {
	tier := "../../examples/three-tier"
	dir := t.TempDir()
	newPod := "apiVersion: v1\nkind: Pod\nmetadata: {name: ghost, namespace: shop}\nstatus: {podIPs: [{ip: 10.32.0.99}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "new-pod.yaml"), []byte(newPod), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"--port", "80"}, "--files or --kubeconfig is required"},
		{"unknown namespace", []string{"--files", tier, "--namespaces", "shop,nope"}, `--namespaces: namespace "nope" is not in the manifests (namespaces: outside, shop)`},
		{"unknown pod", []string{"--files", tier, "--pods", "shop/ghost"}, "--pods: pod shop/ghost is not in the manifests (pods of namespace shop: data, middle, presentation)"},
		{"unknown namespace of a pod", []string{"--files", tier, "--pods", "y/a"}, `--pods: namespace "y" is not in the manifests`},
		{"pod without namespace", []string{"--files", tier, "--pods", "client"}, `--pods "client": want namespace/name`},
		{"bad family", []string{"--files", tier, "--family", "5"}, `--family "5"`},
		{"bad port", []string{"--files", tier, "--port", "0"}, "want a port number 1-65535"},
		{"what-if adds a pod", []string{"--files", tier, "--what-if", dir}, "what-if files may change pods, not add them: pod shop/ghost is not in the cluster"},
		{"YAML 1.1 boolean", []string{"--files", "../../internal/manifest/testdata/yaml11/namespace-y.yaml"}, `metadata.namespace (line 10): the unquoted value y is the boolean true in YAML 1.1`},
		{"kubeconfig missing", []string{"--kubeconfig", filepath.Join(dir, "nope")}, "--kubeconfig: stat"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWeft(append([]string{"matrix"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (bad usage or input)\nstderr: %s", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
			if out != "" {
				t.Errorf("stdout should be empty on bad input, got:\n%s", out)
			}
		})
	}
}

// TestUnknownKindsWarned: kinds weft does not read are listed on stderr and
// the command goes on.
func TestUnknownKindsWarned(t *testing.T) {
	dir := t.TempDir()
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	p := filepath.Join(dir, "deploy.yaml")
	if err := os.WriteFile(p, []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"matrix", "--files", "../../examples/three-tier", p},
		{"explain", "--files", "../../examples/three-tier", p, "--from", "shop/middle", "--to", "shop/data", "--port", "5432"},
	} {
		code, out, errOut := runWeft(args...)
		if code != exitOK || out == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %s", args, code, out, errOut)
		}
		for _, want := range []string{
			"warning: ignoring 2 object(s) of kinds weft does not read",
			p + ": document 1: Deployment shop/web",
			p + ": document 2: Service shop/web",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", args[0], want, errOut)
			}
		}
	}
}

// TestMatrixAPIServerAway: an API server that does not answer is a runtime
// failure (exit 1) that names the address tried.
func TestMatrixAPIServerAway(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	text := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(kc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"matrix", "explain"} {
		code, out, errOut := runWeft(cmd, "--kubeconfig", kc, "--timeout", "5s", "--from", "x/a", "--to", "x/b", "--port", "80")
		if cmd == "matrix" {
			code, out, errOut = runWeft(cmd, "--kubeconfig", kc, "--timeout", "5s")
		}
		if code != exitFailure || out != "" || !strings.Contains(errOut, "API server https://127.0.0.1:1: list namespaces:") {
			t.Errorf("%s: exit %d (want %d), stdout %q, stderr:\n%s", cmd, code, exitFailure, out, errOut)
		}
	}
}
