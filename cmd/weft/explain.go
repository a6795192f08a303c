package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftnet/weft/internal/explain"
	"github.com/weftnet/weft/internal/policy"
)

func explainCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("explain", stderr)
	var v viewFlags
	v.register(fs)
	from := fs.String("from", "", "source: namespace/pod or an IP address")
	to := fs.String("to", "", "destination: namespace/pod or an IP address")
	port := fs.String("port", "", "destination port and protocol: PORT[/TCP|UDP|SCTP] (default protocol TCP)")
	output := fs.String("output", "text", "output format: text or json")
	nodeAddr := fs.String("node-addr", "127.0.0.1:6781", "with --kubeconfig: the weft daemon on this node (its --metrics-addr), asked what the kernel holds for both ends; empty: don't ask")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: weft explain (--files PATH... | --kubeconfig PATH [--node-addr 127.0.0.1:6781]) [--what-if PATH...]\n"+
			"                    --from SRC --to DST --port PORT[/PROTO] [--output text|json]\n\n"+
			"Says whether a connection is allowed by the policies in the files or in the live\n"+
			"cluster, and why. With --what-if (or --files beside --kubeconfig) the policies of\n"+
			"those files are put on top first. Every pod counts as local.\n"+
			"Exit status: 0 allowed, 3 blocked, 2 bad usage or input, 1 other failure.\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, gatherList(gatherList(args, "files"), "what-if"), true); err != nil {
		return 0, err
	}
	v.files = append(v.files, fs.Args()...)
	isLive := live(fs)
	switch {
	case !isLive && len(v.files) == 0:
		return 0, usagef("--files or --kubeconfig is required (manifest files or folders, or the live cluster)")
	case *from == "":
		return 0, usagef("--from is required (namespace/pod or an IP)")
	case *to == "":
		return 0, usagef("--to is required (namespace/pod or an IP)")
	case *port == "":
		return 0, usagef("--port is required (PORT[/PROTO], e.g. 80 or 53/UDP)")
	}
	if err := oneOf("output", *output, "text", "json"); err != nil {
		return 0, err
	}
	proto, portNum, err := parsePort(*port)
	if err != nil {
		return 0, err
	}
	cv, err := loadView(ctx, &v, isLive, "explain", stderr)
	if err != nil {
		return 0, err
	}
	snap := cv.snap
	src, dst, err := resolveEndpoints(snap, cv.where, *from, *to)
	if err != nil {
		return 0, err
	}
	flow := policy.Flow{Src: src, Dst: dst, Protocol: proto, Port: portNum}
	d := (&policy.Evaluator{Snapshot: snap}).Decide(flow)
	report := explain.NewReport(d, snap)
	if cv.before != nil {
		before := (&policy.Evaluator{Snapshot: cv.before}).Decide(flow)
		fmt.Fprintf(stderr, "weft explain: what-if: %s; without them the connection is %s\n",
			changeList(cv.changes), verdictWord(before.Allowed))
	}
	// On a node, what the kernel holds for both ends, read back by the
	// running weft.
	var kv *kernelView
	if (isLive || given(fs, "node-addr")) && *nodeAddr != "" {
		var note string
		if kv, note = fetchKernelView(ctx, *nodeAddr, src, dst); note != "" {
			fmt.Fprintf(stderr, "weft explain: %s\n", note)
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := struct {
			*explain.Report
			Kernel *kernelView `json:"kernel,omitempty"`
		}{&report, kv}
		if err := enc.Encode(out); err != nil {
			return exitFailure, err
		}
	} else {
		report.WriteText(stdout)
		if kv != nil {
			kv.writeText(stdout)
		}
	}
	if !d.Allowed {
		return exitBlocked, nil
	}
	return exitOK, nil
}

func verdictWord(allowed bool) string {
	if allowed {
		return "ALLOWED"
	}
	return "BLOCKED"
}

func parsePort(s string) (policy.Protocol, uint16, error) {
	num, protoName, hasProto := strings.Cut(s, "/")
	proto := policy.TCP
	if hasProto {
		var err error
		if proto, err = policy.ParseProtocol(protoName); err != nil {
			return 0, 0, usagef("--port %q: %v", s, err)
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return 0, 0, usagef("--port %q: want a port number 1-65535, optionally with /TCP, /UDP or /SCTP", s)
	}
	return proto, uint16(n), nil
}

// endpointSpec is a --from/--to value: a pod or an address.
type endpointSpec struct {
	flag string
	pod  *policy.Pod
	addr netip.Addr
}

func parseEndpoint(snap *policy.Snapshot, where, flagName, v string) (endpointSpec, error) {
	e := endpointSpec{flag: flagName}
	if addr, err := netip.ParseAddr(v); err == nil {
		e.addr = addr.Unmap()
		return e, nil
	}
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return e, usagef("--%s %q: want namespace/pod or an IP address", flagName, v)
	}
	var err error
	if e.pod, err = findPod(snap, where, flagName, ns, name); err != nil {
		return e, err
	}
	if len(e.pod.IPs) == 0 {
		return e, usagef("--%s: pod %s has no address (in a manifest: set status.podIPs; in a cluster: it is not running yet)", flagName, v)
	}
	return e, nil
}

// resolveEndpoints picks addresses of one family for both ends: the family of
// an explicit address, else IPv4 when both pods have it, else IPv6.
func resolveEndpoints(snap *policy.Snapshot, where, from, to string) (netip.Addr, netip.Addr, error) {
	src, err := parseEndpoint(snap, where, "from", from)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	dst, err := parseEndpoint(snap, where, "to", to)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	for _, fam := range []int{4, 6} {
		a, okA := src.addrOf(fam)
		b, okB := dst.addrOf(fam)
		if okA && okB {
			return a, b, nil
		}
	}
	return netip.Addr{}, netip.Addr{}, usageError{errors.New("--from and --to have no IP family in common (one is IPv4 only, the other IPv6 only)")}
}

func (e endpointSpec) addrOf(fam int) (netip.Addr, bool) {
	if e.pod == nil {
		return e.addr, (fam == 4) == e.addr.Is4()
	}
	return e.pod.IP(fam)
}
