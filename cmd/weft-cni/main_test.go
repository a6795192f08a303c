package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/cni"
)

// pluginBin is weft-cni built for this test run.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-cni-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "weft-cni")
	// go test puts its own go first on PATH.
	build := exec.Command("go", "build", "-o", pluginBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build weft-cni: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// k8sArgs is CNI_ARGS as the CRI runtimes pass them for a pod.
const k8sArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;" +
	"K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0d6c0a55-5b8e-4a3c-9a43-2f9c5e1d7b10"

var testPod = cni.PodRef{Namespace: "ns", Name: "web-0", ContainerID: "abc123"}

// invocation is one run of the plugin as a container runtime does it.
type invocation struct {
	command string // CNI_COMMAND
	cniArgs string // CNI_ARGS
	conf    string // stdin
}

type outcome struct {
	stdout, stderr string
	exitCode       int
	elapsed        time.Duration
}

// start runs the plugin; the returned function waits for it to exit.
func (inv invocation) start(t *testing.T) (wait func() outcome, exited <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(pluginBin)
	cmd.Env = []string{
		"CNI_COMMAND=" + inv.command,
		"CNI_CONTAINERID=abc123",
		"CNI_NETNS=/var/run/netns/cni-weft-test-absent",
		"CNI_IFNAME=eth0",
		"CNI_ARGS=" + inv.cniArgs,
		"CNI_PATH=/opt/cni/bin",
	}
	cmd.Stdin = strings.NewReader(inv.conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start weft-cni: %v", err)
	}
	done := make(chan struct{})
	var out outcome
	go func() {
		defer close(done)
		err := cmd.Wait()
		out = outcome{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(begin)}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			out.exitCode = exitErr.ExitCode()
		case err != nil:
			out.exitCode = -1
			out.stderr += "\n(wait: " + err.Error() + ")"
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return func() outcome { <-done; return out }, done
}

func (inv invocation) run(t *testing.T) outcome {
	t.Helper()
	wait, _ := inv.start(t)
	out := wait()
	t.Logf("weft-cni %s: exit %d after %v\nstdout: %s\nstderr: %s", inv.command, out.exitCode, out.elapsed.Round(time.Millisecond), out.stdout, out.stderr)
	if strings.Contains(out.stderr, "panic:") {
		t.Errorf("weft-cni panicked")
	}
	return out
}

// cniError decodes stdout as exactly one CNI error result.
func (o outcome) cniError(t *testing.T) errorResult {
	t.Helper()
	var e errorResult
	dec := json.NewDecoder(strings.NewReader(o.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Fatalf("stdout is not one CNI error result (%v):\n%s", err, o.stdout)
	}
	if e.Code == 0 || e.Msg == "" {
		t.Errorf("error result without code or message: %+v", e)
	}
	return e
}

// fakeWeft is a cni.Handler that records calls; do, when set, decides the answer.
type fakeWeft struct {
	mu    sync.Mutex
	calls []cni.Request
	do    func(ctx context.Context, req cni.Request) error
}

func (f *fakeWeft) handle(ctx context.Context, command string, pod cni.PodRef, ips []netip.Addr) error {
	req := cni.Request{Command: command, Pod: pod, IPs: ips}
	f.mu.Lock()
	f.calls = append(f.calls, req)
	do := f.do
	f.mu.Unlock()
	if do == nil {
		return nil
	}
	return do(ctx, req)
}

func (f *fakeWeft) Add(ctx context.Context, pod cni.PodRef, ips []netip.Addr) error {
	return f.handle(ctx, cni.CommandAdd, pod, ips)
}

func (f *fakeWeft) Del(ctx context.Context, pod cni.PodRef, ips []netip.Addr) error {
	return f.handle(ctx, cni.CommandDel, pod, ips)
}

func (f *fakeWeft) Check(ctx context.Context, pod cni.PodRef, ips []netip.Addr) error {
	return f.handle(ctx, cni.CommandCheck, pod, ips)
}

func (f *fakeWeft) Calls() []cni.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cni.Request(nil), f.calls...)
}

// startWeft serves h with the real server on a real unix socket.
func startWeft(t *testing.T, h cni.Handler) string {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "cni.sock")
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := cni.Serve(ctx, path, h, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("CNI server: %v", err)
		}
	})
	return path
}

// shortTempDir is a fresh directory whose path leaves room for a socket name
// within the 108 bytes a unix socket path may have.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weftcni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

var cmpAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestVersion(t *testing.T) {
	t.Parallel()
	out := invocation{command: "VERSION", conf: `{"cniVersion":"1.0.0"}`}.run(t)
	if out.exitCode != 0 {
		t.Fatalf("VERSION exited %d", out.exitCode)
	}
	var info struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &info); err != nil {
		t.Fatalf("VERSION output is not JSON: %v\n%s", err, out.stdout)
	}
	want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if diff := cmp.Diff(want, info.SupportedVersions); diff != "" {
		t.Errorf("supported versions (-want +got):\n%s", diff)
	}
	if info.CNIVersion == "" {
		t.Error("VERSION output has no cniVersion")
	}
}

func TestWriteError(t *testing.T) {
	var buf bytes.Buffer
	writeError(&buf, "1.0.0", types.NewError(types.ErrTryAgainLater, "weft is not running", "details"))
	want := `{"cniVersion":"1.0.0","code":11,"msg":"weft is not running","details":"details"}`
	if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, buf.String())); diff != "" {
		t.Errorf("error result (-want +got):\n%s", diff)
	}
}
