package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runWeft(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExplain(t *testing.T) {
	tier := "../../examples/three-tier"
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"blocked by middle-tier policy", []string{"explain", "--files", tier, "--from", "outside/client", "--to", "shop/middle", "--port", "80"}, exitBlocked,
			[]string{"BLOCKED: TCP connection from outside/client 10.32.0.20 to shop/middle 10.32.0.11:80", "ingress of shop/middle: BLOCKED (isolated by shop/middle-tier-policy, and no ingress rule allows it)"}},
		{"allowed from presentation", []string{"explain", "--files", tier + "/cluster.yaml", tier + "/policies.yaml", "--from", "shop/presentation", "--to", "shop/middle", "--port", "8080"}, exitOK,
			[]string{"ALLOWED", "allowed by shop/middle-tier-policy spec.ingress[0]"}},
		{"presentation open on TCP 80 from anywhere", []string{"explain", "--files", tier, "--from", "10.1.2.3", "--to", "shop/presentation", "--port", "80/TCP"}, exitOK,
			[]string{"ALLOWED: TCP connection from 10.1.2.3 to shop/presentation 10.32.0.10:80", "egress of 10.1.2.3: allowed (the source is not a pod"}},
		{"presentation closed on UDP 80", []string{"explain", "--files", tier, "--from", "outside/client", "--to", "shop/presentation", "--port", "80/udp"}, exitBlocked,
			[]string{"BLOCKED: UDP connection"}},
		{"IPv6 address picks IPv6 of the pod", []string{"explain", "--files", tier, "--from", "fd00::20", "--to", "shop/data", "--port", "5432"}, exitBlocked,
			[]string{"to shop/data fd00::12:5432"}},
		{"data tier open to middle", []string{"explain", "--files=" + tier, "--from=shop/middle", "--to=shop/data", "--port=5432"}, exitOK, []string{"ALLOWED"}},
		{"unpoliced pod", []string{"explain", "--files", tier, "--from", "shop/data", "--to", "outside/client", "--port", "22"}, exitOK,
			[]string{"ingress of outside/client: allowed (not isolated: no policy selects it for ingress)"}},
		{"an Admin Deny beats the NetworkPolicy that lets everyone into presentation", []string{"explain", "--files", tier, "testdata/admin-deny-outside.yaml", "--from", "outside/client", "--to", "shop/presentation", "--port", "80"}, exitBlocked,
			[]string{"ingress of shop/presentation: BLOCKED (Admin tier: clusternetworkpolicy deny-outside spec.ingress[0] denies it)"}},
		{"the Admin Deny leaves other sources to NetworkPolicy", []string{"explain", "--files", tier, "testdata/admin-deny-outside.yaml", "--from", "10.1.2.3", "--to", "shop/presentation", "--port", "80"}, exitOK,
			[]string{"ALLOWED"}},
		{"broken policy fails closed and says why", []string{"explain", "--files", "testdata/broken-policy.yaml", "--from", "x/b", "--to", "x/a", "--port", "80"}, exitBlocked,
			[]string{"isolated by x/bad-cidr", `warning: networkpolicy x/bad-cidr: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "10.32.0.0/33"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWeft(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	code, out, errOut := runWeft("explain", "--files", "../../examples/three-tier", "--from", "outside/client", "--to", "shop/data", "--port", "5432", "--output", "json")
	if code != exitBlocked {
		t.Fatalf("exit %d, want %d: %s", code, exitBlocked, errOut)
	}
	var r struct {
		Verdict   string   `json:"verdict"`
		BlockedBy []string `json:"blockedBy"`
		Ingress   struct {
			Pod        string   `json:"pod"`
			IsolatedBy []string `json:"isolatedBy"`
		} `json:"ingress"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if r.Verdict != "blocked" || len(r.BlockedBy) != 1 || r.BlockedBy[0] != "ingress" || r.Ingress.Pod != "shop/data" ||
		len(r.Ingress.IsolatedBy) != 1 || r.Ingress.IsolatedBy[0] != "shop/data-tier-policy" {
		t.Fatalf("unexpected report: %+v", r)
	}
}

func TestExplainBadInput(t *testing.T) {
	tier := "../../examples/three-tier"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"malformed YAML names file and document", []string{"--files", "testdata/malformed.yaml", "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80"}, "testdata/malformed.yaml: document 2:"},
		{"wrong field type names file and document", []string{"--files", "testdata/wrong-type.yaml", "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80"}, "testdata/wrong-type.yaml: document 2: NetworkPolicy:"},
		{"missing file", []string{"--files", "testdata/nope.yaml", "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80"}, "testdata/nope.yaml"},
		{"no files", []string{"--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80"}, "--files or --kubeconfig is required"},
		{"no port", []string{"--files", tier, "--from", "1.2.3.4", "--to", "1.2.3.5"}, "--port is required"},
		{"bad port", []string{"--files", tier, "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "99999"}, "want a port number 1-65535"},
		{"bad protocol", []string{"--files", tier, "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80/ICMP"}, `unknown protocol "ICMP"`},
		{"unknown pod", []string{"--files", tier, "--from", "shop/ghost", "--to", "1.2.3.5", "--port", "80"}, "--from: pod shop/ghost is not in the manifests (pods of namespace shop: data, middle, presentation)"},
		{"unknown namespace", []string{"--files", tier, "--from", "1.2.3.5", "--to", "y/a", "--port", "80"}, `--to: namespace "y" is not in the manifests (namespaces: outside, shop)`},
		{"YAML 1.1 boolean namespace", []string{"--files", "../../internal/manifest/testdata/yaml11/namespace-y.yaml", "--from", "y/a", "--to", "1.2.3.5", "--port", "80"}, `namespace-y.yaml: document 2: metadata.namespace (line 10): the unquoted value y is the boolean true in YAML 1.1 (kubectl reads it so too), not the string "y": quote it: namespace: "y"`},
		{"kubeconfig missing", []string{"--kubeconfig", "testdata/nope.kubeconfig", "--from", "1.2.3.4", "--to", "1.2.3.5", "--port", "80"}, "--kubeconfig: stat testdata/nope.kubeconfig"},
		{"bad endpoint", []string{"--files", tier, "--from", "ghost", "--to", "1.2.3.5", "--port", "80"}, "want namespace/pod or an IP address"},
		{"families differ", []string{"--files", tier, "--from", "10.0.0.1", "--to", "fd00::1", "--port", "80"}, "no IP family in common"},
		{"bad output", []string{"--files", tier, "--from", "10.0.0.1", "--to", "10.0.0.2", "--port", "80", "--output", "xml"}, `--output "xml"`},
		{"unknown flag", []string{"--filez", tier}, "flag provided but not defined: -filez"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWeft(append([]string{"explain"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (bad usage or input)", code, exitUsage)
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

func TestUsage(t *testing.T) {
	if code, _, errOut := runWeft(); code != exitUsage || !strings.Contains(errOut, "Usage:") {
		t.Fatalf("no arguments: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runWeft("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runWeft("version"); code != exitOK || !strings.HasPrefix(out, "weft ") {
		t.Fatalf("version: exit %d, out %q", code, out)
	}
}

// TestExplainWhatIf explains under what-if files and says what the verdict
// was without them.
func TestExplainWhatIf(t *testing.T) {
	code, out, errOut := runWeft("explain", "--files", "../../examples/three-tier", "--what-if", "../../examples/what-if/open-middle.yaml",
		"--from", "outside/client", "--to", "shop/middle", "--port", "80")
	if code != exitOK || !strings.Contains(out, "ALLOWED") {
		t.Errorf("exit %d, want %d (allowed once the what-if opens the middle tier):\n%s%s", code, exitOK, out, errOut)
	}
	want := "weft explain: what-if: NetworkPolicy shop/middle-tier-policy replaced; without them the connection is BLOCKED"
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
}
