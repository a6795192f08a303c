package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/reach"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testLab is the package's one lab (two nodes), started by the first test
// that needs it and closed by TestMain.
var (
	labOnce  sync.Once
	testLab  *Lab
	labError string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testLab != nil {
		if err := testLab.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close lab: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func needLab(t *testing.T) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no lab")
	}
	if reason := Missing(); reason != "" {
		t.Skip(reason)
	}
	labOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		l, err := Start(ctx, Config{Nodes: 2})
		if err != nil {
			labError = err.Error()
			return
		}
		l.CloseOnSignal()
		testLab = l
	})
	if testLab == nil {
		t.Fatalf("start lab: %s", labError)
	}
	return testLab
}

func ensureNS(t *testing.T, l *Lab, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := l.EnsureNamespace(context.Background(), n, map[string]string{"ns": n}); err != nil {
			t.Fatal(err)
		}
	}
}

func addPod(t *testing.T, l *Lab, spec PodSpec) *Pod {
	t.Helper()
	p, err := l.AddPod(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l.Pod(p.ID()) == p {
			if err := l.DeletePod(context.Background(), p); err != nil {
				t.Errorf("delete pod: %v", err)
			}
		}
	})
	return p
}

func waitMatrix(t *testing.T, l *Lab, pods []Endpoint, target Target, want *Matrix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitMatrix(ctx, pods, pods, target, want); err != nil {
		t.Fatal(err)
	}
}

// Without weft every pod and node reaches every pod and node, host-network
// pods too, over TCP and UDP, IPv4 and IPv6.
func TestPodsReachEachOtherWithoutWeft(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "reach")
	pods := []Endpoint{
		addPod(t, l, PodSpec{Namespace: "reach", Name: "a", Node: l.Nodes[0]}),
		addPod(t, l, PodSpec{Namespace: "reach", Name: "b", Node: l.Nodes[0]}),
		addPod(t, l, PodSpec{Namespace: "reach", Name: "c", Node: l.Nodes[1]}),
		addPod(t, l, PodSpec{Namespace: "reach", Name: "h", Node: l.Nodes[1], HostNetwork: true}),
		l.Nodes[0], l.Nodes[1],
	}
	all := allConnect(endpointIDs(pods))
	for _, target := range []Target{TCP80, TCP81, UDP80, UDP81, TCP80v6, UDP80v6} {
		t.Run(strings.ReplaceAll(target.String(), " ", "-"), func(t *testing.T) {
			got, errs := l.ProbeMatrix(context.Background(), pods, pods, target)
			if !got.Equal(all) {
				t.Fatalf("%s:\n%s%v", target, reach.Diff(all, got), errs)
			}
		})
	}
}

// A DROP rule written by hand in a node's FORWARD chain shows as X for
// exactly the paths it drops, and the matrix recovers when it goes: the
// probes do see blocking.
func TestHandWrittenDropShowsInMatrix(t *testing.T) {
	l := needLab(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables on PATH: run hack/install-deps.sh")
	}
	ensureNS(t, l, "drop")
	a := addPod(t, l, PodSpec{Namespace: "drop", Name: "a", Node: l.Nodes[0]})
	b := addPod(t, l, PodSpec{Namespace: "drop", Name: "b", Node: l.Nodes[0]})
	c := addPod(t, l, PodSpec{Namespace: "drop", Name: "c", Node: l.Nodes[1]})
	pods := Endpoints(a, b, c)
	ctx := context.Background()
	// Drop TCP 80 to b on node1: a→b is bridged (same node), c→b is routed
	// through both nodes; both cross node1's FORWARD hook.
	rule := []string{"FORWARD", "-d", b.IPv4.String(), "-p", "tcp", "--dport", "80", "-j", "DROP"}
	if _, err := l.Nodes[0].Exec(ctx, "iptables", append([]string{"-I"}, rule...)...); err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_, _ = l.Nodes[0].Exec(ctx, "iptables", append([]string{"-D"}, rule...)...)
		}
	})
	waitMatrix(t, l, pods, TCP80, reach.MustParseMatrix(`
	        drop/a drop/b drop/c
	drop/a    .      X      .
	drop/b    .      .      .
	drop/c    .      X      .`))
	// The rule is about TCP 80 only.
	waitMatrix(t, l, pods, TCP81, allConnect(endpointIDs(pods)))
	waitMatrix(t, l, pods, UDP80, allConnect(endpointIDs(pods)))
	if _, err := l.Nodes[0].Exec(ctx, "iptables", append([]string{"-D"}, rule...)...); err != nil {
		t.Fatal(err)
	}
	removed = true
	waitMatrix(t, l, pods, TCP80, allConnect(endpointIDs(pods)))
}

// The Pod object looks like one a kubelet runs: on its node, Running, with
// both IPs and the named container ports.
func TestPodObjectIsRunningWithIPs(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "obj")
	p := addPod(t, l, PodSpec{Namespace: "obj", Name: "a", Node: l.Nodes[1], Labels: map[string]string{"pod": "a"}})
	obj, err := l.Client().CoreV1().Pods("obj").Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Spec.NodeName != "node-2" || obj.Status.Phase != "Running" || obj.Labels["pod"] != "a" {
		t.Fatalf("pod object: node %q phase %q labels %v", obj.Spec.NodeName, obj.Status.Phase, obj.Labels)
	}
	if len(obj.Status.PodIPs) != 2 || obj.Status.PodIPs[0].IP != p.IPv4.String() || obj.Status.PodIPs[1].IP != p.IPv6.String() {
		t.Fatalf("pod IPs %v, want %s and %s", obj.Status.PodIPs, p.IPv4, p.IPv6)
	}
	if obj.Status.HostIP != l.Nodes[1].IPs[0].String() {
		t.Fatalf("host IP %s, want %s", obj.Status.HostIP, l.Nodes[1].IPs[0])
	}
	names := map[string]bool{}
	for _, port := range obj.Spec.Containers[0].Ports {
		names[port.Name] = true
	}
	for _, want := range []string{"serve-80-tcp", "serve-81-tcp", "serve-80-udp", "serve-81-udp"} {
		if !names[want] {
			t.Errorf("container port %s missing; has %v", want, names)
		}
	}
	if err := l.SetPodLabels(context.Background(), p, map[string]string{"pod": "z"}); err != nil {
		t.Fatal(err)
	}
	obj, err = l.Client().CoreV1().Pods("obj").Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil || obj.Labels["pod"] != "z" {
		t.Fatalf("after SetPodLabels: labels %v, err %v", obj.Labels, err)
	}
}

// A pod re-created with a deleted pod's addresses answers as itself, and
// its same-node peers reach it (their neighbour entries follow the new MAC).
func TestRecreatePodWithSameAddresses(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "reuse")
	ctx := context.Background()
	a := addPod(t, l, PodSpec{Namespace: "reuse", Name: "a"})
	old := addPod(t, l, PodSpec{Namespace: "reuse", Name: "old"})
	if r := l.Probe(ctx, a, old, TCP80); !r.Connected {
		t.Fatalf("before: %v", r.Err)
	}
	if err := l.DeletePod(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client().CoreV1().Pods("reuse").Get(ctx, "old", metav1.GetOptions{}); err == nil {
		t.Fatal("Pod object still there after DeletePod")
	}
	if r := l.Probe(ctx, a, old, TCP80); r.Connected {
		t.Fatal("a deleted pod still answers")
	}
	fresh := addPod(t, l, PodSpec{Namespace: "reuse", Name: "new", IPv4: old.IPv4, IPv6: old.IPv6})
	for _, target := range []Target{TCP80, UDP81, TCP80v6} {
		if r := l.Probe(ctx, a, fresh, target); !r.Connected {
			t.Fatalf("%s to the re-created pod: %v", target, r.Err)
		}
		if r := l.Probe(ctx, fresh, a, target); !r.Connected {
			t.Fatalf("%s from the re-created pod: %v", target, r.Err)
		}
	}
	if _, err := l.AddPod(ctx, PodSpec{Namespace: "reuse", Name: "clash", IPv4: fresh.IPv4, IPv6: fresh.IPv6}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("adding a pod with addresses in use: err = %v, want 'in use'", err)
	}
}

// WaitTransition times a path closing and opening around a hand-written
// DROP rule, and never reports a time before the change.
func TestWaitTransitionTimesChanges(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "trans")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := addPod(t, l, PodSpec{Namespace: "trans", Name: "a"})
	b := addPod(t, l, PodSpec{Namespace: "trans", Name: "b", Node: l.Nodes[1]})
	rule := []string{"FORWARD", "-s", a.IPv4.String(), "-d", b.IPv4.String(), "-j", "DROP"}
	t.Cleanup(func() { _, _ = l.Nodes[1].Exec(context.Background(), "iptables", append([]string{"-D"}, rule...)...) })

	changed := time.Now()
	if _, err := l.Nodes[1].Exec(ctx, "iptables", append([]string{"-I"}, rule...)...); err != nil {
		t.Fatal(err)
	}
	at, err := l.WaitTransition(ctx, a, b, TCP80, false, TransitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(changed) {
		t.Fatalf("blocked at %v, before the rule was inserted at %v", at, changed)
	}
	t.Logf("blocked %v after the insert began", at.Sub(changed))

	changed = time.Now()
	if _, err := l.Nodes[1].Exec(ctx, "iptables", append([]string{"-D"}, rule...)...); err != nil {
		t.Fatal(err)
	}
	at, err = l.WaitTransition(ctx, a, b, TCP80, true, TransitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(changed) {
		t.Fatalf("open at %v, before the rule was deleted at %v", at, changed)
	}
	t.Logf("open %v after the delete began", at.Sub(changed))
}

// Start removes namespaces and folders of dead labs and keeps those of live
// ones.
func TestRemoveStaleLeavesLiveLabsAlone(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := dead.Process.Pid
	if processAlive(deadPID) {
		t.Skipf("pid %d was reused at once; cannot make a dead lab's name", deadPID)
	}
	deadName := fmt.Sprintf("%s%d-test-node1", NamePrefix, deadPID)
	liveName := fmt.Sprintf("%s%d-test-stale-node1", NamePrefix, os.Getpid())
	for _, n := range []string{deadName, liveName} {
		if _, err := createNetNS(ctx, n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteNetNS(n) })
	}
	dir := t.TempDir()
	deadDir := filepath.Join(dir, fmt.Sprintf("%s%d-abc", NamePrefix, deadPID))
	if err := os.Mkdir(deadDir, 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := removeStale(NamePrefix, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, deadName)); !os.IsNotExist(err) {
		t.Errorf("dead lab's namespace %s still there (removed %v)", deadName, removed)
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("dead lab's folder still there (removed %v)", removed)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, liveName)); err != nil {
		t.Errorf("live lab's namespace was removed: %v", err)
	}
	for _, own := range append([]*Node{}, testLab.Nodes...) {
		if _, err := os.Stat(filepath.Join(netnsDir, own.NetNS)); err != nil {
			t.Errorf("this lab's node namespace %s was removed: %v", own.NetNS, err)
		}
	}
}

// A Start that fails (here: an API server that exits at once) leaves no
// namespace and no process behind, and says what failed.
func TestFailedStartCleansUp(t *testing.T) {
	needLab(t)
	before := labNamespaces(t)
	_, err := Start(context.Background(), Config{APIServer: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("Start with a failing API server: err = %v, want one naming kube-apiserver", err)
	}
	if after := labNamespaces(t); after != before {
		t.Fatalf("namespaces left by the failed start:\nbefore: %s\nafter:  %s", before, after)
	}
}

func labNamespaces(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	own := NamePrefix + strconv.Itoa(os.Getpid())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), own) {
			names = append(names, e.Name())
		}
	}
	return strings.Join(names, " ")
}

// A single-stack pod has one address; probes of the other family say so
// instead of pretending it is blocked, and it still talks over its family.
func TestSingleStackPod(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "single")
	ctx := context.Background()
	a := addPod(t, l, PodSpec{Namespace: "single", Name: "a"})
	v4 := addPod(t, l, PodSpec{Namespace: "single", Name: "v4", Node: l.Nodes[1], Families: []Family{IPv4}})
	if v4.IPv6.IsValid() {
		t.Fatalf("IPv4-only pod got IPv6 address %s", v4.IPv6)
	}
	obj, err := l.Client().CoreV1().Pods("single").Get(ctx, "v4", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obj.Status.PodIPs) != 1 || obj.Status.PodIPs[0].IP != v4.IPv4.String() {
		t.Fatalf("pod IPs %v, want only %s", obj.Status.PodIPs, v4.IPv4)
	}
	if r := l.Probe(ctx, a, v4, TCP80); !r.Connected {
		t.Fatalf("IPv4 to the single-stack pod: %v", r.Err)
	}
	r := l.Probe(ctx, a, v4, TCP80v6)
	if r.Connected || r.Err == nil || !strings.Contains(r.Err.Error(), "no IPv6 address") {
		t.Fatalf("IPv6 probe to an IPv4-only pod: %+v, want an error naming the missing address", r)
	}
}

// An API-only pod is an object with the status given and nothing behind it.
func TestAPIOnlyPod(t *testing.T) {
	l := needLab(t)
	ensureNS(t, l, "apionly")
	ctx := context.Background()
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apionly", Name: "done", Labels: map[string]string{"pod": "done"}},
		Spec:       corev1.PodSpec{NodeName: l.Nodes[0].Name, Containers: []corev1.Container{{Name: "serve", Image: "registry.k8s.io/pause:3.10"}}},
		Status:     RunningStatus(l.Nodes[0], netip.MustParseAddr("10.45.0.9"), netip.Addr{}),
	}
	obj.Status.Phase = corev1.PodSucceeded
	if err := l.WriteAPIOnlyPod(ctx, obj); err != nil {
		t.Fatal(err)
	}
	got, err := l.Client().CoreV1().Pods("apionly").Get(ctx, "done", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodSucceeded || got.Status.PodIP != "10.45.0.9" || len(got.Status.PodIPs) != 1 {
		t.Fatalf("status written: phase %s, IPs %v", got.Status.Phase, got.Status.PodIPs)
	}
	if l.Pod("apionly/done") != nil {
		t.Fatal("an API-only pod must not be a lab pod")
	}
	if err := l.DeleteAPIOnlyPod(ctx, "apionly", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client().CoreV1().Pods("apionly").Get(ctx, "done", metav1.GetOptions{}); err == nil {
		t.Fatal("pod still there after DeleteAPIOnlyPod")
	}
}

// A weft that exits at once makes WaitWeftReady fail with its log, not
// wait out the deadline.
func TestWaitWeftReadyFailsFastWhenWeftExits(t *testing.T) {
	l := needLab(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "weft")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"weft: cannot start: $*\" >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := l.StartWeft(context.Background(), l.Nodes[0], WeftOptions{Binary: fake, Backend: "iptables"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = l.WaitWeftReady(ctx, l.Nodes[0], p)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "exited") ||
		!strings.Contains(err.Error(), "cannot start: run --kubeconfig") {
		t.Fatalf("WaitWeftReady = %v, want an error saying weft exited, with its log", err)
	}
	if !strings.Contains(err.Error(), "--node-name node-1") {
		t.Fatalf("weft was not started with the node's name: %v", err)
	}
}
