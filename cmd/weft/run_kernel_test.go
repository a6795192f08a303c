package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netnstest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`

// TestRunWithUnreachableAPIServer: weft keeps retrying with a clear log line,
// reports not ready, programs nothing, and stops cleanly on SIGTERM (ctx).
func TestRunWithUnreachableAPIServer(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(unreachableKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--kubeconfig", kc, "--node-name", "n1", "--metrics-addr", "127.0.0.1:16781", "--backend", "nftables", "--cni-socket", ""}, io.Discard, &stderr)
	}()

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "still waiting for the API server") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'still waiting for the API server' log line; stderr:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "127.0.0.1:1") {
		t.Errorf("log should name the API server it cannot reach:\n%s", stderr.String())
	}
	resp, err := http.Get("http://127.0.0.1:16781/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while the API server is unreachable, want 503", resp.StatusCode)
	}
	if resp, err := http.Get("http://127.0.0.1:16781/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz should answer 200 while alive: %v %v", resp, err)
	}
	// Nothing is programmed before weft knows the cluster.
	if out, err := exec.Command("nft", "list", "table", "inet", "weft").CombinedOutput(); err == nil {
		t.Errorf("table inet weft exists although no ruleset was ever computed:\n%s", out)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d after stop, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("weft run did not stop within 10s of its context ending")
	}
}
