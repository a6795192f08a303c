package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BuildWeft builds ./cmd/weft of the module that holds the working directory
// into outDir and returns the binary's path.
func BuildWeft(ctx context.Context, outDir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(outDir, "weft")
	// weft-cni goes beside it (CNIPlugin).
	cmd := exec.CommandContext(ctx, "go", "build", "-o", outDir+"/", "./cmd/weft", "./cmd/weft-cni")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build weft (go build ./cmd/weft ./cmd/weft-cni in %s): %v\n%s", root, err, out)
	}
	return bin, nil
}

// moduleRoot is the folder of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the weft module (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		return "", fmt.Errorf("find the weft module: run from inside the weft checkout")
	}
	return filepath.Dir(gomod), nil
}

// WeftOptions say how to run weft on a node.
type WeftOptions struct {
	// Binary is weft's path (BuildWeft).
	Binary string
	// Backend is passed as --backend (default "auto").
	Backend string
	// MetricsAddr is passed as --metrics-addr (default ":6781", inside the
	// node's namespace); WaitWeftReady polls its /readyz.
	MetricsAddr string
	// Args are more flags for weft run.
	Args []string
	// Kubeconfig is passed as --kubeconfig instead of the lab's admin
	// kubeconfig (Kubeconfig), e.g. one of ServiceAccountKubeconfig.
	Kubeconfig string
}

// StartWeft runs `weft run --kubeconfig K --node-name N --backend B` inside
// node's namespace, its output in Dir/weft-<node>-<n>.log. The lab stops it
// on Close; StopWeft stops it earlier.
func (l *Lab) StartWeft(ctx context.Context, node *Node, o WeftOptions) (*Process, error) {
	if o.Backend == "" {
		o.Backend = "auto"
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = ":6781"
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = l.Kubeconfig()
	}
	l.mu.Lock()
	n := len(l.wefts)
	l.mu.Unlock()
	logPath := filepath.Join(l.Dir, fmt.Sprintf("weft-%s-%s-%d.log", node.Name, o.Backend, n))
	argv := []string{o.Binary, "run",
		"--kubeconfig", o.Kubeconfig,
		"--node-name", node.Name,
		"--backend", o.Backend,
		"--metrics-addr", o.MetricsAddr,
	}
	if !slices.ContainsFunc(o.Args, func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "cni-socket") }) {
		argv = append(argv, "--cni-socket", l.CNISocket(node))
	}
	argv = append(argv, o.Args...)
	p, err := startProcess("weft on "+node.Name, node.NetNS, logPath, argv, nil)
	if err != nil {
		return nil, err
	}
	p.metricsAddr = o.MetricsAddr
	l.mu.Lock()
	l.wefts = append(l.wefts, p)
	l.mu.Unlock()
	return p, nil
}

// WaitWeftReady waits until weft p, started on node, answers 200 on
// /readyz (it has applied its first ruleset). It fails at once, with the end
// of weft's log, when weft exits.
func (l *Lab) WaitWeftReady(ctx context.Context, node *Node, p *Process) error {
	_, port, err := net.SplitHostPort(p.metricsAddr)
	if err != nil || port == "" {
		return fmt.Errorf("weft on %s: no metrics address to poll /readyz (--metrics-addr %q)", node.Name, p.metricsAddr)
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	client := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 2 * time.Second}
	// Polled often: benchmarks time weft's start-up with it.
	return p.pollFor(ctx, "weft /readyz", 10*time.Millisecond, func(ctx context.Context) error {
		return httpOK(ctx, client, url, "")
	})
}

// StopWeft stops a weft StartWeft started (SIGTERM, then SIGKILL after 10 s).
// The rules weft programmed stay in the kernel: use WeftCleanup to remove
// them.
func (l *Lab) StopWeft(p *Process) error {
	return p.Stop(10 * time.Second)
}

// WeftCleanup runs `weft cleanup --backend B` inside node's namespace.
func (l *Lab) WeftCleanup(ctx context.Context, node *Node, binary, backend string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", node.NetNS, binary, "cleanup", "--backend", backend)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("weft cleanup --backend %s on %s: %v: %s", backend, node.Name, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// writeNodeObjects registers the nodes in the API, Ready, with their
// addresses, as kubelets would.
func (l *Lab) writeNodeObjects(ctx context.Context) error {
	for _, n := range l.Nodes {
		ranges := n.PodCIDRs()
		obj := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{"kubernetes.io/hostname": n.Name}},
			Spec:       corev1.NodeSpec{PodCIDR: ranges[0].String(), PodCIDRs: []string{ranges[0].String(), ranges[1].String()}},
		}
		created, err := l.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create Node object %s: %w", n.Name, err)
		}
		now := metav1.Now()
		created.Status = corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IPs[0].String()},
				{Type: corev1.NodeInternalIP, Address: n.IPs[1].String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
		}
		if _, err := l.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("write Node status %s: %w", n.Name, err)
		}
	}
	return nil
}
