package cni

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCallMissingSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "run", "weft", "cni.sock")
	_, err := Call(context.Background(), path, Request{Command: CommandAdd, Pod: testPod})
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || unreachable.Path != path {
		t.Fatalf("Call on a missing socket = %v, want an *UnreachableError for %s", err, path)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %v does not wrap ENOENT", err)
	}
	for _, want := range []string{"dial unix " + path, "no such file", "is weft running on this node?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestCallStaleSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "cni.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, err = Call(context.Background(), path, Request{Command: CommandDel, Pod: testPod})
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Call on a socket nobody listens on = %v, want an *UnreachableError wrapping ECONNREFUSED", err)
	}
	if !strings.Contains(err.Error(), "is weft running on this node?") {
		t.Errorf("error %q does not ask whether weft runs", err)
	}
}

// Call asks weft to finish before the caller's deadline, so that weft's own
// answer, not a bare timeout, reaches the caller.
func TestCallLeavesWeftTimeToAnswer(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "cni.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan Request, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var req Request
		if err := json.NewDecoder(conn).Decode(&req); err != nil {
			return
		}
		got <- req
		_ = json.NewEncoder(conn).Encode(Response{Error: "pod ns/web-0 not yet in the ruleset"})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := Call(ctx, path, Request{Command: CommandAdd, Pod: testPod})
	if err != nil {
		t.Fatalf("Call = %v, want weft's answer", err)
	}
	if resp.OK || resp.Error != "pod ns/web-0 not yet in the ruleset" {
		t.Errorf("response = %+v, want weft's error", resp)
	}
	req := <-got
	// A tenth of the two seconds left, truncated to milliseconds.
	if req.Timeout <= 0 || req.Timeout > 1800*time.Millisecond || req.Timeout%time.Millisecond != 0 {
		t.Errorf("weft was given %v, want whole milliseconds, at most 1.8s", req.Timeout)
	}

	// A timeout the caller chose is sent as it is.
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var req Request
		if err := json.NewDecoder(conn).Decode(&req); err != nil {
			return
		}
		got <- req
		_ = json.NewEncoder(conn).Encode(Response{OK: true})
	}()
	if _, err := Call(ctx, path, Request{Command: CommandAdd, Pod: testPod, Timeout: 1234 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if req := <-got; req.Timeout != 1234*time.Millisecond {
		t.Errorf("weft was given %v, want the caller's 1.234s", req.Timeout)
	}
}

// A handler that ignores its context: the client gives up at its deadline.
func TestCallTimesOut(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{do: func(context.Context, call) error { <-release; return nil }}
	srv := startServer(t, h)
	t.Cleanup(func() { close(release) }) // runs before the server stops
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Call(ctx, srv.path, Request{Command: CommandAdd, Pod: testPod})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), srv.path) || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("error %q does not name the socket and say weft did not answer", err)
	}
}

func TestCallCancel(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	h := &fakeHandler{do: func(context.Context, call) error { close(started); <-release; return nil }}
	srv := startServer(t, h)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := Call(ctx, srv.path, Request{Command: CommandAdd, Pod: testPod})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want an error wrapping context.Canceled", err)
	}
}

func TestCallServerClosesWithoutAnswer(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "cni.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = conn.Read(make([]byte, 4096))
		conn.Close()
	}()
	_, err = Call(context.Background(), path, Request{Command: CommandAdd, Pod: testPod})
	if err == nil || !strings.Contains(err.Error(), "closed the connection without answering") {
		t.Fatalf("Call = %v, want an error saying weft closed the connection", err)
	}
}

func TestCallRejectsInvalidRequest(t *testing.T) {
	_, err := Call(context.Background(), "/nonexistent/cni.sock", Request{Command: CommandAdd, Pod: PodRef{ContainerID: "c"}})
	if err == nil || !strings.Contains(err.Error(), "invalid CNI request") {
		t.Fatalf("Call = %v, want an invalid-request error", err)
	}
}
