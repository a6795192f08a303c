package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/status"
)

func TestStatusWithoutDaemonNamesTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"status", "--addr", addr}, &stdout, &stderr)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	if want := "no weft daemon answers at http://" + addr + "/status"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}

func TestStatusBadUsage(t *testing.T) {
	for _, args := range [][]string{{"--addr", "nope"}, {"--output", "yaml"}, {"--verfy"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"status"}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("weft status %v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
}

// TestStatusVerifyExitStatus: the command prints the daemon's report and
// exits 3 when the kernel differs.
func TestStatusVerifyExitStatus(t *testing.T) {
	rep := status.Report{Node: "node-1", Backend: "nftables", Ready: true, Pods: []status.Pod{},
		Verify: &status.Verify{Drift: []backend.Drift{{Kind: "rule", Object: "weft-g-a", Change: "extra", Detail: "rule 1: accept"}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.URL.Query().Get("verify") == "" {
			http.Error(w, "want /status?verify=1", http.StatusBadRequest)
			return
		}
		writeJSON(w, rep)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"status", "--verify", "--addr", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
	if code != exitDrift {
		t.Errorf("exit %d, want %d; stderr %s", code, exitDrift, stderr.String())
	}
	if want := "  extra rule weft-g-a: rule 1: accept"; !strings.Contains(stdout.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, stdout.String())
	}
}

// TestStatusAnswersOnlyTheNode: /status is served on the metrics port,
// which host networking opens to every pod; it answers loopback peers only.
func TestStatusAnswersOnlyTheNode(t *testing.T) {
	h := statusHandler("node-1", "enforce", nil)
	for _, remote := range []string{"10.32.1.1:40000", "[fd00::1:1]:40000"} {
		req := httptest.NewRequest(http.MethodGet, "/status?verify=1", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "answers only on the node itself") {
			t.Errorf("from %s: %d %s, want 403 saying why", remote, rec.Code, rec.Body.String())
		}
	}
}
