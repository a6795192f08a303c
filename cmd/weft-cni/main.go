// Command weft-cni is a chained CNI plugin: placed after the plugin that gives
// a pod its addresses, it tells the weft daemon on the node the pod's identity
// and addresses and, on ADD, holds the pod's start until weft has programmed
// its network policy isolation. So a pod that a policy selects never sends or
// receives a packet that the policy forbids, although weft learns about the pod
// from the API server only later.
//
// The container runtime runs it as the CNI spec says: the command and the
// sandbox in CNI_* environment variables, the network config on stdin, the
// result or a CNI error on stdout. Keys of its own in the config:
//
//	"socket":   weft's CNI socket (default /run/weft/cni.sock)
//	"timeout":  how long ADD waits for weft, a Go duration (default "10s", at most "60s")
//	"failOpen": start the pod anyway when weft cannot confirm it (default false)
//
// Run with arguments it puts itself on a node or takes itself off:
//
//	weft-cni install   [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d] [--source PATH]
//	                   [--socket PATH] [--timeout 10s] [--fail-open]
//	weft-cni uninstall [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d]
//
// install copies the binary into the bin dir and chains a weft-cni entry at
// the end of the plugins of the conflist the runtime uses (the first CNI
// config in the conf dir by name); uninstall removes every weft-cni entry
// from the conf dir's conflists, then the binary. Both are idempotent and
// replace files atomically.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// buildVersion is set at build time with -ldflags "-X main.buildVersion=...".
var buildVersion = "dev"

// supportedVersions are the CNI spec versions weft-cni reads and writes.
var supportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

func main() {
	// A runtime runs the plugin without arguments; install and uninstall
	// are run by hand or by weft's DaemonSet.
	if len(os.Args) > 1 {
		os.Exit(runTool(os.Args[1:], os.Stdout, os.Stderr))
	}
	p := &plugin{stdout: os.Stdout, stderr: os.Stderr}
	about := fmt.Sprintf("weft-cni %s: chained CNI plugin that has the local weft isolate a pod before it starts", buildVersion)
	// GC and STATUS (CNI 1.1) are left to the library's defaults, which
	// succeed: weft learns of deleted pods from the API server, and a node
	// whose weft is down must not be reported as having no network.
	funcs := skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check}
	if err := skel.PluginMainFuncsWithError(funcs, supportedVersions, about); err != nil {
		writeError(os.Stdout, p.cniVersion, err)
		os.Exit(1)
	}
}

// errorResult is a CNI error as the spec writes it, with the version of the
// config it answers when that is known.
type errorResult struct {
	CNIVersion string `json:"cniVersion,omitempty"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

// writeError prints e as a CNI error result.
func writeError(w io.Writer, cniVersion string, e *types.Error) {
	out, err := json.MarshalIndent(errorResult{CNIVersion: cniVersion, Code: e.Code, Msg: e.Msg, Details: e.Details}, "", "    ")
	if err != nil {
		// Cannot happen for strings and numbers; say something all the same.
		out = []byte(fmt.Sprintf(`{"code":%d,"msg":%q}`, types.ErrInternal, strings.ToValidUTF8(e.Msg, "?")))
	}
	_, _ = w.Write(append(out, '\n'))
}
