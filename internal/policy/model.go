package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/weftnet/weft/internal/ipproto"
)

// Protocol is an IP protocol number.
type Protocol uint8

// The protocols NetworkPolicy ports can name, and ICMP for flows that have no port.
const (
	ICMP   Protocol = 1
	TCP    Protocol = 6
	UDP    Protocol = 17
	ICMPv6 Protocol = 58
	SCTP   Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	case ICMP:
		return "ICMP"
	case ICMPv6:
		return "ICMPv6"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// ParseProtocol reads TCP, UDP or SCTP (any case).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, nil
	case "UDP":
		return UDP, nil
	case "SCTP":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", s)
}

// HasPorts reports whether the protocol carries port numbers (ipproto's
// table, which the ir and the backends read too).
func (p Protocol) HasPorts() bool { return ipproto.HasPorts(uint8(p)) }

// Direction is the side of a connection a policy rule controls.
type Direction uint8

// Ingress is checked at the destination pod, Egress at the source pod.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Namespace is a Kubernetes namespace as policy sees it.
type Namespace struct {
	Name   string
	Labels labels.Set
	// Annotations are the namespace's annotations (weft reads its own,
	// such as EnforcementAnnotation).
	Annotations map[string]string
}

// LegacyIsolationAnnotation is the namespace annotation of the beta
// NetworkPolicy API (before networking.k8s.io/v1) that turned on default
// deny for ingress, as weave-npc read it:
// {"ingress":{"isolation":"DefaultDeny"}}. Kubernetes dropped it with v1.
const LegacyIsolationAnnotation = "net.beta.kubernetes.io/network-policy"

// ContainerPort is a named container port of a pod.
type ContainerPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Node is a Kubernetes node as policy sees it.
type Node struct {
	Name string
	// PodCIDRs are the node's pod address ranges (spec.podCIDRs).
	PodCIDRs []netip.Prefix
	// Addrs are the node's own addresses (status.addresses of IP types).
	Addrs []netip.Addr
	// Labels are the Node object's labels (ClusterNetworkPolicy nodes peers).
	Labels labels.Set
}

// Pod is a Kubernetes pod as policy sees it.
type Pod struct {
	Namespace   string
	Name        string
	Labels      labels.Set
	NodeName    string
	HostNetwork bool
	// Finished pods (phase Succeeded or Failed) hold no IP any more: their
	// addresses may already belong to a new pod, so they match nothing.
	Finished bool
	// Terminating pods (deletion requested) lose a shared address to a pod
	// that is not terminating.
	Terminating bool
	IPs         []netip.Addr
	// HostIPs are the addresses of the pod's node (status.hostIPs).
	HostIPs []netip.Addr
	Ports   []ContainerPort
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Selectable reports whether label selectors can match the pod: it holds a pod
// IP of its own (not the node's) and is not finished.
func (p *Pod) Selectable() bool {
	return !p.HostNetwork && !p.Finished && len(p.IPs) > 0
}

// IP returns the pod's address of the given family (4 or 6), if it has one.
func (p *Pod) IP(family int) (netip.Addr, bool) {
	for _, ip := range p.IPs {
		if (family == 4) == ip.Is4() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// ResolvePort returns the port numbers the named port has on this pod for the protocol.
func (p *Pod) ResolvePort(name string, proto Protocol) []uint16 {
	var out []uint16
	for _, cp := range p.Ports {
		if cp.Name == name && cp.Protocol == proto {
			out = append(out, cp.Port)
		}
	}
	return out
}

// PolicyRef names a policy.
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

// Policy is a normalised NetworkPolicy.
type Policy struct {
	PolicyRef
	// UID is the API object's, for Events about it ("" from files).
	UID string
	// PodSelector selects the pods of Namespace the policy applies to.
	PodSelector labels.Selector
	// Isolates says for which directions the selected pods become isolated
	// (policyTypes, with its defaulting applied).
	Isolates [2]bool
	// Rules per direction, in the order of the manifest.
	Rules [2][]Rule
	// Errors lists what weft could not understand; never empty on a broken policy.
	Errors []FieldError
}

// Selects reports whether the policy applies to the pod.
func (p *Policy) Selects(pod *Pod) bool {
	return pod.Namespace == p.Namespace && pod.Selectable() && p.PodSelector.Matches(pod.Labels)
}

// Rule is one ingress or egress rule. A connection matches it when its peer
// matches one of Peers (or AllPeers) and its protocol and port one of Ports
// (or AllPorts). A Broken rule matches nothing.
type Rule struct {
	AllPeers bool
	Peers    []Peer
	AllPorts bool
	Ports    []Port
	Broken   bool
}

// Peer is either a selector peer (pods chosen by namespace and pod selectors)
// or an IPBlock.
type Peer struct {
	// NamespaceSelector nil means the policy's own namespace.
	NamespaceSelector labels.Selector
	// PodSelector nil means every pod of the selected namespaces.
	PodSelector labels.Selector
	// IPBlock is set for ipBlock peers; then both selectors are nil.
	IPBlock *IPBlock
}

// IPBlock is a CIDR with exceptions.
type IPBlock struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// Contains reports whether addr is in the block and not in an exception.
func (b *IPBlock) Contains(addr netip.Addr) bool {
	if !b.CIDR.Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		if e.Contains(addr) {
			return false
		}
	}
	return true
}

// Port matches a protocol and either a port range or a named port.
// Port 0 with an empty Name matches every port of the protocol.
type Port struct {
	Protocol Protocol
	Port     uint16
	EndPort  uint16 // == Port for a single port
	Name     string // named port, resolved on the destination pod
}

// FieldError is a part of a policy weft cannot understand.
type FieldError struct {
	Policy PolicyRef
	// Kind is "clusternetworkpolicy" for a cluster policy (Policy then has
	// no namespace); "" means a NetworkPolicy.
	Kind  string
	Field string
	Msg   string
}

func (e FieldError) Error() string {
	if e.Kind != "" {
		return fmt.Sprintf("%s %s: %s: %s", e.Kind, e.Policy.Name, e.Field, e.Msg)
	}
	return fmt.Sprintf("networkpolicy %s: %s: %s", e.Policy, e.Field, e.Msg)
}
