// weft-lab drives weft's cluster-in-a-box (internal/lab).
//
//	weft-lab demo [--backend auto|iptables|nftables] [--skip-setup] [-v]
//	weft-lab up   [--nodes N] [--backend B]
//
// demo is `make demo`: it installs what is missing (hack/install-deps.sh),
// builds the API server once (hack/build-kube-apiserver.sh), builds weft,
// starts a two-node lab with weft on each node, deploys the three-tier
// application, prints its reachability matrix, applies the policies, prints
// the matrix again with the changes marked, and tears everything down, also
// on Ctrl-C. up starts a lab with weft and keeps it until Ctrl-C, printing
// how to reach it.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/internal/reach"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/lab"
)

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "weft-lab: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "weft-lab: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a command: demo or up (weft-lab demo --help)")}
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("weft-lab "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", "auto", "weft backend: auto, iptables or nftables")
	skipSetup := fs.Bool("skip-setup", false, "do not run hack/install-deps.sh and hack/build-kube-apiserver.sh")
	verbose := fs.Bool("v", false, "log what the lab does")
	nodes := 2
	if cmd == "up" {
		fs.IntVar(&nodes, "nodes", 2, "number of nodes (1-8)")
	}
	if cmd != "demo" && cmd != "up" {
		return usageError{fmt.Errorf("unknown command %q: want demo or up", cmd)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	switch *backend {
	case "auto", "iptables", "nftables":
	default:
		return usageError{fmt.Errorf("--backend %q: want auto, iptables or nftables", *backend)}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces and the packet filter): run it as root, e.g. sudo make demo")
	}

	d := &driver{out: stdout, backend: *backend, nodes: nodes}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer d.teardown()
	if err := d.setUp(ctx, *skipSetup); err != nil {
		return err
	}
	if cmd == "up" {
		return d.up(ctx)
	}
	return d.demo(ctx)
}

// driver holds what the demo started, so that teardown removes it.
type driver struct {
	out     io.Writer
	backend string
	nodes   int
	binDir  string
	weftBin string
	lab     *lab.Lab
	wefts   []*lab.Process
}

func (d *driver) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}

// setUp installs and builds what is missing, starts the lab and weft.
func (d *driver) setUp(ctx context.Context, skipSetup bool) error {
	root, err := repoRoot(ctx)
	if err != nil {
		return err
	}
	if !skipSetup {
		d.step("Installing what is missing (hack/install-deps.sh)")
		if _, err := d.script(ctx, filepath.Join(root, "hack", "install-deps.sh")); err != nil {
			return err
		}
		d.step("Building kube-apiserver once (hack/build-kube-apiserver.sh; 12-20 minutes the first time, cached after)")
		out, err := d.script(ctx, filepath.Join(root, "hack", "build-kube-apiserver.sh"))
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		os.Setenv("WEFT_KUBE_APISERVER", lines[len(lines)-1])
	}
	if reason := lab.Missing(); reason != "" {
		return errors.New(reason)
	}
	d.step("Building weft")
	if d.binDir, err = os.MkdirTemp("", lab.TempPrefix()+"bin-"); err != nil {
		return err
	}
	if d.weftBin, err = lab.BuildWeft(ctx, d.binDir); err != nil {
		return err
	}
	d.step("Starting the lab: %d nodes, etcd and kube-apiserver (real ones), pods as network namespaces", d.nodes)
	start := time.Now()
	if d.lab, err = lab.Start(ctx, lab.Config{Nodes: d.nodes}); err != nil {
		return err
	}
	for _, n := range d.lab.Nodes {
		fmt.Fprintf(d.out, "    %s  %s, %s  (network namespace %s)\n", n.Name, n.IPs[0], n.IPs[1], n.NetNS)
	}
	fmt.Fprintf(d.out, "    API server ready in %v\n", time.Since(start).Round(100*time.Millisecond))
	d.step("Starting weft on every node (weft run --backend %s)", d.backend)
	for _, n := range d.lab.Nodes {
		w, err := d.lab.StartWeft(ctx, n, lab.WeftOptions{Binary: d.weftBin, Backend: d.backend})
		if err != nil {
			return err
		}
		d.wefts = append(d.wefts, w)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = d.lab.WaitWeftReady(wctx, n, w)
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "    %s: weft enforcing (log %s)\n", n.Name, w.LogPath)
	}
	return nil
}

// script runs a hack/ script, showing its output, and returns its stdout.
func (d *driver) script(ctx context.Context, path string) (string, error) {
	var stdout strings.Builder
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdout = io.MultiWriter(&stdout, prefixWriter{d.out})
	cmd.Stderr = prefixWriter{d.out}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return stdout.String(), nil
}

// prefixWriter indents what it writes, so script output stands apart.
type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	text := strings.TrimRight(string(b), "\n")
	_, err := fmt.Fprintf(p.w, "    %s\n", strings.ReplaceAll(text, "\n", "\n    "))
	return len(b), err
}

func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the weft checkout (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run weft-lab from inside the weft checkout (make demo)")
	}
	return filepath.Dir(gomod), nil
}

// demo tells the three-tier story.
func (d *driver) demo(ctx context.Context) error {
	app := lab.DefaultThreeTier
	d.step("Deploying the three-tier application")
	pods, err := app.Deploy(ctx, d.lab)
	if err != nil {
		return err
	}
	for _, p := range pods {
		fmt.Fprintf(d.out, "    %-20s on %s  %s  %s\n", p.ID(), p.Node.Name, p.IPv4, p.IPv6)
	}
	eps := lab.Endpoints(pods...)
	d.step("Reachability with no policy (TCP port 80; " + reach.Legend + ")")
	before, err := d.wait(ctx, eps, app.ExpectedBefore())
	if err != nil {
		return err
	}
	fmt.Fprint(d.out, indent(before.String()))

	d.step("Applying the policies")
	marks := make([]int, len(d.wefts))
	for i, w := range d.wefts {
		marks[i] = len(w.Log())
	}
	for _, p := range app.Policies() {
		if _, err := d.lab.Client().NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		fmt.Fprintf(d.out, "    %s/%s: %s\n", p.Namespace, p.Name, describe(p.Name))
	}
	d.step("Reachability with the policies")
	after, err := d.wait(ctx, eps, app.ExpectedAfter())
	if err != nil {
		return err
	}
	fmt.Fprint(d.out, indent(after.String()))
	d.step("What changed (" + reach.ChangesLegend + ")")
	fmt.Fprint(d.out, indent(reach.Changes(before, after)))
	d.step("Why: weft's log of the blocked attempts (one line per blocked connection; repeats within 10 s become one summary line)")
	time.Sleep(time.Second) // the last probes' lines
	for i, w := range d.wefts {
		for _, line := range blockedLines(w.Log()[marks[i]:]) {
			fmt.Fprintf(d.out, "    %s: %s\n", d.lab.Nodes[i].Name, line)
		}
	}
	d.step("And counted: weft_blocked_connections_total in each node's /metrics (GET http://127.0.0.1:6781/metrics inside the node)")
	for _, n := range d.lab.Nodes {
		lines, err := metricLines(ctx, n, "weft_blocked_connections_total")
		if err != nil {
			return err
		}
		for _, l := range lines {
			fmt.Fprintf(d.out, "    %s: %s\n", n.Name, l)
		}
	}
	d.step("Done: the policies hold as written. Tearing down.")
	return nil
}

// blockedLines returns the messages of weft's connection lines in log
// (text format: msg="…").
func blockedLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		i := strings.Index(line, `msg="`)
		if i < 0 || !strings.Contains(line, " connection from ") {
			continue
		}
		msg, err := strconv.Unquote(line[i+len("msg="):])
		if err != nil {
			msg = line[i+len("msg="):]
		}
		out = append(out, msg)
	}
	return out
}

// metricLines returns the samples of name in weft's /metrics on node.
func metricLines(ctx context.Context, n *lab.Node, name string) ([]string, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: n.DialContext}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:6781/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("weft's /metrics on %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) {
			out = append(out, line)
		}
	}
	return out, nil
}

func describe(policy string) string {
	switch policy {
	case "presentation-policy":
		return "presentation accepts TCP 80 from anywhere"
	case "middle-tier-policy":
		return "middle accepts only tier=presentation"
	case "data-tier-policy":
		return "data accepts only tier=middle"
	}
	return ""
}

// wait probes until the matrix is the expected one and returns it; on
// timeout it returns the difference as the error.
func (d *driver) wait(ctx context.Context, eps []lab.Endpoint, want *lab.Matrix) (*lab.Matrix, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := d.lab.WaitMatrix(ctx, eps, eps, lab.TCP80, want)
	if err != nil {
		for _, w := range d.wefts {
			fmt.Fprintf(d.out, "weft log %s:\n%s\n", w.LogPath, indent(tail(w.Log(), 20)))
		}
		return got, err
	}
	return got, nil
}

// up keeps a lab running until Ctrl-C.
func (d *driver) up(ctx context.Context) error {
	d.step("The lab is up. Until Ctrl-C:")
	fmt.Fprintf(d.out, "    kubeconfig (use inside a node): %s\n", d.lab.Kubeconfig())
	fmt.Fprintf(d.out, "    run inside node-1:  ip netns exec %s kubectl --kubeconfig %s get pods -A\n", d.lab.Nodes[0].NetNS, d.lab.Kubeconfig())
	fmt.Fprintf(d.out, "    logs:               %s\n", d.lab.Dir)
	<-ctx.Done()
	return nil
}

// teardown stops weft and removes the lab, whatever state setUp reached.
func (d *driver) teardown() {
	if d.lab != nil {
		if err := d.lab.Close(); err != nil {
			fmt.Fprintf(d.out, "weft-lab: clean up the lab: %v\n", err)
		} else {
			fmt.Fprintln(d.out, "    lab removed: namespaces, processes and files")
		}
	}
	if d.binDir != "" {
		os.RemoveAll(d.binDir)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
