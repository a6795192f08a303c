package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/status"
)

// kernelView is what the weft daemon on this node applied for the ends of a
// connection and what the kernel holds for them, read back: weft explain
// on a node shows it beside what policy says, so that "policy says allowed
// but the node blocks" is visible.
type kernelView struct {
	Node string `json:"node"`
	// Mode is the node's --mode (enforce or audit).
	Mode   string      `json:"mode,omitempty"`
	Daemon string      `json:"daemon"`
	Ends   []kernelEnd `json:"ends"`
}

// kernelEnd is one end of the connection on this node.
type kernelEnd struct {
	Addr string `json:"addr"`
	// Pod is set when the address is a local pod of this node.
	Pod string `json:"pod,omitempty"`
	// Applied are the groups weft applied for it ("ingress GROUP"), Kernel
	// the groups the kernel dispatches it to.
	Applied []string `json:"applied"`
	Kernel  []string `json:"kernel"`
	// Sets are weft's other sets that hold the address in the kernel.
	Sets []string `json:"sets"`
	// Mismatch says how the kernel differs from what weft applied.
	Mismatch string `json:"mismatch,omitempty"`
}

// fetchKernelView asks the daemon at addr about the addresses. ok is false,
// with a note for stderr, when no daemon answers (explain not run on a node
// running weft).
func fetchKernelView(ctx context.Context, addr string, addrs ...netip.Addr) (kv *kernelView, note string) {
	q := url.Values{}
	for _, a := range addrs {
		q.Add("addr", a.String())
	}
	u := "http://" + addr + "/status?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Sprintf("--node-addr %q: %v", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Sprintf("no weft daemon answers at %s (%v): the kernel's view is left out (run explain on a node running weft, or give --node-addr its --metrics-addr)", addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Sprintf("the weft daemon at %s answered %s: %s: the kernel's view is left out", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	var rep status.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Sprintf("the weft daemon at %s answered what explain cannot read (%v): the kernel's view is left out", addr, err)
	}
	return buildKernelView(addr, &rep), ""
}

func buildKernelView(daemon string, rep *status.Report) *kernelView {
	kv := &kernelView{Node: rep.Node, Mode: rep.Mode, Daemon: daemon, Ends: []kernelEnd{}}
	for _, held := range rep.Kernel {
		end := kernelEnd{Addr: held.Addr, Applied: []string{}, Kernel: held.Groups, Sets: held.Sets}
		for _, p := range rep.Pods {
			if !slices.Contains(p.Addrs, held.Addr) {
				continue
			}
			end.Pod = p.Pod
			if p.Ingress != nil {
				end.Applied = append(end.Applied, "ingress "+p.Ingress.Group)
			}
			if p.Egress != nil {
				end.Applied = append(end.Applied, "egress "+p.Egress.Group)
			}
		}
		end.Mismatch = mismatch(end.Applied, held)
		kv.Ends = append(kv.Ends, end)
	}
	return kv
}

// mismatch says which isolating groups weft applied for an address the
// kernel does not dispatch it to. It checks one way only: the kernel's list
// also holds the open groups (known pods no policy isolates), which the
// report does not name; a dispatch weft never applied is what weft status
// --verify finds.
func mismatch(applied []string, held backend.AddressView) string {
	var missing []string
	for _, g := range applied {
		if !slices.Contains(held.Groups, g) {
			missing = append(missing, g)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	kernel := "no group"
	if len(held.Groups) > 0 {
		kernel = strings.Join(held.Groups, ", ")
	}
	return fmt.Sprintf("weft applied %s but the kernel dispatches it to %s: rules changed behind weft's back? (weft status --verify)", strings.Join(missing, ", "), kernel)
}

// writeText prints the view after explain's report.
func (kv *kernelView) writeText(w io.Writer) {
	fmt.Fprintf(w, "On node %s, the kernel holds (read back by the weft daemon at %s):\n", kv.Node, kv.Daemon)
	if kv.Mode == "audit" {
		fmt.Fprintf(w, "  (node %s runs --mode audit: for its local pods in namespaces not annotated %s=enforce, what policy blocks is logged and let through)\n", kv.Node, policy.EnforcementAnnotation)
	}
	for _, e := range kv.Ends {
		who := e.Addr
		if e.Pod != "" {
			who = e.Pod + " " + e.Addr
		}
		groups := "no group (not a local pod of this node, or unknown to the kernel)"
		if len(e.Kernel) > 0 {
			groups = "dispatched to " + strings.Join(e.Kernel, ", ")
		}
		sets := "in no other set of weft's"
		if len(e.Sets) > 0 {
			sets = "in sets " + strings.Join(e.Sets, ", ")
		}
		fmt.Fprintf(w, "  %s: %s; %s\n", who, groups, sets)
		if e.Mismatch != "" {
			fmt.Fprintf(w, "  MISMATCH for %s: %s\n", who, e.Mismatch)
		}
	}
}
