package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NamespaceFromAPI normalises a Namespace.
func NamespaceFromAPI(ns *corev1.Namespace) *Namespace { return namespaceFromAPI(ns, nil) }

// namespaceFromAPI is NamespaceFromAPI, with strings shared through in
// (nil: not shared).
func namespaceFromAPI(ns *corev1.Namespace, in *Interner) *Namespace {
	l := make(labels.Set, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		l[in.String(k)] = in.String(v)
	}
	name := in.String(ns.Name)
	l[NamespaceNameLabel] = name
	return &Namespace{Name: name, Labels: l, Annotations: copyMap(ns.Annotations)}
}

// NodeFromAPI normalises a Node: its pod ranges (spec.podCIDRs, or
// spec.podCIDR) and its IP addresses. Unparsable values are skipped.
func NodeFromAPI(n *corev1.Node) *Node {
	out := &Node{Name: n.Name, Labels: labels.Set(copyMap(n.Labels))}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && !slices.Contains(out.PodCIDRs, p.Masked()) {
			out.PodCIDRs = append(out.PodCIDRs, p.Masked())
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && !slices.Contains(out.Addrs, ip.Unmap()) {
			out.Addrs = append(out.Addrs, ip.Unmap())
		}
	}
	return out
}

// PodFromAPI normalises a Pod. Addresses come from status.podIPs (or status.podIP).
func PodFromAPI(p *corev1.Pod) *Pod { return podFromAPI(p, nil) }

// podFromAPI is PodFromAPI, with the label set and strings shared through
// in (nil: not shared).
func podFromAPI(p *corev1.Pod, in *Interner) *Pod {
	var l labels.Set
	if in != nil {
		l = in.Labels(p.Labels)
	} else {
		l = labels.Set(copyMap(p.Labels))
	}
	out := &Pod{
		Namespace:   in.String(p.Namespace),
		Name:        p.Name,
		Labels:      l,
		NodeName:    in.String(p.Spec.NodeName),
		HostNetwork: p.Spec.HostNetwork,
		Finished:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		Terminating: p.DeletionTimestamp != nil,
	}
	seen := map[netip.Addr]bool{}
	addIP := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil {
			ip = ip.Unmap()
			if !seen[ip] {
				seen[ip] = true
				out.IPs = append(out.IPs, ip)
			}
		}
	}
	for _, ip := range p.Status.PodIPs {
		addIP(ip.IP)
	}
	if p.Status.PodIP != "" {
		addIP(p.Status.PodIP)
	}
	hostSeen := map[netip.Addr]bool{}
	addHostIP := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !hostSeen[ip.Unmap()] {
			hostSeen[ip.Unmap()] = true
			out.HostIPs = append(out.HostIPs, ip.Unmap())
		}
	}
	for _, ip := range p.Status.HostIPs {
		addHostIP(ip.IP)
	}
	if p.Status.HostIP != "" {
		addHostIP(p.Status.HostIP)
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" || cp.ContainerPort <= 0 || cp.ContainerPort > 65535 {
				continue
			}
			proto := TCP
			if cp.Protocol != "" {
				var err error
				if proto, err = ParseProtocol(string(cp.Protocol)); err != nil {
					continue
				}
			}
			out.Ports = append(out.Ports, ContainerPort{Name: in.String(cp.Name), Protocol: proto, Port: uint16(cp.ContainerPort)})
		}
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PolicyFromAPI normalises a NetworkPolicy. It never fails: what it cannot
// understand is recorded in Errors and closed (see the package doc).
func PolicyFromAPI(np *networkingv1.NetworkPolicy) *Policy {
	p := &Policy{PolicyRef: PolicyRef{Namespace: np.Namespace, Name: np.Name}, UID: string(np.UID)}
	fail := func(field, format string, args ...any) {
		p.Errors = append(p.Errors, FieldError{Policy: p.PolicyRef, Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		// Unknown which pods it means: isolate every pod of the namespace.
		fail("spec.podSelector", "%v; the policy isolates every pod of namespace %s and allows nothing", err, np.Namespace)
		p.PodSelector = labels.Everything()
		p.Isolates = [2]bool{true, true}
		return p
	}
	p.PodSelector = sel

	if len(np.Spec.PolicyTypes) == 0 {
		p.Isolates[Ingress] = true
		p.Isolates[Egress] = len(np.Spec.Egress) > 0
	}
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			p.Isolates[Ingress] = true
		case networkingv1.PolicyTypeEgress:
			p.Isolates[Egress] = true
		default:
			fail(fmt.Sprintf("spec.policyTypes[%d]", i), "unknown policy type %q (want Ingress or Egress); the policy isolates both directions", t)
			p.Isolates = [2]bool{true, true}
		}
	}
	if p.Isolates[Ingress] {
		for i, r := range np.Spec.Ingress {
			p.Rules[Ingress] = append(p.Rules[Ingress], p.normalizeRule(fmt.Sprintf("spec.ingress[%d]", i), "from", r.From, r.Ports, fail))
		}
	}
	if p.Isolates[Egress] {
		for i, r := range np.Spec.Egress {
			p.Rules[Egress] = append(p.Rules[Egress], p.normalizeRule(fmt.Sprintf("spec.egress[%d]", i), "to", r.To, r.Ports, fail))
		}
	}
	return p
}

func (p *Policy) normalizeRule(path, peersField string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, fail func(string, string, ...any)) Rule {
	r := Rule{AllPeers: len(peers) == 0, AllPorts: len(ports) == 0}
	for i := range peers {
		peer, err := normalizePeer(&peers[i])
		if err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			fail(fmt.Sprintf("%s.%s[%d]%s", path, peersField, i, field), "%s; this rule allows nothing", msg)
			r.Broken = true
			continue
		}
		r.Peers = append(r.Peers, peer)
	}
	for i := range ports {
		port, err := normalizePort(&ports[i])
		if err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			fail(fmt.Sprintf("%s.ports[%d]%s", path, i, field), "%s; this rule allows nothing", msg)
			r.Broken = true
			continue
		}
		r.Ports = append(r.Ports, port)
	}
	if r.Broken {
		r.Peers, r.Ports = nil, nil
		r.AllPeers, r.AllPorts = false, false
	}
	return r
}

// fieldErr is an error whose text starts with a field suffix and ": ".
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func normalizePeer(in *networkingv1.NetworkPolicyPeer) (Peer, error) {
	if in.IPBlock != nil {
		if in.PodSelector != nil || in.NamespaceSelector != nil {
			return Peer{}, fieldErr("", "ipBlock cannot be combined with podSelector or namespaceSelector")
		}
		b, err := normalizeIPBlock(in.IPBlock)
		if err != nil {
			return Peer{}, err
		}
		return Peer{IPBlock: b}, nil
	}
	if in.PodSelector == nil && in.NamespaceSelector == nil {
		return Peer{}, fieldErr("", "peer has none of podSelector, namespaceSelector, ipBlock")
	}
	var out Peer
	if in.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(in.NamespaceSelector)
		if err != nil {
			return Peer{}, fieldErr(".namespaceSelector", "%v", err)
		}
		out.NamespaceSelector = sel
	}
	if in.PodSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(in.PodSelector)
		if err != nil {
			return Peer{}, fieldErr(".podSelector", "%v", err)
		}
		out.PodSelector = sel
	}
	return out, nil
}

func normalizeIPBlock(in *networkingv1.IPBlock) (*IPBlock, error) {
	cidr, err := netip.ParsePrefix(strings.TrimSpace(in.CIDR))
	if err != nil {
		return nil, fieldErr(".ipBlock.cidr", "invalid CIDR %q", in.CIDR)
	}
	b := &IPBlock{CIDR: cidr.Masked()}
	for i, e := range in.Except {
		ex, err := netip.ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			return nil, fieldErr(fmt.Sprintf(".ipBlock.except[%d]", i), "invalid CIDR %q", e)
		}
		ex = ex.Masked()
		if ex.Addr().Is4() != b.CIDR.Addr().Is4() || ex.Bits() < b.CIDR.Bits() || !b.CIDR.Contains(ex.Addr()) {
			return nil, fieldErr(fmt.Sprintf(".ipBlock.except[%d]", i), "%s is not inside cidr %s", e, in.CIDR)
		}
		b.Except = append(b.Except, ex)
	}
	return b, nil
}

// IANA service names: 1-15 characters, lower-case letters, digits and '-',
// at least one letter, no '-' at either end and no "--".
var portNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)

func validPortName(s string) bool {
	return portNameRE.MatchString(s) && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(s, "--")
}

func normalizePort(in *networkingv1.NetworkPolicyPort) (Port, error) {
	out := Port{Protocol: TCP}
	if in.Protocol != nil {
		proto, err := ParseProtocol(string(*in.Protocol))
		if err != nil {
			return Port{}, fieldErr(".protocol", "%v", err)
		}
		out.Protocol = proto
	}
	if in.Port == nil {
		if in.EndPort != nil {
			return Port{}, fieldErr(".endPort", "endPort needs port")
		}
		return out, nil
	}
	switch in.Port.Type {
	case intstr.Int:
		n := in.Port.IntVal
		if n < 1 || n > 65535 {
			return Port{}, fieldErr(".port", "port %d out of range 1-65535", n)
		}
		out.Port, out.EndPort = uint16(n), uint16(n)
		if in.EndPort != nil {
			e := *in.EndPort
			if e < n || e > 65535 {
				return Port{}, fieldErr(".endPort", "endPort %d must be between port %d and 65535", e, n)
			}
			out.EndPort = uint16(e)
		}
	case intstr.String:
		if in.EndPort != nil {
			return Port{}, fieldErr(".endPort", "endPort cannot be used with named port %q", in.Port.StrVal)
		}
		if !validPortName(in.Port.StrVal) {
			return Port{}, fieldErr(".port", "invalid port name %q (want an IANA service name: 1-15 lower-case letters, digits, '-')", in.Port.StrVal)
		}
		out.Name = in.Port.StrVal
	default:
		return Port{}, fieldErr(".port", "unknown port type")
	}
	return out, nil
}
