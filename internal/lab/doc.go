// Package lab is weft's cluster-in-a-box: real etcd, a real kube-apiserver,
// pods as network namespaces on a real Linux bridge, and weft enforcing
// policy with the real kernel. The end-to-end tests, the benchmarks and
// `make demo` all use it.
//
// Layout. Every lab object is a network namespace named
// "weft-lab-<pid>-<random>-…": a fabric (one bridge linking the nodes), one
// namespace per node (a bridge br0 for its pods with br_netfilter on, IP
// forwarding, routes to the other nodes' pod subnets), and one per pod (eth0,
// a veth into its node's bridge). etcd and kube-apiserver run in the first
// node; the API server listens on that node's fabric address so weft on every
// node reaches it. The lab process itself stays in its own namespace: its API
// client and its probes create their sockets inside lab namespaces
// (Node.DialContext, Source), so the host's interfaces and firewall are never
// touched. Addresses: see network.go (10.32.0.0/12 and fd00::/8 only).
//
// Pods. AddPod builds the namespace, starts in-process servers (TCP and UDP
// on ServePorts, answering with the pod's "namespace/name"), and then writes
// the Pod object with spec.nodeName and a Running status with both IPs
// through the status subresource, as a kubelet would. Neighbour entries
// between pods, their gateway and the nodes are permanent, because the
// kernel's neighbour table is small and shared by every namespace.
//
// Probing. Probe connects once (a TCP connection that must read back the
// destination's identity, or an answered UDP datagram); ProbeMatrix probes
// every pair in parallel; WaitMatrix polls until a wanted Matrix is seen;
// WaitTransition times when one path opens or closes, for benchmarks.
// Blocked probes take ProbeTimeout, since weft drops and never rejects.
//
// weft. BuildWeft builds ./cmd/weft once; StartWeft runs `weft run` inside a
// node's namespace with its output in a log file in Dir.
//
// Lifetime. Use one lab per test package (TestMain) or program. Close
// removes everything, also after a failed Start; CloseOnSignal does it on
// Ctrl-C; processes the lab starts die with it (parent-death signal); and
// Start removes namespaces and folders that labs of dead processes left.
// Set WEFT_LAB_KEEP=1 to keep the lab's folder (logs) after Close.
package lab
