package scenarios

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Family is an IP family.
type Family int

// The IP families; the values are the version numbers.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// Names and labels of the standard model.
const (
	Node1 = "node-1"
	Node2 = "node-2"
	// NamespaceLabel is the label every model namespace carries (ns=<name>).
	NamespaceLabel = "ns"
	// PodLabel is the label every model pod carries (pod=<name>).
	PodLabel = "pod"
	// ContainerName is the name of the single container of a model pod.
	ContainerName = "serve"
	// Image is the container image model pods name. Nothing in weft runs it;
	// a lab that starts real servers chooses its own.
	Image = "registry.k8s.io/pause:3.10"
)

// StandardNamespaces and StandardPods are the names the standard model is made of.
var (
	StandardNamespaces = []string{"x", "y", "z"}
	StandardPods       = []string{"a", "b", "c"}
)

// ServedPorts are the container ports of every model pod: each pod serves
// TCP and UDP on ports 80 and 81, named serve-<port>-<protocol>.
var ServedPorts = []corev1.ContainerPort{
	{Name: "serve-80-tcp", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
	{Name: "serve-81-tcp", ContainerPort: 81, Protocol: corev1.ProtocolTCP},
	{Name: "serve-80-udp", ContainerPort: 80, Protocol: corev1.ProtocolUDP},
	{Name: "serve-81-udp", ContainerPort: 81, Protocol: corev1.ProtocolUDP},
}

// Node is a machine of the model. Its addresses are the host addresses of
// its pods and the pod addresses of its host-network pods.
type Node struct {
	Name string
	IPs  []netip.Addr // one IPv4 and one IPv6 address
}

// Model is a cluster as Kubernetes objects. Build it with NewModel and change
// it with its methods before handing the objects to a snapshot or an API
// server; the objects are fresh for every NewModel call.
type Model struct {
	Nodes      []Node
	Namespaces []*corev1.Namespace
	// Pods in the order they were added: namespace by namespace, a, b, c first.
	Pods []*corev1.Pod
}

// NewModel returns the standard model: namespaces x, y, z; pods a, b, c in
// each; a and b on node-1, c on node-2.
//
// Addresses: node-1 is 10.32.0.1 and fd00::1, node-2 10.32.0.2 and fd00::2.
// The n-th pod (counting from 1) of the m-th namespace (x=1, y=2, z=3) has
// 10.32.m.n and fd00::m:n, so x/a is 10.32.1.1 and fd00::1:1, and namespace y
// is 10.32.2.0/24 and fd00::2:0/112.
func NewModel() *Model {
	m := &Model{Nodes: []Node{
		{Name: Node1, IPs: []netip.Addr{netip.MustParseAddr("10.32.0.1"), netip.MustParseAddr("fd00::1")}},
		{Name: Node2, IPs: []netip.Addr{netip.MustParseAddr("10.32.0.2"), netip.MustParseAddr("fd00::2")}},
	}}
	for _, ns := range StandardNamespaces {
		m.AddNamespace(ns)
		for _, p := range StandardPods {
			node := Node1
			if p == "c" {
				node = Node2
			}
			m.AddPod(ns, p, node)
		}
	}
	return m
}

// Namespace returns the namespace called name, or nil.
func (m *Model) Namespace(name string) *corev1.Namespace {
	for _, ns := range m.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// Pod returns the pod "namespace/name", or nil.
func (m *Model) Pod(key string) *corev1.Pod {
	for _, p := range m.Pods {
		if p.Namespace+"/"+p.Name == key {
			return p
		}
	}
	return nil
}

// Node returns the node called name, or nil.
func (m *Model) Node(name string) *Node {
	for i := range m.Nodes {
		if m.Nodes[i].Name == name {
			return &m.Nodes[i]
		}
	}
	return nil
}

func (m *Model) mustPod(key string) *corev1.Pod {
	p := m.Pod(key)
	if p == nil {
		panic(fmt.Sprintf("scenarios: model has no pod %q", key))
	}
	return p
}

func (m *Model) mustNode(name string) *Node {
	n := m.Node(name)
	if n == nil {
		panic(fmt.Sprintf("scenarios: model has no node %q", name))
	}
	return n
}

// AddNamespace adds a namespace labelled ns=<name> (and
// kubernetes.io/metadata.name=<name>, as the API server would).
func (m *Model) AddNamespace(name string) *corev1.Namespace {
	if m.Namespace(name) != nil {
		panic(fmt.Sprintf("scenarios: namespace %q exists", name))
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{NamespaceLabel: name, "kubernetes.io/metadata.name": name},
	}}
	m.Namespaces = append(m.Namespaces, ns)
	return ns
}

// AddPod adds a running pod labelled pod=<name> that serves ServedPorts, with
// the next free addresses of its namespace (see NewModel).
func (m *Model) AddPod(namespace, name, node string) *corev1.Pod {
	nsIndex := slices.IndexFunc(m.Namespaces, func(ns *corev1.Namespace) bool { return ns.Name == namespace })
	if nsIndex < 0 {
		panic(fmt.Sprintf("scenarios: no namespace %q for pod %q", namespace, name))
	}
	n := 1
	for _, p := range m.Pods {
		if p.Namespace == namespace && !p.Spec.HostNetwork {
			n++
		}
	}
	v4 := netip.AddrFrom4([4]byte{10, 32, byte(nsIndex + 1), byte(n)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00::%x:%x", nsIndex+1, n))
	return m.addPod(namespace, name, node, false, []netip.Addr{v4, v6})
}

// AddSingleStackPod is AddPod for a pod with an address of one family only
// (the one AddPod would give it); probes of the other family leave it out.
func (m *Model) AddSingleStackPod(namespace, name, node string, f Family) *corev1.Pod {
	p := m.AddPod(namespace, name, node)
	keep := p.Status.PodIPs[0]
	if f == IPv6 {
		keep = p.Status.PodIPs[1]
	}
	p.Status.PodIP = keep.IP
	p.Status.PodIPs = []corev1.PodIP{keep}
	return p
}

// AddHostNetworkPod adds a running host-network pod labelled pod=<name>: its
// addresses are its node's. Label selectors never match such a pod; only
// ipBlocks do, and its traffic to pods of its own node is node traffic.
func (m *Model) AddHostNetworkPod(namespace, name, node string) *corev1.Pod {
	if m.Namespace(namespace) == nil {
		panic(fmt.Sprintf("scenarios: no namespace %q for pod %q", namespace, name))
	}
	return m.addPod(namespace, name, node, true, m.mustNode(node).IPs)
}

func (m *Model) addPod(namespace, name, node string, hostNetwork bool, ips []netip.Addr) *corev1.Pod {
	if m.Pod(namespace+"/"+name) != nil {
		panic(fmt.Sprintf("scenarios: pod %s/%s exists", namespace, name))
	}
	host := m.mustNode(node)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{PodLabel: name}},
		Spec: corev1.PodSpec{
			NodeName:    node,
			HostNetwork: hostNetwork,
			Containers: []corev1.Container{{
				Name:  ContainerName,
				Image: Image,
				Ports: slices.Clone(ServedPorts),
			}},
		},
		Status: corev1.PodStatus{
			Phase:   corev1.PodRunning,
			HostIP:  host.IPs[0].String(),
			HostIPs: []corev1.HostIP{{IP: host.IPs[0].String()}, {IP: host.IPs[1].String()}},
			PodIP:   ips[0].String(),
		},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	m.Pods = append(m.Pods, p)
	return p
}

// AddFinishedPod adds a pod labelled pod=<name> that has finished (phase
// Succeeded) and whose status still shows the addresses of the pod reusedBy,
// as happens when the network plugin hands a finished pod's addresses to a
// new pod. A finished pod is no endpoint: it is in no matrix, and policies
// must neither select it nor let its old peers reach the new holder of its
// addresses.
func (m *Model) AddFinishedPod(namespace, name, node, reusedBy string) *corev1.Pod {
	if m.Namespace(namespace) == nil {
		panic(fmt.Sprintf("scenarios: no namespace %q for pod %q", namespace, name))
	}
	var ips []netip.Addr
	for _, ip := range m.mustPod(reusedBy).Status.PodIPs {
		ips = append(ips, netip.MustParseAddr(ip.IP))
	}
	p := m.addPod(namespace, name, node, false, ips)
	p.Status.Phase = corev1.PodSucceeded
	return p
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// SetPodLabel sets a label on the pod "namespace/name".
func (m *Model) SetPodLabel(key, label, value string) {
	m.mustPod(key).Labels[label] = value
}

// SetNamespaceLabel sets a label on a namespace.
func (m *Model) SetNamespaceLabel(namespace, label, value string) {
	ns := m.Namespace(namespace)
	if ns == nil {
		panic(fmt.Sprintf("scenarios: model has no namespace %q", namespace))
	}
	ns.Labels[label] = value
}

// SetNamedPort gives the container port called portName of pod key the
// number port (the same name may stand for different numbers on different
// pods). A lab that runs servers must serve the new number.
func (m *Model) SetNamedPort(key, portName string, port int32) {
	ports := m.mustPod(key).Spec.Containers[0].Ports
	for i := range ports {
		if ports[i].Name == portName {
			ports[i].ContainerPort = port
			return
		}
	}
	panic(fmt.Sprintf("scenarios: pod %s has no port %q", key, portName))
}

// RemoveNamedPort removes the name of a container port of pod key (the pod
// still serves the port, but no policy can name it).
func (m *Model) RemoveNamedPort(key, portName string) {
	p := m.mustPod(key)
	ports := p.Spec.Containers[0].Ports
	for i := range ports {
		if ports[i].Name == portName {
			ports[i].Name = ""
			return
		}
	}
	panic(fmt.Sprintf("scenarios: pod %s has no port %q", key, portName))
}

// MovePod runs the pod key on another node.
func (m *Model) MovePod(key, node string) {
	p := m.mustPod(key)
	host := m.mustNode(node)
	p.Spec.NodeName = node
	p.Status.HostIP = host.IPs[0].String()
	p.Status.HostIPs = []corev1.HostIP{{IP: host.IPs[0].String()}, {IP: host.IPs[1].String()}}
	if p.Spec.HostNetwork {
		p.Status.PodIP = host.IPs[0].String()
		p.Status.PodIPs = []corev1.PodIP{{IP: host.IPs[0].String()}, {IP: host.IPs[1].String()}}
	}
}

// EndpointKind says what an Endpoint is.
type EndpointKind int

// The kinds of endpoint a matrix can name.
const (
	// PodEndpoint is a pod with its own addresses, named "namespace/name".
	PodEndpoint EndpointKind = iota
	// HostNetworkEndpoint is a host-network pod, named "namespace/name"; it
	// sends from its node's addresses.
	HostNetworkEndpoint
	// NodeEndpoint is a node itself (a process in the node's root network
	// namespace, such as the kubelet), named after the node.
	NodeEndpoint
)

func (k EndpointKind) String() string {
	switch k {
	case HostNetworkEndpoint:
		return "host-network pod"
	case NodeEndpoint:
		return "node"
	}
	return "pod"
}

// Endpoint is something that sends or receives probes: a pod, a host-network
// pod or a node.
type Endpoint struct {
	Name string
	Kind EndpointKind
	// Node runs the endpoint (the node itself for a NodeEndpoint).
	Node string
	IPs  []netip.Addr
}

// IP returns the endpoint's address of family f.
func (e Endpoint) IP(f Family) (netip.Addr, bool) {
	for _, ip := range e.IPs {
		if ip.Is4() == (f == IPv4) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Endpoints returns every pod that has not finished (in model order) and
// then every node.
func (m *Model) Endpoints() []Endpoint {
	var out []Endpoint
	for _, p := range m.Pods {
		if finished(p) {
			continue
		}
		e := Endpoint{Name: p.Namespace + "/" + p.Name, Kind: PodEndpoint, Node: p.Spec.NodeName}
		if p.Spec.HostNetwork {
			e.Kind = HostNetworkEndpoint
		}
		for _, ip := range p.Status.PodIPs {
			e.IPs = append(e.IPs, netip.MustParseAddr(ip.IP))
		}
		out = append(out, e)
	}
	for _, n := range m.Nodes {
		out = append(out, Endpoint{Name: n.Name, Kind: NodeEndpoint, Node: n.Name, IPs: slices.Clone(n.IPs)})
	}
	return out
}

// Endpoint returns the endpoint called name ("namespace/pod" or a node name).
func (m *Model) Endpoint(name string) (Endpoint, bool) {
	for _, e := range m.Endpoints() {
		if e.Name == name {
			return e, true
		}
	}
	return Endpoint{}, false
}

// PodNames returns the names ("namespace/name") of every pod that has not
// finished, host-network pods included, in model order: the endpoints every Matrix of a scenario
// must list both as sources and as destinations.
func (m *Model) PodNames() []string {
	out := make([]string, 0, len(m.Pods))
	for _, p := range m.Pods {
		if finished(p) {
			continue
		}
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}
