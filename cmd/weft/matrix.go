package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/weftnet/weft/internal/manifest"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/reach"
)

// maxListedChanges bounds the changed cells a what-if lists one by one.
const maxListedChanges = 50

func matrixCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("matrix", stderr)
	var v viewFlags
	v.register(fs)
	var namespaces, pods stringList
	fs.Var(&namespaces, "namespaces", "the pods of these namespaces (comma-separated or repeated); with --pods, both")
	fs.Var(&pods, "pods", "these pods, namespace/name (comma-separated or repeated); default, with no --namespaces: every pod")
	port := fs.String("port", "80", "destination port and protocol: PORT[/TCP|UDP|SCTP] (default protocol TCP)")
	family := fs.String("family", "auto", "IP family: 4, 6, or auto (IPv4 unless some chosen pod has only IPv6 and all have IPv6)")
	output := fs.String("output", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: weft matrix (--files PATH... | --kubeconfig PATH [--files WHATIF...]) [--what-if PATH...]\n"+
			"                   [--namespaces NS,...] [--pods NS/NAME,...] [--port PORT[/PROTO]]\n"+
			"                   [--family auto|4|6] [--output text|json]\n\n"+
			"Prints which chosen pods reach which on a port, as the policies decide (rows\n"+
			"connect to columns; '.' allowed, 'X' blocked), from manifest files or from the\n"+
			"live cluster. With what-if files (--what-if, or --files beside --kubeconfig) their\n"+
			"policies are put on top, and the matrix is printed before and after with the\n"+
			"changed cells marked. Every pod counts as local.\n"+
			"Exit status: 0 ok, 2 bad usage or input, 1 other failure.\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, gatherList(gatherList(args, "files"), "what-if"), true); err != nil {
		return 0, err
	}
	v.files = append(v.files, fs.Args()...)
	isLive := live(fs)
	if !isLive && len(v.files) == 0 {
		return 0, usagef("--files or --kubeconfig is required (manifest files or folders, or the live cluster)")
	}
	if err := oneOf("output", *output, "text", "json"); err != nil {
		return 0, err
	}
	if err := oneOf("family", *family, "auto", "4", "6"); err != nil {
		return 0, err
	}
	proto, portNum, err := parsePort(*port)
	if err != nil {
		return 0, err
	}
	cv, err := loadView(ctx, &v, isLive, "matrix", stderr)
	if err != nil {
		return 0, err
	}
	chosen, err := choosePods(cv.snap, cv.where, namespaces, pods)
	if err != nil {
		return 0, err
	}
	fam, chosen, left := pickFamily(chosen, *family)
	if len(left) > 0 {
		fmt.Fprintf(stderr, "weft matrix: leaving out %d pod(s) with no IPv%d address: %s\n", len(left), fam, strings.Join(left, ", "))
	}
	if len(chosen) == 0 {
		return 0, usagef("no chosen pod has an IPv%d address", fam)
	}
	q := matrixQuery{family: fam, protocol: proto, port: portNum}
	after := q.compute(cv.snap, chosen)
	res := matrixResult{Protocol: proto.String(), Port: portNum, Family: fmt.Sprintf("IPv%d", fam), Matrix: after}
	if cv.before != nil {
		var beforePods []*policy.Pod
		for _, p := range chosen {
			bp := cv.before.Pod(p.Namespace, p.Name)
			if _, ok := bp.IP(fam); !ok {
				return 0, usagef("pod %s has no IPv%d address before the what-if changes", p.Key(), fam)
			}
			beforePods = append(beforePods, bp)
		}
		res.Before = q.compute(cv.before, beforePods)
		res.Changed = reach.Changed(res.Before, after)
		for _, c := range cv.changes {
			res.WhatIf = append(res.WhatIf, c.String())
		}
		if res.Changed == nil {
			res.Changed = []reach.Cell{}
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return exitFailure, err
		}
		return exitOK, nil
	}
	res.writeText(stdout, cv.where, cv.changes)
	return exitOK, nil
}

// matrixResult is what matrix prints; its JSON form is --output json.
type matrixResult struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Family   string `json:"family"`
	// WhatIf lists what the what-if files changed; Before is the matrix
	// without them and Changed the cells they flip.
	WhatIf  []string      `json:"whatIf,omitempty"`
	Before  *reach.Matrix `json:"before,omitempty"`
	Matrix  *reach.Matrix `json:"matrix"`
	Changed []reach.Cell  `json:"changed,omitempty"`
}

func (r *matrixResult) writeText(w io.Writer, where string, changes []manifest.Change) {
	what := fmt.Sprintf("%s/%d over %s, %d pods of %s; %s",
		r.Protocol, r.Port, r.Family, len(r.Matrix.From), where, reach.Legend)
	if r.Before == nil {
		fmt.Fprintf(w, "Reachability (%s):\n\n%s", what, r.Matrix)
		return
	}
	fmt.Fprintf(w, "What-if: %s.\n\n", changeList(changes))
	fmt.Fprintf(w, "Before (%s):\n\n%s\n", what, r.Before)
	fmt.Fprintf(w, "After:\n\n%s\n", r.Matrix)
	if len(r.Changed) == 0 {
		fmt.Fprintf(w, "No cell changes: the what-if leaves reachability on %s/%d as it is.\n", r.Protocol, r.Port)
		return
	}
	fmt.Fprintf(w, "Changes (%s):\n\n%s\n", reach.ChangesLegend, reach.Changes(r.Before, r.Matrix))
	blocked := 0
	for _, c := range r.Changed {
		if !c.Allowed {
			blocked++
		}
	}
	fmt.Fprintf(w, "%d of %d cells change: %d now blocked, %d now allowed.\n",
		len(r.Changed), len(r.Matrix.From)*len(r.Matrix.To), blocked, len(r.Changed)-blocked)
	for i, c := range r.Changed {
		if i == maxListedChanges {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Changed)-i)
			break
		}
		fmt.Fprintf(w, "  %s -> %s: now %s\n", c.From, c.To, map[bool]string{true: "allowed", false: "blocked"}[c.Allowed])
	}
}

func changeList(changes []manifest.Change) string {
	parts := make([]string, len(changes))
	for i, c := range changes {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// choosePods returns the pods named by --namespaces and --pods (every pod
// that has an address of its own when both are empty), sorted.
func choosePods(snap *policy.Snapshot, where string, namespaces, pods []string) ([]*policy.Pod, error) {
	if len(namespaces) == 0 && len(pods) == 0 {
		var out []*policy.Pod
		for _, p := range snap.Pods {
			if p.Selectable() {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, usagef("%s hold no running pod with an address of its own", where)
		}
		return out, nil
	}
	seen := map[string]bool{}
	var out []*policy.Pod
	add := func(p *policy.Pod) {
		if !seen[p.Key()] {
			seen[p.Key()] = true
			out = append(out, p)
		}
	}
	for _, ns := range namespaces {
		if _, ok := snap.Namespaces[ns]; !ok {
			return nil, usagef("--namespaces: namespace %q is not in %s (namespaces: %s)", ns, where, namespaceNames(snap))
		}
		n := 0
		for _, p := range snap.PodsIn(ns) {
			if p.Selectable() {
				add(p)
				n++
			}
		}
		if n == 0 {
			return nil, usagef("--namespaces: namespace %s has no running pod with an address of its own", ns)
		}
	}
	for _, key := range pods {
		ns, name, ok := strings.Cut(key, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, usagef("--pods %q: want namespace/name", key)
		}
		p, err := findPod(snap, where, "pods", ns, name)
		if err != nil {
			return nil, err
		}
		switch {
		case p.HostNetwork:
			return nil, usagef("--pods: pod %s uses the host network: its traffic is the node's, which policies do not select", key)
		case p.Finished:
			return nil, usagef("--pods: pod %s has finished", key)
		case len(p.IPs) == 0:
			return nil, usagef("--pods: pod %s has no address (in a manifest: set status.podIPs; in a cluster: it is not running yet)", key)
		}
		add(p)
	}
	slices.SortFunc(out, func(a, b *policy.Pod) int { return strings.Compare(a.Key(), b.Key()) })
	return out, nil
}

// pickFamily chooses the IP family ("auto": IPv4 unless only IPv6 covers
// every pod) and splits off the pods without an address of it.
func pickFamily(pods []*policy.Pod, flag string) (int, []*policy.Pod, []string) {
	has := func(fam int) bool {
		return !slices.ContainsFunc(pods, func(p *policy.Pod) bool { _, ok := p.IP(fam); return !ok })
	}
	fam := 4
	switch {
	case flag == "6":
		fam = 6
	case flag == "auto" && !has(4) && has(6):
		fam = 6
	}
	var kept []*policy.Pod
	var left []string
	for _, p := range pods {
		if _, ok := p.IP(fam); ok {
			kept = append(kept, p)
		} else {
			left = append(left, p.Key())
		}
	}
	return fam, kept, left
}

// matrixQuery is what each cell asks the evaluator.
type matrixQuery struct {
	family   int
	protocol policy.Protocol
	port     uint16
}

// compute decides every pair of pods with the evaluator, every pod local:
// both the source's egress and the destination's ingress must allow.
func (q matrixQuery) compute(snap *policy.Snapshot, pods []*policy.Pod) *reach.Matrix {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Key()
	}
	m := reach.NewMatrix(names, names, false)
	e := &policy.Evaluator{Snapshot: snap}
	for _, src := range pods {
		s, _ := src.IP(q.family)
		for _, dst := range pods {
			d, _ := dst.IP(q.family)
			m.Set(src.Key(), dst.Key(), e.Decide(policy.Flow{Src: s, Dst: d, Protocol: q.protocol, Port: q.port}).Allowed)
		}
	}
	return m
}
