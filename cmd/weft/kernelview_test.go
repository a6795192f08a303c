package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/status"
)

func TestKernelViewNamesMismatch(t *testing.T) {
	rep := &status.Report{
		Node: "node-1",
		Mode: "audit",
		Pods: []status.Pod{
			{Pod: "y/a", Addrs: []string{"10.32.2.1"}, Ingress: &status.Isolation{Group: "g-in", Policies: []string{"y/deny"}}},
			{Pod: "y/b", Addrs: []string{"10.32.2.2"}, Ingress: &status.Isolation{Group: "g-in", Policies: []string{"y/deny"}}},
		},
		Kernel: []backend.AddressView{
			{Addr: "10.32.2.1", Groups: []string{"egress g-open"}, Sets: []string{}},
			{Addr: "10.32.2.2", Groups: []string{"ingress g-in", "egress g-open"}, Sets: []string{"peers"}},
			{Addr: "10.40.0.1", Groups: []string{}, Sets: []string{}},
		},
	}
	kv := buildKernelView("127.0.0.1:6781", rep)
	if len(kv.Ends) != 3 {
		t.Fatalf("ends %+v", kv.Ends)
	}
	if m := kv.Ends[0].Mismatch; !strings.Contains(m, "weft applied ingress g-in but the kernel dispatches it to egress g-open") {
		t.Errorf("y/a: mismatch %q", m)
	}
	if m := kv.Ends[1].Mismatch + kv.Ends[2].Mismatch; m != "" {
		t.Errorf("y/b and the external address: mismatch %q, want none", m)
	}
	var buf bytes.Buffer
	kv.writeText(&buf)
	for _, want := range []string{
		"On node node-1, the kernel holds (read back by the weft daemon at 127.0.0.1:6781):",
		"  (node node-1 runs --mode audit: for its local pods in namespaces not annotated weft.dev/enforcement=enforce, what policy blocks is logged and let through)",
		"  y/b 10.32.2.2: dispatched to ingress g-in, egress g-open; in sets peers",
		"  10.40.0.1: no group (not a local pod of this node, or unknown to the kernel); in no other set of weft's",
		"  MISMATCH for y/a 10.32.2.1: weft applied ingress g-in",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}
}
