// Package lab is weft's cluster-in-a-box: real etcd, a real kube-apiserver,
// pods as network namespaces on a real Linux bridge, and weft enforcing
// policy with the real kernel. The end-to-end tests, the benchmarks and
// `make demo` all use it.
//
// Layout. Every lab object is a network namespace named
// "weft-lab-<pid>-<random>-…": a fabric (one bridge linking the nodes), one
// namespace per node (node-1, node-2, …: a bridge br0 for its pods with
// br_netfilter on, IP forwarding, the node's addresses 10.32.0.i and fd00::i
// on its fabric link), and one per pod (eth0, a veth into its node's bridge).
// Addresses are host routes, so pods can have any address in 10.32.0.0/12
// and fd00::/8 — those of internal/scenarios' standard model included —
// and same-node pods talk over the bridge (netfilter sees it through
// br_netfilter), other traffic is routed by the nodes. See network.go.
//
// Control plane. etcd and kube-apiserver run in node-1; the API server
// listens on node-1's address, so weft on every node reaches it with the
// kubeconfig the lab writes (an admin token). The lab process itself stays in
// its own namespace: its API client and its probes create their sockets
// inside lab namespaces (Node.DialContext, Do), so the host's interfaces and
// firewall are never touched.
//
// Pods. AddPod builds the namespace, starts in-process servers (TCP and UDP
// on ServePorts and the container's ports, answering with the pod's
// "namespace/name"), and then writes the Pod object with spec.nodeName and a
// Running status with its IPs through the status subresource, as a kubelet
// would. Host-network pods share their node's namespace; single-stack pods
// have one family; WriteAPIOnlyPod writes objects with nothing behind them
// (finished pods, scale tests). Neighbour entries between pods, their node
// and the other nodes are permanent: the kernel's neighbour table is small
// and shared by every namespace. Nodes serve on ServePorts too.
//
// Pod ranges and the CNI hook. Each Node object carries spec.podCIDRs, the
// ranges of its default pod addresses (Node.PodCIDRs), so weft denies
// addresses there that no known pod holds; pods with addresses of their own
// choosing (the scenario model's) lie outside them. StartWeft gives each
// weft its own --cni-socket (CNISocket). With PodSpec.CNI, AddPod follows a
// runtime's order: the Pod object first, then the network, then weft-cni's
// ADD (RunCNI: CNI_* variables, the configuration with the previous
// plugin's result on stdin), then the status; DeletePod runs DEL first.
// PodSpec.NetworkUp is called once the pod's network and servers are up, so
// a test can hammer a pod before weft knows it.
//
// Outages and identities. StopAPIServer and StartAPIServer stop and start
// kube-apiserver (etcd keeps its data); Process.Kill kills a process
// outright. ApplyManifest creates RBAC objects, ServiceAccountKubeconfig
// writes a kubeconfig for a ServiceAccount's token (TokenRequest), and
// WeftOptions.Kubeconfig runs weft with it.
//
// Probing. Probe connects once between Endpoints (pods or nodes): a TCP
// connection that must read back the destination's identity, or an answered
// UDP datagram. ProbeMatrix probes every pair in parallel (bounded);
// WaitMatrix polls until a wanted Matrix is seen (Matrix has a text form,
// ParseMatrix, Diff and Changes); WaitTransition times when one path opens or
// closes, for benchmarks. Blocked probes take ProbeTimeout, since weft drops
// and never rejects.
//
// weft. BuildWeft builds ./cmd/weft once; StartWeft runs `weft run
// --kubeconfig K --node-name N --backend B` inside a node's namespace with its
// output in a log file in Dir; WaitWeftReady polls its /readyz; WeftCleanup
// runs `weft cleanup`. ThreeTier is the demo application.
//
// Lifetime. Use one lab per test package (TestMain) or program. Close
// removes everything, also after a failed Start; CloseOnSignal does it on
// Ctrl-C; processes the lab starts die with it (parent-death signal); and
// Start removes namespaces and folders (with the processes inside) that labs
// of dead processes left. Set WEFT_LAB_KEEP=1 to keep the lab's folder (logs)
// after Close.
package lab
