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
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// ServePorts are the ports every lab pod serves on TCP (replies with its
// identity "namespace/name", then closes) and on UDP (answers each datagram
// with its identity), on IPv4 and IPv6. Its container ports are named
// serve-<port>-tcp and serve-<port>-udp, as in Kubernetes' e2e tests.
var ServePorts = []int{80, 81}

// PortName is the container port name the lab gives port/protocol.
func PortName(port int, protocol corev1.Protocol) string {
	return fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(protocol)))
}

// PodSpec describes a pod to add.
type PodSpec struct {
	Namespace string
	Name      string
	// Node defaults to the lab's first node.
	Node   *Node
	Labels map[string]string
	// IPv4 and IPv6, when valid, are used instead of the node's next free
	// addresses: to re-create a pod with a deleted pod's addresses.
	IPv4, IPv6 netip.Addr
}

// Pod is a lab pod: a network namespace with a veth into its node's bridge,
// servers on ServePorts, and a Running Pod object in the API.
type Pod struct {
	Namespace string
	Name      string
	Node      *Node
	// IPv4 and IPv6 are the pod's addresses (the Pod's status.podIPs).
	IPv4, IPv6 netip.Addr
	// NetNS is the network namespace's name.
	NetNS string

	serial  int
	ns      *netNS
	mac     net.HardwareAddr
	closers []io.Closer
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

	l.mu.Lock()
	if _, dup := l.pods[id]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("add pod %s: the lab already has it (DeletePod first)", id)
	}
	l.serial++
	p := &Pod{Namespace: spec.Namespace, Name: spec.Name, Node: node, serial: l.serial, mac: podMAC(l.serial)}
	p.NetNS = fmt.Sprintf("%sp%d", l.prefix, p.serial)
	p.IPv4, p.IPv6 = spec.IPv4, spec.IPv6
	if !p.IPv4.IsValid() || !p.IPv6.IsValid() {
		v4, v6 := node.hostAddrs(node.nextHost)
		node.nextHost++
		if !p.IPv4.IsValid() {
			p.IPv4 = v4
		}
		if !p.IPv6.IsValid() {
			p.IPv6 = v6
		}
	}
	var peers []*Pod
	for _, o := range l.pods {
		if o.Node == node {
			peers = append(peers, o)
		}
		if o.IPv4 == p.IPv4 || o.IPv6 == p.IPv6 {
			l.mu.Unlock()
			return nil, fmt.Errorf("add pod %s: address %s/%s is in use by pod %s", id, p.IPv4, p.IPv6, o.ID())
		}
	}
	if !node.PodCIDRs[0].Contains(p.IPv4) || !node.PodCIDRs[1].Contains(p.IPv6) {
		l.mu.Unlock()
		return nil, fmt.Errorf("add pod %s: addresses %s, %s are outside node %s's pod subnets %v", id, p.IPv4, p.IPv6, node.Name, node.PodCIDRs)
	}
	l.pods[id] = p
	l.mu.Unlock()

	if err := l.plumbPod(ctx, p, peers); err != nil {
		l.forgetPod(p)
		return nil, fmt.Errorf("add pod %s: %w", id, err)
	}
	if err := p.serve(); err != nil {
		l.forgetPod(p)
		return nil, fmt.Errorf("add pod %s: %w", id, err)
	}
	if err := l.writePodObject(ctx, p, spec.Labels); err != nil {
		l.forgetPod(p)
		return nil, fmt.Errorf("add pod %s: %w", id, err)
	}
	slog.Debug("lab: pod added", "pod", id, "node", node.Name, "ipv4", p.IPv4, "ipv6", p.IPv6)
	return p, nil
}

func (l *Lab) forgetPod(p *Pod) {
	l.mu.Lock()
	delete(l.pods, p.ID())
	l.mu.Unlock()
	p.teardown()
}

// plumbPod makes the pod's namespace, its veth into the node's bridge, and
// permanent neighbour entries between the pod, its node and its peers on the
// same bridge (the kernel's neighbour table is small and shared by all
// namespaces; resolved entries would be lost under load).
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
	err = ipBatch(ctx, node.NetNS, []string{
		"link set " + hostSide + " master " + bridgeName,
		"link set " + hostSide + " up",
		neighCmd(p.IPv4, p.mac, bridgeName),
		neighCmd(p.IPv6, p.mac, bridgeName),
	})
	if err != nil {
		return err
	}
	cmds := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/%d dev %s", p.IPv4, node.PodCIDRs[0].Bits(), podIface),
		fmt.Sprintf("addr add %s/%d dev %s nodad", p.IPv6, node.PodCIDRs[1].Bits(), podIface),
		"link set " + podIface + " up",
		fmt.Sprintf("route add default via %s dev %s", node.Gateways[0], podIface),
		fmt.Sprintf("route add default via %s dev %s", node.Gateways[1], podIface),
		neighCmd(node.Gateways[0], bridgeMAC(node.index), podIface),
		neighCmd(node.Gateways[1], bridgeMAC(node.index), podIface),
	}
	for _, o := range peers {
		cmds = append(cmds, neighCmd(o.IPv4, o.mac, podIface), neighCmd(o.IPv6, o.mac, podIface))
	}
	if err := ipBatch(ctx, p.NetNS, cmds); err != nil {
		return err
	}
	for _, o := range peers {
		if err := ipBatch(ctx, o.NetNS, []string{neighCmd(p.IPv4, p.mac, podIface), neighCmd(p.IPv6, p.mac, podIface)}); err != nil {
			return fmt.Errorf("tell peer %s about the new pod: %w", o.ID(), err)
		}
	}
	return nil
}

func neighCmd(ip netip.Addr, mac net.HardwareAddr, dev string) string {
	return fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", ip, mac, dev)
}

// serve starts the pod's TCP and UDP servers; their sockets live in the
// pod's namespace.
func (p *Pod) serve() error {
	identity := []byte(p.ID())
	var listeners []net.Listener
	var conns []net.PacketConn
	err := p.ns.Do(func() error {
		for _, port := range ServePorts {
			ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
			if err != nil {
				return fmt.Errorf("listen on TCP %d: %w", port, err)
			}
			listeners = append(listeners, ln)
			pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
			if err != nil {
				return fmt.Errorf("listen on UDP %d: %w", port, err)
			}
			conns = append(conns, pc)
		}
		return nil
	})
	for _, ln := range listeners {
		p.closers = append(p.closers, ln)
		go serveTCP(ln, identity)
	}
	for _, pc := range conns {
		p.closers = append(p.closers, pc)
		go serveUDP(pc, identity)
	}
	return err
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
	var ports []corev1.ContainerPort
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
		for _, port := range ServePorts {
			ports = append(ports, corev1.ContainerPort{Name: PortName(port, proto), ContainerPort: int32(port), Protocol: proto})
		}
	}
	zero := int64(0)
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: maps.Clone(labels)},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node.Name,
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name:  "server",
				Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
				Ports: ports,
			}},
		},
	}
	created, err := l.client.CoreV1().Pods(p.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Pod object: %w", err)
	}
	created.Status = runningStatus(p.Node, p.IPv4, p.IPv6)
	if _, err := l.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write Pod status: %w", err)
	}
	return nil
}

// runningStatus is what a kubelet reports for a started pod.
func runningStatus(node *Node, v4, v6 netip.Addr) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    node.InternalIPs[0].String(),
		HostIPs:   []corev1.HostIP{{IP: node.InternalIPs[0].String()}, {IP: node.InternalIPs[1].String()}},
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
func (l *Lab) DeletePod(ctx context.Context, p *Pod) error {
	var errs []error
	zero := int64(0)
	err := l.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Pod object %s: %w", p.ID(), err))
	}
	l.mu.Lock()
	delete(l.pods, p.ID())
	var peers []*Pod
	for _, o := range l.pods {
		if o.Node == p.Node {
			peers = append(peers, o)
		}
	}
	l.mu.Unlock()
	if err := p.teardown(); err != nil {
		errs = append(errs, err)
	}
	forget := func(dev string) []string {
		return []string{"neigh del " + p.IPv4.String() + " dev " + dev, "neigh del " + p.IPv6.String() + " dev " + dev}
	}
	// Entries may already be gone with the veth; failures here are harmless
	// because a pod re-using the address replaces them.
	_ = ipBatch(ctx, p.Node.NetNS, forget(bridgeName))
	for _, o := range peers {
		_ = ipBatch(ctx, o.NetNS, forget(podIface))
	}
	return errors.Join(errs...)
}

func (p *Pod) teardown() error {
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
