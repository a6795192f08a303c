package main

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weftnet/weft/internal/cni"
)

func TestAddPassesPrevResultThrough(t *testing.T) {
	t.Parallel()
	for _, prev := range []struct{ version, result string }{{"1.0.0", prevResult100}, {"0.4.0", prevResult040}} {
		t.Run(prev.version, func(t *testing.T) {
			t.Parallel()
			weft := &fakeWeft{}
			socket := startWeft(t, weft)
			out := invocation{command: "ADD", cniArgs: k8sArgs,
				conf: netConf(t, prev.version, map[string]any{"socket": socket, "prevResult": prev.result})}.run(t)
			if out.exitCode != 0 || out.stderr != "" {
				t.Fatalf("ADD exited %d, stderr %q", out.exitCode, out.stderr)
			}
			if diff := cmp.Diff(jsonValue(t, prev.result), jsonValue(t, out.stdout)); diff != "" {
				t.Errorf("ADD result is not prevResult (-want +got):\n%s", diff)
			}
			want := []cni.Request{{Command: cni.CommandAdd, Pod: testPod, IPs: podIPs}}
			if diff := cmp.Diff(want, weft.Calls(), cmpAddrs); diff != "" {
				t.Errorf("weft was asked (-want +got):\n%s", diff)
			}
		})
	}
}

// ADD returns only when weft answers, and what weft answers decides.
func TestAddWaitsForWeft(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		answer  error
		wantRun bool
	}{
		{"programmed", nil, true},
		{"refused", errors.New("pod ns/web-0 is not in the API server's view yet"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entered := make(chan struct{})
			release := make(chan struct{})
			weft := &fakeWeft{do: func(ctx context.Context, _ cni.Request) error {
				close(entered)
				select {
				case <-release:
					return tt.answer
				case <-ctx.Done():
					return errors.New("the test did not release the handler")
				}
			}}
			socket := startWeft(t, weft)
			inv := invocation{command: "ADD", cniArgs: k8sArgs,
				conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "timeout": "20s", "prevResult": prevResult100})}
			wait, exited := inv.start(t)
			<-entered
			select {
			case <-exited:
				t.Fatalf("weft-cni exited while weft was still working: %+v", wait())
			default:
			}
			close(release)
			out := wait()
			t.Logf("exit %d\nstdout: %s\nstderr: %s", out.exitCode, out.stdout, out.stderr)
			if tt.wantRun {
				if out.exitCode != 0 {
					t.Fatalf("ADD exited %d", out.exitCode)
				}
				if diff := cmp.Diff(jsonValue(t, prevResult100), jsonValue(t, out.stdout)); diff != "" {
					t.Errorf("ADD result (-want +got):\n%s", diff)
				}
				return
			}
			if out.exitCode == 0 {
				t.Fatal("ADD succeeded although weft refused")
			}
			e := out.cniError(t)
			if e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, tt.answer.Error()) || !strings.Contains(e.Msg, socket) {
				t.Errorf("error result %+v, want code 11 naming the socket and saying what weft said", e)
			}
		})
	}
}

func TestAddTimeoutFailsClosed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	// weft hangs: the plugin gives up on its own.
	weft := &fakeWeft{do: func(context.Context, cni.Request) error { <-release; return nil }}
	socket := startWeft(t, weft)
	t.Cleanup(func() { close(release) })
	out := invocation{command: "ADD", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "timeout": "300ms", "prevResult": prevResult100})}.run(t)
	if out.exitCode == 0 {
		t.Fatal("ADD succeeded although weft did not confirm the pod")
	}
	e := out.cniError(t)
	if e.CNIVersion != "1.0.0" || e.Code != types.ErrTryAgainLater {
		t.Errorf("error result %+v, want version 1.0.0 and code 11", e)
	}
	for _, want := range []string{socket, "ns/web-0", "within 300ms", "did not answer"} {
		if !strings.Contains(e.Msg, want) {
			t.Errorf("message %q does not contain %q", e.Msg, want)
		}
	}
	if out.elapsed > 5*time.Second {
		t.Errorf("ADD took %v with a 300ms timeout", out.elapsed)
	}
}

// The plugin gives weft less than its own timeout, so that weft's account of
// what it waited for reaches the runtime.
func TestAddGivesWeftTimeToAnswer(t *testing.T) {
	t.Parallel()
	granted := make(chan time.Duration, 1)
	weft := &fakeWeft{do: func(ctx context.Context, _ cni.Request) error {
		deadline, _ := ctx.Deadline()
		granted <- time.Until(deadline)
		return errors.New("ruleset with pod ns/web-0 not applied yet")
	}}
	socket := startWeft(t, weft)
	out := invocation{command: "ADD", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "timeout": "2s", "prevResult": prevResult100})}.run(t)
	if out.exitCode == 0 {
		t.Fatal("ADD succeeded although weft refused")
	}
	if e := out.cniError(t); !strings.Contains(e.Msg, "ruleset with pod ns/web-0 not applied yet") {
		t.Errorf("error result %+v, want weft's reason", e)
	}
	if d := <-granted; d <= 0 || d > 1800*time.Millisecond {
		t.Errorf("weft was given %v of the plugin's 2s, want at most 1.8s", d)
	}
}

func TestAddMissingSocket(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(shortTempDir(t), "run", "weft", "cni.sock")
	out := invocation{command: "ADD", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": prevResult100})}.run(t)
	if out.exitCode == 0 {
		t.Fatal("ADD succeeded without weft")
	}
	e := out.cniError(t)
	if e.Code != types.ErrTryAgainLater {
		t.Errorf("code = %d, want 11", e.Code)
	}
	for _, want := range []string{"dial unix " + socket, "no such file", "is weft running on this node?"} {
		if !strings.Contains(e.Msg, want) {
			t.Errorf("message %q does not contain %q", e.Msg, want)
		}
	}
}

func TestAddFailOpen(t *testing.T) {
	t.Parallel()
	t.Run("no weft", func(t *testing.T) {
		t.Parallel()
		socket := filepath.Join(shortTempDir(t), "cni.sock")
		out := invocation{command: "ADD", cniArgs: k8sArgs,
			conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "failOpen": true, "prevResult": prevResult100})}.run(t)
		if out.exitCode != 0 {
			t.Fatalf("ADD with failOpen exited %d", out.exitCode)
		}
		if diff := cmp.Diff(jsonValue(t, prevResult100), jsonValue(t, out.stdout)); diff != "" {
			t.Errorf("ADD result (-want +got):\n%s", diff)
		}
		for _, want := range []string{"warning", "failOpen", "ns/web-0", socket, "is weft running on this node?"} {
			if !strings.Contains(out.stderr, want) {
				t.Errorf("stderr %q does not contain %q", out.stderr, want)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		weft := &fakeWeft{do: func(ctx context.Context, _ cni.Request) error { <-ctx.Done(); return ctx.Err() }}
		socket := startWeft(t, weft)
		out := invocation{command: "ADD", cniArgs: k8sArgs,
			conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "timeout": "200ms", "failOpen": true, "prevResult": prevResult100})}.run(t)
		if out.exitCode != 0 || !strings.Contains(out.stderr, "warning") {
			t.Fatalf("ADD with failOpen exited %d, stderr %q", out.exitCode, out.stderr)
		}
		if diff := cmp.Diff(jsonValue(t, prevResult100), jsonValue(t, out.stdout)); diff != "" {
			t.Errorf("ADD result (-want +got):\n%s", diff)
		}
	})
}

func TestAddWithoutPodIdentityPassesThrough(t *testing.T) {
	t.Parallel()
	weft := &fakeWeft{}
	socket := startWeft(t, weft)
	for _, args := range []string{"", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns"} {
		out := invocation{command: "ADD", cniArgs: args,
			conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": prevResult100})}.run(t)
		if out.exitCode != 0 {
			t.Fatalf("ADD of a non-pod sandbox exited %d", out.exitCode)
		}
		if diff := cmp.Diff(jsonValue(t, prevResult100), jsonValue(t, out.stdout)); diff != "" {
			t.Errorf("ADD result (-want +got):\n%s", diff)
		}
	}
	if calls := weft.Calls(); len(calls) != 0 {
		t.Errorf("weft was asked about a sandbox that is no pod: %+v", calls)
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	weft := &fakeWeft{}
	socket := startWeft(t, weft)
	tests := []struct {
		name     string
		command  string
		conf     string
		wantCode uint
		wantMsg  string
	}{
		{"not JSON", "ADD", "cniVersion: 1.0.0", types.ErrDecodingFailure, "invalid character"},
		{"truncated JSON", "DEL", `{"cniVersion":"1.0.0","name":`, types.ErrDecodingFailure, "unexpected end of JSON"},
		{"timeout is a number", "ADD", netConf(t, "1.0.0", map[string]any{"socket": socket, "timeout": 10, "prevResult": prevResult100}),
			types.ErrInvalidNetworkConfig, `field "timeout"`},
		{"failOpen is a string", "ADD", netConf(t, "1.0.0", map[string]any{"socket": socket, "failOpen": "true", "prevResult": prevResult100}),
			types.ErrInvalidNetworkConfig, `field "failOpen"`},
		{"socket is an object", "CHECK", netConf(t, "1.0.0", map[string]any{"socket": map[string]any{}, "prevResult": prevResult100}),
			types.ErrInvalidNetworkConfig, `field "socket"`},
		{"prevResult is a list", "ADD", netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": []any{}}),
			types.ErrInvalidNetworkConfig, `field "prevResult"`},
		{"no prevResult", "ADD", netConf(t, "1.0.0", map[string]any{"socket": socket}),
			types.ErrInvalidNetworkConfig, "chained plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := invocation{command: tt.command, cniArgs: k8sArgs, conf: tt.conf}.run(t)
			if out.exitCode == 0 {
				t.Fatalf("%s with a bad config succeeded", tt.command)
			}
			e := out.cniError(t)
			if e.Code != tt.wantCode || !strings.Contains(e.Msg, tt.wantMsg) {
				t.Errorf("error result %+v, want code %d containing %q", e, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if calls := weft.Calls(); len(calls) != 0 {
		t.Errorf("weft was asked despite a bad config: %+v", calls)
	}
}

func TestDel(t *testing.T) {
	t.Parallel()
	t.Run("tells weft", func(t *testing.T) {
		t.Parallel()
		weft := &fakeWeft{}
		socket := startWeft(t, weft)
		for _, conf := range []string{
			netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": prevResult100}),
			netConf(t, "1.0.0", map[string]any{"socket": socket}),
		} {
			out := invocation{command: "DEL", cniArgs: k8sArgs, conf: conf}.run(t)
			if out.exitCode != 0 || out.stdout != "" || out.stderr != "" {
				t.Errorf("DEL = exit %d, stdout %q, stderr %q; want a silent success", out.exitCode, out.stdout, out.stderr)
			}
		}
		want := []cni.Request{
			{Command: cni.CommandDel, Pod: testPod, IPs: podIPs},
			{Command: cni.CommandDel, Pod: testPod},
		}
		if diff := cmp.Diff(want, weft.Calls(), cmpAddrs); diff != "" {
			t.Errorf("weft was told (-want +got):\n%s", diff)
		}
	})
	t.Run("weft unreachable", func(t *testing.T) {
		t.Parallel()
		socket := filepath.Join(shortTempDir(t), "cni.sock")
		out := invocation{command: "DEL", cniArgs: k8sArgs,
			conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": prevResult100})}.run(t)
		if out.exitCode != 0 || out.stdout != "" {
			t.Fatalf("DEL without weft = exit %d, stdout %q; want success", out.exitCode, out.stdout)
		}
		for _, want := range []string{"DEL", "ns/web-0", socket} {
			if !strings.Contains(out.stderr, want) {
				t.Errorf("stderr %q does not contain %q", out.stderr, want)
			}
		}
	})
	t.Run("weft fails", func(t *testing.T) {
		t.Parallel()
		socket := startWeft(t, &fakeWeft{do: func(context.Context, cni.Request) error { return errors.New("backend busy") }})
		out := invocation{command: "DEL", cniArgs: k8sArgs, conf: netConf(t, "1.0.0", map[string]any{"socket": socket})}.run(t)
		if out.exitCode != 0 || !strings.Contains(out.stderr, "backend busy") {
			t.Fatalf("DEL = exit %d, stderr %q; want success that reports weft's error", out.exitCode, out.stderr)
		}
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	weft := &fakeWeft{do: func(_ context.Context, req cni.Request) error {
		if len(req.IPs) == 0 {
			return errors.New("pod ns/web-0 has no addresses in the ruleset")
		}
		return nil
	}}
	socket := startWeft(t, weft)

	out := invocation{command: "CHECK", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": prevResult100})}.run(t)
	if out.exitCode != 0 || out.stdout != "" {
		t.Errorf("CHECK of a programmed pod = exit %d, stdout %q", out.exitCode, out.stdout)
	}

	out = invocation{command: "CHECK", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "prevResult": `{"cniVersion":"1.0.0"}`})}.run(t)
	if out.exitCode == 0 {
		t.Fatal("CHECK succeeded although weft said the pod is not programmed")
	}
	if e := out.cniError(t); !strings.Contains(e.Msg, "has no addresses in the ruleset") || !strings.Contains(e.Msg, socket) {
		t.Errorf("error result %+v, want weft's answer and the socket", e)
	}

	want := []cni.Request{
		{Command: cni.CommandCheck, Pod: testPod, IPs: podIPs},
		{Command: cni.CommandCheck, Pod: testPod, IPs: []netip.Addr{}},
	}
	if diff := cmp.Diff(want, weft.Calls(), cmpAddrs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("weft was asked (-want +got):\n%s", diff)
	}

	missing := filepath.Join(shortTempDir(t), "cni.sock")
	out = invocation{command: "CHECK", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": missing, "prevResult": prevResult100})}.run(t)
	if out.exitCode == 0 {
		t.Fatal("CHECK succeeded without weft")
	}
	if e := out.cniError(t); e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "is weft running on this node?") {
		t.Errorf("error result %+v, want code 11 asking whether weft runs", e)
	}

	// failOpen covers an absent weft, not a pod weft says is not isolated.
	out = invocation{command: "CHECK", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": missing, "failOpen": true, "prevResult": prevResult100})}.run(t)
	if out.exitCode != 0 || !strings.Contains(out.stderr, "warning") {
		t.Errorf("CHECK with failOpen and no weft = exit %d, stderr %q; want success with a warning", out.exitCode, out.stderr)
	}
	out = invocation{command: "CHECK", cniArgs: k8sArgs,
		conf: netConf(t, "1.0.0", map[string]any{"socket": socket, "failOpen": true, "prevResult": `{"cniVersion":"1.0.0"}`})}.run(t)
	if out.exitCode == 0 {
		t.Error("CHECK with failOpen succeeded although weft said the pod is not isolated")
	}
}
