package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// ServePorts are the ports every lab pod and node serves on TCP (replies
// with its identity, "namespace/name" or the node's name, then closes) and
// on UDP (answers each datagram with its identity), on IPv4 and IPv6. A
// pod's container ports are named serve-<port>-tcp and serve-<port>-udp, as
// in Kubernetes' e2e tests; a pod also serves any other container port it
// declares.
var ServePorts = []int{80, 81}

// PortName is the container port name the lab gives port/protocol.
func PortName(port int, protocol corev1.Protocol) string {
	return fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(protocol)))
}

// DefaultContainerPorts are ServePorts on TCP and UDP, named by PortName.
func DefaultContainerPorts() []corev1.ContainerPort {
	var ports []corev1.ContainerPort
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
		for _, port := range ServePorts {
			ports = append(ports, corev1.ContainerPort{Name: PortName(port, proto), ContainerPort: int32(port), Protocol: proto})
		}
	}
	return ports
}

// PodSpec describes a pod to add.
type PodSpec struct {
	Namespace string
	Name      string
	// Node defaults to the lab's first node.
	Node   *Node
	Labels map[string]string
	// IPv4 and IPv6, when valid, are used instead of the node's next free
	// addresses: to re-create a pod with a deleted pod's addresses, or to
	// build a model with fixed addresses. Ignored for host-network pods.
	IPv4, IPv6 netip.Addr
	// Families the pod has addresses of (default both): a single-stack pod
	// has one.
	Families []Family
	// Ports are the container's ports (default DefaultContainerPorts). The
	// pod serves each of them, and ServePorts.
	Ports []corev1.ContainerPort
	// HostNetwork makes a host-network pod: no namespace of its own, its
	// node's addresses; it answers as its node does.
	HostNetwork bool
	// CNI, when set, makes AddPod follow a runtime's order with weft-cni:
	// the Pod object is created without status, the network is set up, the
	// plugin's ADD runs (and must succeed), then the status is written; and
	// DeletePod runs DEL before the network goes.
	CNI *CNIOptions
	// NetworkUp, when set, is called once the pod's network and servers
	// are up, before anything about the pod is written to the API (or, with
	// CNI, before ADD): probes from then on meet whatever weft does with an
	// address it does not know yet.
	NetworkUp func(p *Pod)
}

// Pod is a lab pod: a network namespace with a veth into its node's bridge,
// servers, and a Running Pod object in the API.
type Pod struct {
	Namespace string
	Name      string
	Node      *Node
	// IPv4 and IPv6 are the pod's addresses (the Pod's status.podIPs); one
	// is invalid for a single-stack pod.
	IPv4, IPv6 netip.Addr
	// NetNS is the network namespace's name (the node's for a host-network pod).
	NetNS       string
	HostNetwork bool
	Ports       []corev1.ContainerPort

	serial  int
	ns      *netNS
	mac     net.HardwareAddr
	closers []io.Closer
	cni     *CNIOptions
}

// ID is "namespace/name", the name the pod has in matrices.
func (p *Pod) ID() string { return p.Namespace + "/" + p.Name }

// IP returns the pod's address of family f.
func (p *Pod) IP(f Family) netip.Addr {
	if f == IPv6 {
		return p.IPv6
	}
	return p.IPv4
}

func (p *Pod) String() string { return p.ID() }

// addrs returns the pod's valid addresses, IPv4 first.
func (p *Pod) addrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range []netip.Addr{p.IPv4, p.IPv6} {
		if ip.IsValid() {
			out = append(out, ip)
		}
	}
	return out
}

// EnsureNamespace creates namespace name with exactly labels (plus the
// kubernetes.io/metadata.name label the API server adds), or sets its labels
// when it exists.
func (l *Lab) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: maps.Clone(labels)}}
	_, err := l.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return l.SetNamespaceLabels(ctx, name, labels)
	}
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// SetNamespaceLabels replaces the labels of namespace name.
func (l *Lab) SetNamespaceLabels(ctx context.Context, name string, labels map[string]string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := l.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ns.Labels = maps.Clone(labels)
		_, err = l.client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set labels of namespace %s: %w", name, err)
	}
	return nil
}

// SetPodLabels replaces the labels of pod p's API object.
func (l *Lab) SetPodLabels(ctx context.Context, p *Pod, labels map[string]string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := l.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		obj.Labels = maps.Clone(labels)
		_, err = l.client.CoreV1().Pods(p.Namespace).Update(ctx, obj, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set labels of pod %s: %w", p.ID(), err)
	}
	return nil
}

// AddPod builds the pod's network namespace on its node, starts its servers,
// and then writes the Pod object: created with spec.nodeName, then status
// Running with its IPs through the status subresource, as a kubelet would.
// The namespace must exist (EnsureNamespace).
func (l *Lab) AddPod(ctx context.Context, spec PodSpec) (*Pod, error) {
	if spec.Namespace == "" || spec.Name == "" {
		return nil, fmt.Errorf("add pod: namespace and name are required (got %q/%q)", spec.Namespace, spec.Name)
	}
	node := spec.Node
	if node == nil {
		node = l.Nodes[0]
	}
	id := spec.Namespace + "/" + spec.Name
	ports := spec.Ports
	if ports == nil {
		ports = DefaultContainerPorts()
	}

	l.mu.Lock()
	if _, dup := l.pods[id]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("add pod %s: the lab already has it (DeletePod first)", id)
	}
	l.serial++
	p := &Pod{Namespace: spec.Namespace, Name: spec.Name, Node: node, serial: l.serial, mac: podMAC(l.serial),
		HostNetwork: spec.HostNetwork, Ports: slices.Clone(ports), cni: spec.CNI}
	var peers []*Pod
	if p.HostNetwork {
		p.NetNS, p.ns = node.NetNS, node.ns
		p.IPv4, p.IPv6 = node.IPs[0], node.IPs[1]
	} else {
		p.NetNS = fmt.Sprintf("%sp%d", l.prefix, p.serial)
		want4 := spec.Families == nil || slices.Contains(spec.Families, IPv4)
		want6 := spec.Families == nil || slices.Contains(spec.Families, IPv6)
		if want4 {
			p.IPv4 = spec.IPv4
		}
		if want6 {
			p.IPv6 = spec.IPv6
		}
		if (want4 && !p.IPv4.IsValid()) || (want6 && !p.IPv6.IsValid()) {
			v4, v6 := node.nextPodAddrs()
			if want4 && !p.IPv4.IsValid() {
				p.IPv4 = v4
			}
			if want6 && !p.IPv6.IsValid() {
				p.IPv6 = v6
			}
		}
		if err := l.checkPodAddrs(p); err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("add pod %s: %w", id, err)
		}
		peers = l.podsOnLocked(node)
	}
	l.pods[id] = p
	l.mu.Unlock()

	if spec.CNI != nil && !p.HostNetwork {
		// A runtime's order: the scheduled Pod object exists before the
		// kubelet sets up the network and calls the plugins.
		if _, err := l.createPodObject(ctx, p, spec.Labels); err != nil {
			l.forgetPod(ctx, p)
			return nil, fmt.Errorf("add pod %s: %w", id, err)
		}
	}
	if !p.HostNetwork {
		if err := l.plumbPod(ctx, p, peers); err != nil {
			l.forgetPod(ctx, p)
			return nil, fmt.Errorf("add pod %s: %w", id, err)
		}
		closers, err := serve(p.ns, servedPorts(p.Ports), p.ID())
		p.closers = closers
		if err != nil {
			l.forgetPod(ctx, p)
			return nil, fmt.Errorf("add pod %s: %w", id, err)
		}
		if spec.NetworkUp != nil {
			spec.NetworkUp(p)
		}
	}
	if spec.CNI != nil && !p.HostNetwork {
		if r := l.RunCNI(ctx, "ADD", p, *spec.CNI); r.Err != nil {
			l.forgetPod(ctx, p)
			return nil, fmt.Errorf("add pod %s: %w", id, r.Err)
		}
		if err := l.writePodStatus(ctx, p); err != nil {
			l.forgetPod(ctx, p)
			return nil, fmt.Errorf("add pod %s: %w", id, err)
		}
	} else if err := l.writePodObject(ctx, p, spec.Labels); err != nil {
		l.forgetPod(ctx, p)
		return nil, fmt.Errorf("add pod %s: %w", id, err)
	}
	slog.Debug("lab: pod added", "pod", id, "node", node.Name, "ipv4", p.IPv4, "ipv6", p.IPv6)
	return p, nil
}

// checkPodAddrs refuses addresses outside the lab's ranges or in use.
func (l *Lab) checkPodAddrs(p *Pod) error {
	addrs := p.addrs()
	if len(addrs) == 0 {
		return fmt.Errorf("no address: give PodSpec.Families at least one family")
	}
	if (p.IPv4.IsValid() && (!p.IPv4.Is4() || !labRange4.Contains(p.IPv4))) || (p.IPv6.IsValid() && (!p.IPv6.Is6() || !labRange6.Contains(p.IPv6))) {
		return fmt.Errorf("addresses %s, %s: want IPv4 addresses in %s and IPv6 addresses in %s", p.IPv4, p.IPv6, labRange4, labRange6)
	}
	for _, ip := range addrs {
		for _, n := range l.Nodes {
			if slices.Contains(n.IPs, ip) {
				return fmt.Errorf("address %s is node %s's", ip, n.Name)
			}
		}
		for _, o := range l.pods {
			if !o.HostNetwork && slices.Contains(o.addrs(), ip) {
				return fmt.Errorf("address %s is in use by pod %s", ip, o.ID())
			}
		}
	}
	return nil
}

// The only addresses the lab uses.
var (
	labRange4 = netip.MustParsePrefix("10.32.0.0/12")
	labRange6 = netip.MustParsePrefix("fd00::/8")
)

// podsOnLocked returns the pods with their own namespace on node. l.mu is held.
func (l *Lab) podsOnLocked(node *Node) []*Pod {
	var out []*Pod
	for _, o := range l.pods {
		if o.Node == node && !o.HostNetwork {
			out = append(out, o)
		}
	}
	return out
}

func (l *Lab) forgetPod(ctx context.Context, p *Pod) {
	l.mu.Lock()
	delete(l.pods, p.ID())
	peers := l.podsOnLocked(p.Node)
	l.mu.Unlock()
	if !p.HostNetwork {
		_ = p.teardown()
		l.unplumbPod(ctx, p, peers)
	}
}

// plumbPod makes the pod's namespace and its veth into the node's bridge,
// and routes and permanent neighbour entries for it on every node and on its
// same-node peers (the kernel's neighbour table is small and shared by all
// namespaces; entries resolved on demand would be lost under load).
func (l *Lab) plumbPod(ctx context.Context, p *Pod, peers []*Pod) error {
	ns, err := createNetNS(ctx, p.NetNS)
	if err != nil {
		return err
	}
	p.ns = ns
	node := p.Node
	hostSide := fmt.Sprintf("vp%d", p.serial)
	if err := runIP(ctx, node.NetNS, "link", "add", hostSide, "type", "veth", "peer", "name", podIface,
		"address", p.mac.String(), "netns", p.NetNS); err != nil {
		return err
	}
	cmds := []string{
		"link set " + hostSide + " master " + bridgeName,
		"link set " + hostSide + " up",
	}
	for _, ip := range p.addrs() {
		cmds = append(cmds,
			fmt.Sprintf("route replace %s dev %s src %s", hostPrefix(ip), bridgeName, node.sameFamily(ip)),
			neighCmd(ip, p.mac, bridgeName))
	}
	if err := ipBatch(ctx, node.NetNS, cmds); err != nil {
		return err
	}
	cmds = []string{"link set lo up"}
	for _, ip := range p.addrs() {
		cmds = append(cmds, fmt.Sprintf("addr add %s dev %s nodad", hostPrefix(ip), podIface))
	}
	cmds = append(cmds, "link set "+podIface+" up")
	for _, ip := range p.addrs() {
		gw := node.sameFamily(ip)
		cmds = append(cmds,
			neighCmd(gw, bridgeMAC(node.index), podIface),
			fmt.Sprintf("route add default via %s dev %s onlink", gw, podIface))
	}
	for _, o := range peers {
		cmds = append(cmds, peerCmds(o)...)
	}
	if err := ipBatch(ctx, p.NetNS, cmds); err != nil {
		return err
	}
	for _, o := range peers {
		if err := ipBatch(ctx, o.NetNS, peerCmds(p)); err != nil {
			return fmt.Errorf("tell peer %s about the new pod: %w", o.ID(), err)
		}
	}
	for _, other := range l.Nodes {
		if other == node {
			continue
		}
		var routes []string
		for _, ip := range p.addrs() {
			routes = append(routes, fmt.Sprintf("route replace %s via %s dev %s onlink", hostPrefix(ip), node.sameFamily(ip), fabricLink))
		}
		if err := ipBatch(ctx, other.NetNS, routes); err != nil {
			return fmt.Errorf("route to the new pod from node %s: %w", other.Name, err)
		}
	}
	return nil
}

// peerCmds let a pod reach its same-node peer o directly over the bridge.
func peerCmds(o *Pod) []string {
	var cmds []string
	for _, ip := range o.addrs() {
		cmds = append(cmds,
			fmt.Sprintf("route replace %s dev %s", hostPrefix(ip), podIface),
			neighCmd(ip, o.mac, podIface))
	}
	return cmds
}

// unplumbPod removes what plumbPod wrote about p elsewhere. Failures do not
// matter: a pod re-using the addresses replaces the entries.
func (l *Lab) unplumbPod(ctx context.Context, p *Pod, peers []*Pod) {
	for _, n := range l.Nodes {
		var cmds []string
		for _, ip := range p.addrs() {
			cmds = append(cmds, "route del "+hostPrefix(ip).String())
			if n == p.Node {
				cmds = append(cmds, "neigh del "+ip.String()+" dev "+bridgeName)
			}
		}
		_ = ipBatchForce(ctx, n.NetNS, cmds)
	}
	for _, o := range peers {
		var cmds []string
		for _, ip := range p.addrs() {
			cmds = append(cmds, "route del "+hostPrefix(ip).String(), "neigh del "+ip.String()+" dev "+podIface)
		}
		_ = ipBatchForce(ctx, o.NetNS, cmds)
	}
}

// servedPorts are ServePorts on TCP and UDP plus the container's other ports.
func servedPorts(container []corev1.ContainerPort) []servedPort {
	var out []servedPort
	add := func(sp servedPort) {
		if !slices.Contains(out, sp) {
			out = append(out, sp)
		}
	}
	for _, port := range ServePorts {
		add(servedPort{corev1.ProtocolTCP, port})
		add(servedPort{corev1.ProtocolUDP, port})
	}
	for _, c := range container {
		if c.Protocol == corev1.ProtocolTCP || c.Protocol == corev1.ProtocolUDP || c.Protocol == "" {
			proto := c.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			add(servedPort{proto, int(c.ContainerPort)})
		}
	}
	return out
}

type servedPort struct {
	protocol corev1.Protocol
	port     int
}

// serve starts TCP and UDP servers answering identity; their sockets live in
// ns. It returns what closes them.
func serve(ns *netNS, ports []servedPort, identity string) ([]io.Closer, error) {
	var closers []io.Closer
	var listeners []net.Listener
	var conns []net.PacketConn
	err := ns.Do(func() error {
		for _, sp := range ports {
			addr := ":" + strconv.Itoa(sp.port)
			if sp.protocol == corev1.ProtocolUDP {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					return fmt.Errorf("listen on UDP %d: %w", sp.port, err)
				}
				conns = append(conns, pc)
				continue
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on TCP %d: %w", sp.port, err)
			}
			listeners = append(listeners, ln)
		}
		return nil
	})
	answer := []byte(identity)
	for _, ln := range listeners {
		closers = append(closers, ln)
		go serveTCP(ln, answer)
	}
	for _, pc := range conns {
		closers = append(closers, pc)
		go serveUDP(pc, answer)
	}
	return closers, err
}

func serveTCP(ln net.Listener, identity []byte) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		go func() {
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write(identity)
		}()
	}
}

func serveUDP(pc net.PacketConn, identity []byte) {
	buf := make([]byte, 1500)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_, _ = pc.WriteTo(identity, from)
	}
}

func (l *Lab) writePodObject(ctx context.Context, p *Pod, labels map[string]string) error {
	if _, err := l.createPodObject(ctx, p, labels); err != nil {
		return err
	}
	return l.writePodStatus(ctx, p)
}

// writePodStatus writes the pod's Running status with its addresses.
func (l *Lab) writePodStatus(ctx context.Context, p *Pod) error {
	obj, err := l.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Pod object: %w", err)
	}
	obj.Status = RunningStatus(p.Node, p.IPv4, p.IPv6)
	if _, err := l.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write Pod status: %w", err)
	}
	return nil
}

// createPodObject creates the scheduled Pod object, without status.
func (l *Lab) createPodObject(ctx context.Context, p *Pod, labels map[string]string) (*corev1.Pod, error) {
	zero := int64(0)
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: maps.Clone(labels)},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node.Name,
			HostNetwork:                   p.HostNetwork,
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name:  "serve",
				Image: "registry.k8s.io/pause:3.10",
				Ports: slices.Clone(p.Ports),
			}},
		},
	}
	created, err := l.client.CoreV1().Pods(p.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create Pod object: %w", err)
	}
	return created, nil
}

// WriteAPIOnlyPod writes a Pod object and then its status as given, with no
// network namespace behind it: a finished pod whose addresses were reused,
// or the thousands of pods of a scale benchmark. DeleteAPIOnlyPod removes it.
func (l *Lab) WriteAPIOnlyPod(ctx context.Context, obj *corev1.Pod) error {
	obj = obj.DeepCopy()
	status := obj.Status
	obj.Status = corev1.PodStatus{}
	obj.ResourceVersion = ""
	created, err := l.client.CoreV1().Pods(obj.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Pod object %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	created.Status = status
	if _, err := l.client.CoreV1().Pods(obj.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write Pod status %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

// DeleteAPIOnlyPod deletes a Pod object WriteAPIOnlyPod wrote.
func (l *Lab) DeleteAPIOnlyPod(ctx context.Context, namespace, name string) error {
	zero := int64(0)
	err := l.client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Pod object %s/%s: %w", namespace, name, err)
	}
	return nil
}

// RunningStatus is what a kubelet reports for a started pod on node with
// addresses v4 and v6 (either may be invalid: left out).
func RunningStatus(node *Node, v4, v6 netip.Addr) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    node.IPs[0].String(),
		HostIPs:   []corev1.HostIP{{IP: node.IPs[0].String()}, {IP: node.IPs[1].String()}},
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	for _, ip := range []netip.Addr{v4, v6} {
		if ip.IsValid() {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip.String()})
		}
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
	return st
}

// DeletePod deletes the Pod object, then the pod's servers, namespace and
// the neighbour entries others held for it. Its addresses become free for
// PodSpec.IPv4/IPv6.
//
// A pod added with CNI first has weft-cni's DEL run, as a runtime does when
// it stops the pod: weft then treats its addresses as released.
func (l *Lab) DeletePod(ctx context.Context, p *Pod) error {
	var errs []error
	if p.cni != nil && !p.HostNetwork {
		if r := l.RunCNI(ctx, "DEL", p, *p.cni); r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	zero := int64(0)
	err := l.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Pod object %s: %w", p.ID(), err))
	}
	l.mu.Lock()
	if l.pods[p.ID()] == p {
		delete(l.pods, p.ID())
	}
	peers := l.podsOnLocked(p.Node)
	l.mu.Unlock()
	if !p.HostNetwork {
		if err := p.teardown(); err != nil {
			errs = append(errs, err)
		}
		l.unplumbPod(ctx, p, peers)
	}
	return errors.Join(errs...)
}

func (p *Pod) teardown() error {
	if p.HostNetwork {
		return nil // the node's namespace and servers are the node's
	}
	for _, c := range p.closers {
		c.Close()
	}
	p.closers = nil
	if p.ns == nil {
		return nil
	}
	err := p.ns.delete()
	p.ns = nil
	return err
}

// Pods returns the lab's pods ordered by namespace and name.
func (l *Lab) Pods() []*Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Pod, 0, len(l.pods))
	for _, p := range l.pods {
		out = append(out, p)
	}
	sortPods(out)
	return out
}

// Pod returns the pod with ID "namespace/name", or nil.
func (l *Lab) Pod(id string) *Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pods[id]
}
