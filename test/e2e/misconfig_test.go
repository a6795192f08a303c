package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/lab"
)

// TestMisconfigurationIsSaid: weft started with a --node-name that no Node
// object has would isolate nothing; it says so in its log and in
// weft_misconfiguration, while the lab's bridges (br_netfilter on) raise no
// finding.
func TestMisconfigurationIsSaid(t *testing.T) {
	e := needEnv(t)
	node := e.lab.Nodes[0]
	w, err := e.lab.StartWeft(context.Background(), node, lab.WeftOptions{
		Binary: e.weft, Backend: "nftables", MetricsAddr: ":6794",
		Args: []string{"--node-name", "node-typo", "--cni-socket", "", "--profiling"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.lab.StopWeft(w)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.lab.WeftCleanup(ctx, node, e.weft, "nftables"); err != nil {
			t.Error(err)
		}
	})
	client := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 2 * time.Second}
	metrics := func() string {
		resp, err := client.Get("http://127.0.0.1:6794/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	want := []string{`weft_misconfiguration{check="node-name"} 1`, `weft_misconfiguration{check="bridge-nf-call-iptables"} 0`}
	deadline := time.Now().Add(waitFor)
	for m := metrics(); !containsAll(m, want); m = metrics() {
		if exited, err := w.Exited(); exited {
			t.Fatalf("weft exited: %v\n%s", err, tailLines(w.Log(), 20))
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q after %v:\n%s", want, waitFor, grepLines(m, "weft_misconfiguration"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// --profiling serves Go's profiles beside the metrics.
	if resp, err := client.Get("http://127.0.0.1:6794/debug/pprof/cmdline"); err != nil {
		t.Errorf("--profiling: GET /debug/pprof/cmdline: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "node-typo") {
			t.Errorf("--profiling: /debug/pprof/cmdline answers %s: %q, want weft's command line", resp.Status, b)
		}
	}
	if log := w.Log(); !strings.Contains(log, "misconfiguration: no Node object is named like --node-name") || !strings.Contains(log, "node-typo") {
		t.Errorf("weft's log does not say that --node-name matches no Node:\n%s", tailLines(log, 20))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
