package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CNIPlugin returns the path of weft-cni that BuildWeft built beside weft.
func CNIPlugin(weftBinary string) string {
	return filepath.Join(filepath.Dir(weftBinary), "weft-cni")
}

// CNISocket is the unix socket on which weft on node serves the CNI hook
// (StartWeft passes it as --cni-socket).
func (l *Lab) CNISocket(node *Node) string {
	return filepath.Join(l.Dir, node.Name+"-cni.sock")
}

// CNIOptions say how AddPod and DeletePod drive weft-cni, as a container
// runtime does: ADD after the pod's network exists and before its status is
// written, DEL before its network goes.
type CNIOptions struct {
	// Plugin is weft-cni's path (CNIPlugin).
	Plugin string
	// Timeout is the plugin's "timeout" setting (default its own, 10s).
	Timeout time.Duration
	// FailOpen is the plugin's "failOpen" setting.
	FailOpen bool
	// Socket overrides the node's CNISocket.
	Socket string
}

// CNIResult is what one plugin run printed and how it ended.
type CNIResult struct {
	Stdout, Stderr string
	// Err is set when the plugin exited non-zero.
	Err error
}

// RunCNI runs the plugin with command (ADD, DEL, CHECK, VERSION) for pod
// exactly as a runtime does: CNI_* environment variables, the network
// configuration on stdin with the previous plugin's result (the pod's
// addresses), and the runtime's K8S_POD_* arguments.
func (l *Lab) RunCNI(ctx context.Context, command string, p *Pod, o CNIOptions) CNIResult {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "lab-pod-network",
		"type":       "weft-cni",
		"socket":     l.CNISocket(p.Node),
		"prevResult": p.cniResult(),
	}
	if o.Socket != "" {
		conf["socket"] = o.Socket
	}
	if o.Timeout > 0 {
		conf["timeout"] = o.Timeout.String()
	}
	if o.FailOpen {
		conf["failOpen"] = true
	}
	stdin, _ := json.Marshal(conf)
	return runCNIPlugin(ctx, o.Plugin, command, p, stdin)
}

func runCNIPlugin(ctx context.Context, plugin, command string, p *Pod, stdin []byte) CNIResult {
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command,
		"CNI_CONTAINERID="+p.containerID(),
		"CNI_NETNS=/run/netns/"+p.NetNS,
		"CNI_IFNAME="+podIface,
		"CNI_PATH="+filepath.Dir(plugin),
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s", p.Namespace, p.Name, p.containerID()),
	)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := CNIResult{Stdout: out.String(), Stderr: errOut.String()}
	if err != nil {
		r.Err = fmt.Errorf("weft-cni %s for %s: %v: %s %s", command, p.ID(), err, strings.TrimSpace(r.Stdout), strings.TrimSpace(r.Stderr))
	}
	return r
}

// containerID is the pod's sandbox id as a runtime would give it.
func (p *Pod) containerID() string { return fmt.Sprintf("lab%06d", p.serial) }

// cniResult is the pod's network as the plugins before weft-cni report it.
func (p *Pod) cniResult() map[string]any {
	var ips []map[string]any
	for _, ip := range p.addrs() {
		gw := p.Node.sameFamily(ip)
		ips = append(ips, map[string]any{"address": netip.PrefixFrom(ip, ip.BitLen()).String(), "gateway": gw.String(), "interface": 0})
	}
	return map[string]any{
		"cniVersion": "1.0.0",
		"interfaces": []map[string]any{{"name": podIface, "mac": p.mac.String(), "sandbox": "/run/netns/" + p.NetNS}},
		"ips":        ips,
	}
}
