package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/weftnet/weft/internal/manifest"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/watch"
)

// viewFlags say where explain and matrix read the cluster from: manifest
// files (--files) or the API server (--kubeconfig), and what-if files to put
// on top (--what-if; with --kubeconfig, --files are what-if files too).
type viewFlags struct {
	files, whatIf stringList
	kubeconfig    string
	timeout       time.Duration
}

func (v *viewFlags) register(fs *flag.FlagSet) {
	fs.Var(&v.files, "files", "manifest files or folders (YAML/JSON: Namespaces, Pods with status.podIPs, Nodes, NetworkPolicies, ClusterNetworkPolicies); with --kubeconfig: what-if files put on top of the live cluster")
	fs.StringVar(&v.kubeconfig, "kubeconfig", "", "read the live cluster from this API server (empty: in-cluster config) instead of files")
	fs.Var(&v.whatIf, "what-if", "manifest files or folders whose policies (and changed namespaces or pods) are put on top of the cluster: shows what they would change")
	fs.DurationVar(&v.timeout, "timeout", 30*time.Second, "with --kubeconfig: how long to wait for the API server")
}

// live reports whether --kubeconfig was given (an empty value means the
// in-cluster config).
func live(fs *flag.FlagSet) bool { return given(fs, "kubeconfig") }

// given reports whether flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// view is the cluster a command answers about.
type view struct {
	// snap is the cluster with the what-if changes, if any.
	snap *policy.Snapshot
	// before is the cluster without them; nil without --what-if.
	before *policy.Snapshot
	// changes are what the what-if files changed.
	changes []manifest.Change
	// where names the source in messages: "the manifests" or "the cluster".
	where string
}

// loadView reads the cluster from the files or the API server, and the
// what-if files on top. Unknown kinds are listed on stderr and ignored.
func loadView(ctx context.Context, v *viewFlags, isLive bool, command string, stderr io.Writer) (*view, error) {
	whatIf := slices.Clone(v.whatIf)
	var objs *manifest.Objects
	var err error
	out := &view{where: "the manifests"}
	if isLive {
		whatIf = append(whatIf, v.files...)
		out.where = "the cluster"
		if objs, err = listCluster(ctx, v.kubeconfig, v.timeout); err != nil {
			return nil, err
		}
	} else {
		if len(v.files) == 0 {
			return nil, usagef("--files or --kubeconfig is required (manifest files or folders, or the live cluster)")
		}
		if objs, err = loadFiles(v.files, command, stderr); err != nil {
			return nil, err
		}
	}
	if len(whatIf) == 0 {
		out.snap = watch.NewSnapshot(objs)
		return out, nil
	}
	changes, err := loadFiles(whatIf, command, stderr)
	if err != nil {
		return nil, err
	}
	after, done, err := objs.WhatIf(changes)
	if err != nil {
		return nil, usageError{err}
	}
	if len(done) == 0 {
		return nil, usagef("the what-if files %s hold no policy, namespace or pod: nothing to try", strings.Join(whatIf, ", "))
	}
	out.before, out.snap, out.changes = watch.NewSnapshot(objs), watch.NewSnapshot(after), done
	return out, nil
}

// loadFiles reads manifests; a problem in them is bad input (exit 2).
func loadFiles(paths []string, command string, stderr io.Writer) (*manifest.Objects, error) {
	objs, err := manifest.Load(paths...)
	if err != nil {
		return nil, usageError{err}
	}
	if n := len(objs.Ignored); n > 0 {
		fmt.Fprintf(stderr, "weft %s: warning: ignoring %d object(s) of kinds weft does not read (it reads Namespace, Pod, Node, NetworkPolicy, ClusterNetworkPolicy):\n", command, n)
		for _, ig := range objs.Ignored {
			fmt.Fprintf(stderr, "  %s\n", ig)
		}
	}
	return objs, nil
}

// listCluster reads the cluster from the API server once: the live loader
// of explain and matrix.
func listCluster(ctx context.Context, kubeconfig string, timeout time.Duration) (*manifest.Objects, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, usageError{err}
	}
	cfg.Timeout = timeout
	client, err := kubernetes.NewForConfig(protobuf(cfg))
	if err != nil {
		return nil, fmt.Errorf("API client for %s: %w", cfg.Host, err)
	}
	cnpClient, err := npaclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("ClusterNetworkPolicy client for %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	objs, err := watch.List(ctx, client, cnpClient)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("API server %s did not answer within %v (--timeout): %w", cfg.Host, timeout, err)
		}
		return nil, fmt.Errorf("API server %s: %w", cfg.Host, err)
	}
	return objs, nil
}

// findPod returns pod ns/name of snap, or a usage error that says what is
// there instead.
func findPod(snap *policy.Snapshot, where, flagName, ns, name string) (*policy.Pod, error) {
	if p := snap.Pod(ns, name); p != nil {
		return p, nil
	}
	if _, ok := snap.Namespaces[ns]; !ok {
		return nil, usagef("--%s: namespace %q is not in %s (namespaces: %s)", flagName, ns, where, namespaceNames(snap))
	}
	var names []string
	for _, p := range snap.PodsIn(ns) {
		names = append(names, p.Name)
	}
	pods := "none"
	if len(names) > 0 {
		pods = strings.Join(names, ", ")
	}
	return nil, usagef("--%s: pod %s/%s is not in %s (pods of namespace %s: %s)", flagName, ns, name, where, ns, pods)
}

func namespaceNames(snap *policy.Snapshot) string {
	names := make([]string, 0, len(snap.Namespaces))
	for n := range snap.Namespaces {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 20 {
		names = append(names[:20], fmt.Sprintf("and %d more", len(names)-20))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
