package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// call is one Handler invocation as the fake saw it.
type call struct {
	Command  string
	Pod      PodRef
	IPs      []netip.Addr
	Deadline time.Time // zero when the context had none
}

// fakeHandler records every call and answers with do, when set.
type fakeHandler struct {
	mu    sync.Mutex
	calls []call
	do    func(ctx context.Context, c call) error
}

func (h *fakeHandler) record(ctx context.Context, command string, pod PodRef, ips []netip.Addr) error {
	c := call{Command: command, Pod: pod, IPs: ips}
	c.Deadline, _ = ctx.Deadline()
	h.mu.Lock()
	h.calls = append(h.calls, c)
	do := h.do
	h.mu.Unlock()
	if do == nil {
		return nil
	}
	return do(ctx, c)
}

func (h *fakeHandler) Add(ctx context.Context, pod PodRef, ips []netip.Addr) error {
	return h.record(ctx, CommandAdd, pod, ips)
}

func (h *fakeHandler) Del(ctx context.Context, pod PodRef, ips []netip.Addr) error {
	return h.record(ctx, CommandDel, pod, ips)
}

func (h *fakeHandler) Check(ctx context.Context, pod PodRef, ips []netip.Addr) error {
	return h.record(ctx, CommandCheck, pod, ips)
}

func (h *fakeHandler) Calls() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]call(nil), h.calls...)
}

// shortTempDir is a fresh directory with a short path: a unix socket's path
// must fit in 108 bytes, which t.TempDir() with a long test name may not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weftcni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// testLogger writes the server's log lines into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type testServer struct {
	path string
	stop func() error // cancels the server and waits for it
}

// startServer serves h on a socket in a directory that does not exist yet and
// stops it when the test ends.
func startServer(t *testing.T, h Handler) testServer {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "run", "weft", "cni.sock")
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := Serve(ctx, path, h, testLogger(t))
	if err != nil {
		cancel()
		t.Fatalf("Serve: %v", err)
	}
	stop := sync.OnceValue(func() error { cancel(); return wait() })
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	return testServer{path: path, stop: stop}
}

// exchange writes raw bytes as a request, half-closes, and returns what the
// server wrote back.
func exchange(t *testing.T, path string, raw []byte) string {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return string(out)
}

var testPod = PodRef{Namespace: "ns", Name: "web-0", ContainerID: "abc123"}

func TestServeSocketFileAndShutdown(t *testing.T) {
	srv := startServer(t, &fakeHandler{})
	dirInfo, err := os.Stat(filepath.Dir(srv.path))
	if err != nil {
		t.Fatal(err)
	}
	if got := dirInfo.Mode().Perm(); got != 0o700 {
		t.Errorf("socket directory mode = %v, want 0700", got)
	}
	info, err := os.Lstat(srv.path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != fs.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", info.Mode())
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("wait after cancel = %v, want nil", err)
	}
	if _, err := os.Lstat(srv.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after the server stopped: %v", err)
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "cni.sock")
	// A weft that died leaves its socket file behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale socket to test with: %v", err)
	}

	h := &fakeHandler{}
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := Serve(ctx, path, h, testLogger(t))
	if err != nil {
		cancel()
		t.Fatalf("Serve over a stale socket: %v", err)
	}
	defer func() { cancel(); _ = wait() }()
	resp, err := Call(context.Background(), path, Request{Command: CommandDel, Pod: testPod})
	if err != nil || !resp.OK {
		t.Fatalf("Call after replacing the stale socket = %+v, %v", resp, err)
	}
}

func TestServeRefusesLiveSocketAndOtherFiles(t *testing.T) {
	h := &fakeHandler{}
	srv := startServer(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Serve(ctx, srv.path, h, testLogger(t)); err == nil || !strings.Contains(err.Error(), "second weft") {
		t.Errorf("second Serve on a live socket: err = %v, want one about a second weft", err)
	}
	if resp, err := Call(context.Background(), srv.path, Request{Command: CommandDel, Pod: testPod}); err != nil || !resp.OK {
		t.Errorf("the first server no longer answers: %+v, %v", resp, err)
	}

	file := filepath.Join(shortTempDir(t), "cni.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(ctx, file, h, testLogger(t)); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve on a regular file: err = %v, want one saying it is not a socket", err)
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep me" {
		t.Errorf("Serve touched a regular file: %q, %v", data, err)
	}

	if _, err := Serve(ctx, filepath.Join(shortTempDir(t), "x.sock"), nil, nil); err == nil {
		t.Error("Serve with a nil handler succeeded")
	}
}

func TestServeMalformedRequests(t *testing.T) {
	h := &fakeHandler{}
	srv := startServer(t, h)
	tests := []struct {
		name    string
		raw     string
		wantErr string
	}{
		{"not JSON", "hello weft", "malformed CNI request: invalid character"},
		{"truncated", `{"command":"ADD","pod":{`, "malformed CNI request: unexpected EOF"},
		{"pod of the wrong type", `{"command":"ADD","pod":"web-0"}`, "Request.pod"},
		{"timeout of the wrong type", `{"command":"DEL","pod":{"containerID":"c"},"timeout":"10s"}`, "Request.timeout"},
		{"bad address", `{"command":"DEL","pod":{"containerID":"c"},"ips":["10.32.0.300"]}`, "10.32.0.300"},
		{"empty address", `{"command":"DEL","pod":{"containerID":"c"},"ips":[""]}`, "ips[0]"},
		{"null", `null`, "no command"},
		{"array", `[1,2]`, "malformed CNI request"},
		{"unknown command", `{"command":"GC","pod":{"containerID":"c"}}`, `unknown command "GC"`},
		{"add without pod name", `{"command":"ADD","pod":{"namespace":"ns","containerID":"c"}}`, "pod.namespace and pod.name"},
		{"del without container", `{"command":"DEL","pod":{}}`, "pod.containerID"},
		{"negative timeout", `{"command":"DEL","pod":{"containerID":"c"},"timeout":-1}`, "negative"},
		{"too large", `{"command":"` + strings.Repeat("A", maxRequestBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := exchange(t, srv.path, []byte(tt.raw))
			var resp Response
			if err := jsonUnmarshalStrict(out, &resp); err != nil {
				t.Fatalf("server answered %q: %v", out, err)
			}
			if resp.OK || !strings.Contains(resp.Error, tt.wantErr) {
				t.Errorf("response = %+v, want an error containing %q", resp, tt.wantErr)
			}
		})
	}
	if out := exchange(t, srv.path, nil); out != "" {
		t.Errorf("an empty connection got %q, want nothing", out)
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("the handler was called for malformed requests: %+v", calls)
	}
	// The server is still there.
	if resp, err := Call(context.Background(), srv.path, Request{Command: CommandCheck, Pod: testPod}); err != nil || !resp.OK {
		t.Errorf("Call after malformed requests = %+v, %v", resp, err)
	}
}

func TestServeAppliesRequestTimeout(t *testing.T) {
	tests := []struct {
		asked, want time.Duration
	}{
		{1500 * time.Millisecond, 1500 * time.Millisecond},
		{0, DefaultTimeout},
		{10 * time.Minute, MaxTimeout},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.asked), func(t *testing.T) {
			h := &fakeHandler{}
			srv := startServer(t, h)
			before := time.Now()
			// No deadline on ctx: the request's own timeout is what the server sees.
			resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd, Pod: testPod, Timeout: tt.asked})
			after := time.Now()
			if err != nil || !resp.OK {
				t.Fatalf("Call = %+v, %v", resp, err)
			}
			calls := h.Calls()
			if len(calls) != 1 {
				t.Fatalf("handler calls = %+v, want one", calls)
			}
			deadline := calls[0].Deadline
			if deadline.Before(before.Add(tt.want)) || deadline.After(after.Add(tt.want)) {
				t.Errorf("handler deadline %v after the call, want %v", deadline.Sub(before), tt.want)
			}
		})
	}
}

func TestServeDeadlineEndsHandler(t *testing.T) {
	h := &fakeHandler{do: func(ctx context.Context, _ call) error {
		<-ctx.Done()
		return fmt.Errorf("wait for the ruleset with pod ns/web-0: %w", ctx.Err())
	}}
	srv := startServer(t, h)
	resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd, Pod: testPod, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	for _, want := range []string{"not done within 50ms", "wait for the ruleset", "deadline exceeded"} {
		if resp.OK || !strings.Contains(resp.Error, want) {
			t.Errorf("response = %+v, want an error containing %q", resp, want)
		}
	}
}

func TestServeConnectionsConcurrently(t *testing.T) {
	secondDone := make(chan struct{})
	h := &fakeHandler{do: func(ctx context.Context, c call) error {
		if c.Pod.Name == "first" {
			// Answers only once the second request, sent after this one, is done.
			select {
			case <-secondDone:
				return nil
			case <-ctx.Done():
				return errors.New("the second request was not served while the first was running")
			}
		}
		return nil
	}}
	srv := startServer(t, h)
	first := make(chan Response, 1)
	go func() {
		resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd,
			Pod: PodRef{Namespace: "ns", Name: "first", ContainerID: "1"}, Timeout: 5 * time.Second})
		if err != nil {
			resp.Error = err.Error()
		}
		first <- resp
	}()
	waitFor(t, func() bool { return len(h.Calls()) == 1 })
	resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd,
		Pod: PodRef{Namespace: "ns", Name: "second", ContainerID: "2"}})
	if err != nil || !resp.OK {
		t.Fatalf("second Call = %+v, %v", resp, err)
	}
	close(secondDone)
	if resp := <-first; !resp.OK {
		t.Errorf("first Call = %+v", resp)
	}
}

func TestServeShutdownCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	h := &fakeHandler{do: func(ctx context.Context, _ call) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}}
	srv := startServer(t, h)
	done := make(chan Response, 1)
	go func() {
		resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd, Pod: testPod, Timeout: MaxTimeout})
		if err != nil {
			resp.Error = err.Error()
		}
		done <- resp
	}()
	<-started
	if err := srv.stop(); err != nil {
		t.Fatalf("wait = %v, want nil", err)
	}
	if resp := <-done; resp.OK || !strings.Contains(resp.Error, "shutting down") {
		t.Errorf("in-flight request got %+v, want an error saying weft is shutting down", resp)
	}
	if _, err := os.Lstat(srv.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
}

func TestServeSurvivesHandlerPanic(t *testing.T) {
	h := &fakeHandler{do: func(_ context.Context, c call) error {
		if c.Command == CommandAdd {
			panic("boom")
		}
		return nil
	}}
	srv := startServer(t, h)
	resp, err := Call(context.Background(), srv.path, Request{Command: CommandAdd, Pod: testPod})
	if err != nil {
		t.Fatal(err)
	}
	if resp.OK || !strings.Contains(resp.Error, "failed internally") || !strings.Contains(resp.Error, "boom") {
		t.Errorf("response to a panicking handler = %+v", resp)
	}
	if resp, err := Call(context.Background(), srv.path, Request{Command: CommandDel, Pod: testPod}); err != nil || !resp.OK {
		t.Errorf("Call after a panic = %+v, %v", resp, err)
	}
}

func TestServePassesRequestToHandler(t *testing.T) {
	h := &fakeHandler{do: func(_ context.Context, c call) error {
		if c.Command == CommandCheck {
			return errors.New("pod ns/web-0 is not in the ruleset")
		}
		return nil
	}}
	srv := startServer(t, h)
	ips := []netip.Addr{netip.MustParseAddr("10.32.0.7"), netip.MustParseAddr("fd00::7")}
	for _, req := range []Request{
		{Command: CommandAdd, Pod: testPod, IPs: ips},
		{Command: CommandCheck, Pod: testPod, IPs: ips},
		{Command: CommandDel, Pod: PodRef{ContainerID: "abc123"}},
	} {
		resp, err := Call(context.Background(), srv.path, req)
		if err != nil {
			t.Fatalf("Call(%s): %v", req.Command, err)
		}
		want := Response{OK: true}
		if req.Command == CommandCheck {
			want = Response{Error: "pod ns/web-0 is not in the ruleset"}
		}
		if diff := cmp.Diff(want, resp); diff != "" {
			t.Errorf("response to %s (-want +got):\n%s", req.Command, diff)
		}
	}
	want := []call{
		{Command: CommandAdd, Pod: testPod, IPs: ips},
		{Command: CommandCheck, Pod: testPod, IPs: ips},
		{Command: CommandDel, Pod: PodRef{ContainerID: "abc123"}},
	}
	if diff := cmp.Diff(want, h.Calls(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Deadline" }, cmp.Ignore())); diff != "" {
		t.Errorf("handler calls (-want +got):\n%s", diff)
	}
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// jsonUnmarshalStrict decodes exactly one JSON value, with no unknown fields,
// from s.
func jsonUnmarshalStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
