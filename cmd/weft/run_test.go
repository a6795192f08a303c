package main

import (
	"strings"
	"testing"
)

func TestRunBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "pf"}, `--backend "pf": want one of auto, nftables, iptables`},
		{[]string{"--log-format", "xml"}, `--log-format "xml": want one of text, json`},
		{[]string{"--iptables-mode", "both"}, `--iptables-mode "both": want one of auto, nft, legacy`},
		{[]string{"--nflog-group", "70000"}, "--nflog-group 70000: want 0-65535"},
		{[]string{"--nflog-group", "x"}, `invalid value "x" for flag -nflog-group`},
		{[]string{"--nflog-group", "-1"}, "--nflog-group -1: want 0-65535"},
		{[]string{"--log-allowed", "--log-blocked=false"}, "--log-allowed needs the log rules that --log-blocked=false leaves out"},
		{[]string{"--metrics-addr", "6781"}, `--metrics-addr "6781": want HOST:PORT or :PORT`},
		{[]string{"--kubeconfig", "/nonexistent/kubeconfig", "--node-name", "n"}, "--kubeconfig: stat /nonexistent/kubeconfig"},
		{[]string{"--profiling", "--metrics-addr", ""}, "--profiling serves /debug/pprof/ on --metrics-addr, which is empty"},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--pod-cidrs", "10.244.1.0/33"}, `--pod-cidrs "10.244.1.0/33": want CIDRs such as`},
		{[]string{"--pod-cidrs", "10.244.1.0/24,banana"}, `--pod-cidrs "banana": want CIDRs such as`},
		{[]string{"--pod-cidrs", "10.244.1.7/24"}, `--pod-cidrs "10.244.1.7/24": host bits set; did you mean 10.244.1.0/24?`},
		{[]string{"--unknown-pod-traffic", "maybe"}, `--unknown-pod-traffic "maybe": want one of deny, allow`},
		{[]string{"--cni-socket", "weft.sock"}, `--cni-socket "weft.sock": want an absolute path`},
		{[]string{"--cut-revoked-connections=perhaps"}, `invalid boolean value "perhaps" for -cut-revoked-connections`},
		{[]string{"--log-summary-window", "-1s"}, "--log-summary-window -1s: want a duration of 0 (no folding) or more"},
		{[]string{"--mode", "observe"}, `--mode "observe": want enforce or audit`},
		{[]string{"--mode", "audit", "--log-blocked=false"}, "--mode audit reports what policy would block through the log rules that --log-blocked=false leaves out"},
	}
	for _, tc := range cases {
		code, _, errOut := runWeft(append([]string{"run"}, tc.args...)...)
		if code != exitUsage {
			t.Errorf("run %v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, errOut)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("run %v: stderr lacks %q:\n%s", tc.args, tc.want, errOut)
		}
	}
}

func TestCleanupBadFlags(t *testing.T) {
	code, _, errOut := runWeft("cleanup", "--backend", "ebpf")
	if code != exitUsage || !strings.Contains(errOut, `--backend "ebpf"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestGatherList(t *testing.T) {
	got := strings.Join(gatherList([]string{"--files", "a", "b", "--from", "x", "--files", "c"}, "files"), " ")
	if want := "--files=a --files=b --from x --files=c"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
