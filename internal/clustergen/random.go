package clustergen

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/policy"
)

// RandomConfig sizes a random cluster. Zero fields take small defaults.
type RandomConfig struct {
	Namespaces int // default 3
	Pods       int // default 12
	Policies   int // default 4
	Nodes      int // default 2; nodes are "node-1" ... "node-N"
	// ClusterPolicies is the number of random ClusterNetworkPolicies
	// (default 0); with any, the nodes get Node objects with labels.
	ClusterPolicies int
}

func (c *RandomConfig) defaults() {
	if c.Namespaces == 0 {
		c.Namespaces = 3
	}
	if c.Pods == 0 {
		c.Pods = 12
	}
	if c.Policies == 0 {
		c.Policies = 4
	}
	if c.Nodes == 0 {
		c.Nodes = 2
	}
}

// Cluster is a generated cluster: the API objects and their snapshot.
type Cluster struct {
	Namespaces []*corev1.Namespace
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy
	// ClusterPolicies are ClusterNetworkPolicies (RandomConfig.ClusterPolicies).
	ClusterPolicies []*npav1alpha2.ClusterNetworkPolicy
	Snapshot        *policy.Snapshot
	// NodeIPs maps node name to the node's addresses (the host-network pods' IPs).
	NodeIPs map[string][]netip.Addr
	// External are addresses outside every pod, for flows to and from the world.
	External []netip.Addr

	serial int // names and addresses of what Mutate creates
}

// NodeName returns the name of node i (0-based).
func NodeName(i int) string { return fmt.Sprintf("node-%d", i+1) }

var (
	labelKeys   = []string{"app", "tier", "env"}
	labelValues = []string{"a", "b", "c"}
	portNames   = []string{"web", "metrics", "dns"}
	portNumbers = []int32{80, 81, 8080, 53}
)

// Random makes a random cluster with random policies.
func Random(rng *rand.Rand, cfg RandomConfig) *Cluster {
	cfg.defaults()
	c := &Cluster{NodeIPs: map[string][]netip.Addr{}}
	for n := 0; n < cfg.Nodes; n++ {
		c.NodeIPs[NodeName(n)] = []netip.Addr{
			netip.AddrFrom4([4]byte{10, 47, 0, byte(n + 1)}),
			netip.MustParseAddr(fmt.Sprintf("fd00:47::%d", n+1)),
		}
	}
	for i := 0; i < cfg.Namespaces; i++ {
		c.Namespaces = append(c.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("ns%d", i), Labels: randomLabels(rng),
		}})
	}
	for i := 0; i < cfg.Pods; i++ {
		node := NodeName(rng.IntN(cfg.Nodes))
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("ns%d", rng.IntN(cfg.Namespaces)),
				Name:      fmt.Sprintf("pod%d", i),
				Labels:    randomLabels(rng),
			},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if rng.IntN(2) == 0 { // the kubelet reports the node's addresses, mostly
			for _, ip := range c.NodeIPs[node] {
				p.Status.HostIPs = append(p.Status.HostIPs, corev1.HostIP{IP: ip.String()})
			}
		}
		var ports []corev1.ContainerPort
		for _, name := range portNames {
			if rng.IntN(2) == 0 {
				proto := corev1.ProtocolTCP
				if rng.IntN(3) == 0 {
					proto = corev1.ProtocolUDP
				}
				ports = append(ports, corev1.ContainerPort{Name: name, Protocol: proto, ContainerPort: pick(rng, portNumbers)})
			}
		}
		p.Spec.Containers = []corev1.Container{{Name: "main", Ports: ports}}
		switch r := rng.IntN(20); {
		case r < 2: // host network: the node's addresses
			p.Spec.HostNetwork = true
			for _, ip := range c.NodeIPs[node] {
				p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
			}
		case r < 4: // finished: its old address, maybe reused by a live pod, is not its own any more
			p.Status.Phase = corev1.PodSucceeded
			p.Status.PodIPs = []corev1.PodIP{{IP: podIPv4(rng.IntN(cfg.Pods)).String()}}
		default:
			fams := rng.IntN(4) // 0,1: v4 only; 2: dual; 3: v6 only
			if fams <= 2 {
				p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: podIPv4(i).String()})
			}
			if fams >= 2 {
				p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: podIPv6(i).String()})
			}
		}
		c.Pods = append(c.Pods, p)
	}
	for i := 0; i < 4; i++ {
		c.External = append(c.External,
			netip.AddrFrom4([4]byte{10, 33, byte(rng.IntN(4)), byte(1 + rng.IntN(250))}),
			netip.MustParseAddr(fmt.Sprintf("fd00:33::%x", 1+rng.IntN(250))))
	}
	for i := 0; i < cfg.Policies; i++ {
		c.Policies = append(c.Policies, randomPolicy(rng, fmt.Sprintf("ns%d", rng.IntN(cfg.Namespaces)), fmt.Sprintf("pol%d", i)))
	}
	c.Snapshot = policy.NewSnapshot(c.Namespaces, c.Pods, c.Policies)
	if cfg.ClusterPolicies > 0 {
		c.addClusterPolicies(rng, cfg.ClusterPolicies)
	}
	return c
}

func podIPv4(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 32, byte(i >> 8), byte(i)}) }
func podIPv6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:32::%x", i+1))
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randomLabels(rng *rand.Rand) map[string]string {
	l := map[string]string{}
	for _, k := range labelKeys {
		if rng.IntN(3) > 0 {
			l[k] = pick(rng, labelValues)
		}
	}
	return l
}

func randomSelector(rng *rand.Rand) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch rng.IntN(4) {
	case 0: // empty: everything
	case 1:
		s.MatchLabels = map[string]string{pick(rng, labelKeys): pick(rng, labelValues)}
	default:
		ops := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}
		for n := 1 + rng.IntN(2); n > 0; n-- {
			r := metav1.LabelSelectorRequirement{Key: pick(rng, labelKeys), Operator: pick(rng, ops)}
			if r.Operator == metav1.LabelSelectorOpIn || r.Operator == metav1.LabelSelectorOpNotIn {
				r.Values = []string{pick(rng, labelValues)}
				if rng.IntN(2) == 0 {
					r.Values = append(r.Values, pick(rng, labelValues))
				}
			}
			s.MatchExpressions = append(s.MatchExpressions, r)
		}
		if rng.IntN(3) == 0 {
			s.MatchLabels = map[string]string{pick(rng, labelKeys): pick(rng, labelValues)}
		}
	}
	return s
}

func randomPolicy(rng *rand.Rand, ns, name string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	np.Spec.PodSelector = *randomSelector(rng)
	switch rng.IntN(4) {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	switch rng.IntN(4) {
	case 0: // absent
	case 1:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
	default:
		for n := 1 + rng.IntN(3); n > 0; n-- {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randomPeers(rng), Ports: randomPorts(rng)})
		}
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
	default:
		for n := 1 + rng.IntN(3); n > 0; n-- {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randomPeers(rng), Ports: randomPorts(rng)})
		}
	}
	return np
}

func randomPeers(rng *rand.Rand) []networkingv1.NetworkPolicyPeer {
	switch rng.IntN(5) {
	case 0:
		return nil
	case 1:
		return []networkingv1.NetworkPolicyPeer{}
	}
	var out []networkingv1.NetworkPolicyPeer
	for n := 1 + rng.IntN(3); n > 0; n-- {
		var p networkingv1.NetworkPolicyPeer
		switch rng.IntN(4) {
		case 0:
			p.PodSelector = randomSelector(rng)
		case 1:
			p.NamespaceSelector = randomSelector(rng)
		case 2:
			p.PodSelector, p.NamespaceSelector = randomSelector(rng), randomSelector(rng)
		case 3:
			p.IPBlock = randomIPBlock(rng)
		}
		out = append(out, p)
	}
	return out
}

func randomIPBlock(rng *rand.Rand) *networkingv1.IPBlock {
	if rng.IntN(40) == 0 {
		return &networkingv1.IPBlock{CIDR: "10.32.0.0/33"} // broken: must allow nothing
	}
	if rng.IntN(2) == 0 {
		bits := 14 + rng.IntN(19)
		base := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(32 + rng.IntN(16)), byte(rng.IntN(2)), byte(rng.IntN(256))}), bits).Masked()
		if rng.IntN(3) == 0 {
			base = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 32, 0, 0}), 8+rng.IntN(9)).Masked()
		}
		return ipBlockWithExcepts(rng, base, 32)
	}
	bits := 32 + rng.IntN(97)
	base := netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00:%x::%x", 32+rng.IntN(2), rng.IntN(64))), bits).Masked()
	if rng.IntN(3) == 0 {
		base = netip.MustParsePrefix("fd00::/16")
	}
	return ipBlockWithExcepts(rng, base, 128)
}

func ipBlockWithExcepts(rng *rand.Rand, base netip.Prefix, maxBits int) *networkingv1.IPBlock {
	b := &networkingv1.IPBlock{CIDR: base.String()}
	for n := rng.IntN(3); n > 0 && base.Bits() < maxBits; n-- {
		bits := base.Bits() + 1 + rng.IntN(maxBits-base.Bits())
		a := base.Addr().AsSlice()
		for i := base.Bits(); i < bits; i++ {
			if rng.IntN(2) == 0 {
				a[i/8] |= 0x80 >> (i % 8)
			}
		}
		addr, _ := netip.AddrFromSlice(a)
		b.Except = append(b.Except, netip.PrefixFrom(addr, bits).Masked().String())
	}
	return b
}

func randomPorts(rng *rand.Rand) []networkingv1.NetworkPolicyPort {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []networkingv1.NetworkPolicyPort{}
	}
	var out []networkingv1.NetworkPolicyPort
	for n := 1 + rng.IntN(2); n > 0; n-- {
		var p networkingv1.NetworkPolicyPort
		switch rng.IntN(4) {
		case 1:
			proto := corev1.ProtocolTCP
			p.Protocol = &proto
		case 2:
			proto := corev1.ProtocolUDP
			p.Protocol = &proto
		case 3:
			proto := corev1.ProtocolSCTP
			p.Protocol = &proto
		}
		switch rng.IntN(5) {
		case 0: // every port of the protocol
		case 1:
			v := intstr.FromString(pick(rng, portNames))
			p.Port = &v
		case 2:
			v := intstr.FromInt32(pick(rng, portNumbers))
			p.Port = &v
			end := v.IntVal + int32(rng.IntN(8000))
			p.EndPort = &end
		default:
			v := intstr.FromInt32(pick(rng, portNumbers))
			p.Port = &v
		}
		out = append(out, p)
	}
	return out
}

// RandomFlows picks n flows between the cluster's addresses (pods, nodes and
// external addresses) with protocols and ports the policies talk about.
func RandomFlows(rng *rand.Rand, c *Cluster, n int) []policy.Flow {
	var v4, v6 []netip.Addr
	add := func(ip netip.Addr) {
		if ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	for _, p := range c.Snapshot.Pods {
		for _, ip := range p.IPs {
			add(ip)
		}
	}
	for _, ip := range c.External {
		add(ip)
	}
	for _, node := range slices.Sorted(maps.Keys(c.NodeIPs)) {
		for _, ip := range c.NodeIPs[node] {
			add(ip)
		}
	}
	protos := []policy.Protocol{policy.TCP, policy.TCP, policy.UDP, policy.SCTP, policy.ICMP}
	ports := append([]int32{1, 443, 9000}, portNumbers...)
	flows := make([]policy.Flow, 0, n)
	for len(flows) < n {
		pool := v4
		if rng.IntN(2) == 0 && len(v6) > 0 || len(v4) == 0 {
			pool = v6
		}
		if len(pool) == 0 {
			break
		}
		f := policy.Flow{Src: pick(rng, pool), Dst: pick(rng, pool), Protocol: pick(rng, protos)}
		if f.Protocol == policy.ICMP && f.Dst.Is6() {
			f.Protocol = policy.ICMPv6
		}
		if f.Protocol.HasPorts() {
			f.Port = uint16(pick(rng, ports))
			if rng.IntN(4) == 0 {
				f.Port += uint16(rng.IntN(9000))
			}
		}
		flows = append(flows, f)
	}
	return flows
}

// AnnotateEnforcement gives each namespace of c's snapshot, at random, no
// enforcement annotation, "audit", "enforce" or a value weft cannot read
// (which enforces), for the differential tests of audit mode.
func AnnotateEnforcement(rng *rand.Rand, c *Cluster) {
	values := []string{"", "audit", "enforce", "audit-please"}
	names := make([]string, 0, len(c.Snapshot.Namespaces))
	for name := range c.Snapshot.Namespaces {
		names = append(names, name)
	}
	slices.Sort(names) // the same draws for the same seed
	for _, name := range names {
		if v := values[rng.IntN(len(values))]; v != "" {
			c.Snapshot.Namespaces[name].Annotations = map[string]string{policy.EnforcementAnnotation: v}
		}
	}
}
