package policy

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// NamespaceNameLabel is set by the API server on every namespace; weft sets it
// too on namespaces read from files, so selectors behave as in a cluster.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Snapshot is an immutable, normalised view of the cluster: every pod (remote
// pods are peers), every namespace and every policy. Build it with NewSnapshot
// and never change it afterwards; readers share it without locks.
type Snapshot struct {
	// Namespaces by name; includes namespaces only known from their pods.
	Namespaces map[string]*Namespace
	// Pods sorted by namespace/name.
	Pods []*Pod
	// Policies sorted by namespace/name.
	Policies []*Policy
	// Nodes by name, when known (the API's Node objects; files have none).
	Nodes map[string]*Node
	// ClusterPolicies are the ClusterNetworkPolicies, in evaluation order:
	// Admin before Baseline, by priority, then by name.
	ClusterPolicies []*ClusterPolicy
	// CNIGeneration counts what the CNI hook had reported when the snapshot
	// was taken (0 without the hook).
	CNIGeneration uint64

	podsByNamespace     map[string][]*Pod
	policiesByNamespace map[string][]*Policy
	podsByIP            map[netip.Addr]*Pod
	nodesByAddr         map[netip.Addr][]string // node address → nodes
	addrsByNode         map[string][]netip.Addr // node → its addresses
}

// NewSnapshot normalises the objects. Objects are not modified or retained.
func NewSnapshot(namespaces []*corev1.Namespace, pods []*corev1.Pod, policies []*networkingv1.NetworkPolicy) *Snapshot {
	nss := make([]*Namespace, 0, len(namespaces))
	for _, ns := range namespaces {
		nss = append(nss, NamespaceFromAPI(ns))
	}
	ps := make([]*Pod, 0, len(pods))
	for _, p := range pods {
		ps = append(ps, PodFromAPI(p))
	}
	pols := make([]*Policy, 0, len(policies))
	for _, np := range policies {
		pols = append(pols, PolicyFromAPI(np))
	}
	return BuildSnapshot(nss, ps, pols)
}

// BuildSnapshot assembles already normalised objects into a Snapshot. It takes
// ownership of the slices' elements.
func BuildSnapshot(namespaces []*Namespace, pods []*Pod, policies []*Policy) *Snapshot {
	s := &Snapshot{
		Namespaces:          make(map[string]*Namespace, len(namespaces)),
		Pods:                append([]*Pod(nil), pods...),
		Policies:            append([]*Policy(nil), policies...),
		podsByNamespace:     make(map[string][]*Pod),
		policiesByNamespace: make(map[string][]*Policy),
		podsByIP:            make(map[netip.Addr]*Pod, len(pods)),
		nodesByAddr:         make(map[netip.Addr][]string),
		addrsByNode:         make(map[string][]netip.Addr),
	}
	for _, ns := range namespaces {
		s.Namespaces[ns.Name] = ns
	}
	sort.Slice(s.Pods, func(i, j int) bool { return podLess(s.Pods[i], s.Pods[j]) })
	sort.Slice(s.Policies, func(i, j int) bool {
		a, b := s.Policies[i], s.Policies[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for _, p := range s.Pods {
		if _, ok := s.Namespaces[p.Namespace]; !ok {
			s.Namespaces[p.Namespace] = &Namespace{Name: p.Namespace, Labels: labels.Set{NamespaceNameLabel: p.Namespace}}
		}
		s.podsByNamespace[p.Namespace] = append(s.podsByNamespace[p.Namespace], p)
		if p.NodeName != "" {
			// A node's addresses are known from its pods: their host IPs,
			// and the IPs of host-network pods.
			s.addNodeAddrs(p.NodeName, p.HostIPs)
			if p.HostNetwork && !p.Finished {
				s.addNodeAddrs(p.NodeName, p.IPs)
			}
		}
		if !p.Selectable() {
			continue
		}
		for _, ip := range p.IPs {
			// Two live pods never hold one IP; if the API says so for a moment
			// (a reused address while the old pod terminates), the pod that is
			// not terminating wins, then the first by name, deterministically.
			if old, taken := s.podsByIP[ip]; !taken || (old.Terminating && !p.Terminating) {
				s.podsByIP[ip] = p
			}
		}
	}
	for _, pol := range s.Policies {
		s.policiesByNamespace[pol.Namespace] = append(s.policiesByNamespace[pol.Namespace], pol)
	}
	return s
}

func podLess(a, b *Pod) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// AddNodes records Node objects: their pod ranges, and their addresses as
// node addresses. Call it only while building the snapshot, before sharing it.
func (s *Snapshot) AddNodes(nodes ...*Node) {
	if s.Nodes == nil {
		s.Nodes = make(map[string]*Node, len(nodes))
	}
	for _, n := range nodes {
		s.Nodes[n.Name] = n
		s.addNodeAddrs(n.Name, n.Addrs)
	}
}

// PodCIDRs returns the pod ranges of node, as its Node object gives them
// (nil when the node or its ranges are unknown).
func (s *Snapshot) PodCIDRs(node string) []netip.Prefix {
	if n := s.Nodes[node]; n != nil {
		return n.PodCIDRs
	}
	return nil
}

// PodByIP returns the selectable pod holding addr, or nil.
func (s *Snapshot) PodByIP(addr netip.Addr) *Pod { return s.podsByIP[addr] }

func (s *Snapshot) addNodeAddrs(node string, addrs []netip.Addr) {
	for _, a := range addrs {
		if !slices.Contains(s.nodesByAddr[a], node) {
			s.nodesByAddr[a] = append(s.nodesByAddr[a], node)
			s.addrsByNode[node] = append(s.addrsByNode[node], a)
		}
	}
}

// IsNodeAddress reports whether addr is an address of node, as known from
// its Node object and the pods running there (status.hostIPs, and
// host-network pods' IPs).
func (s *Snapshot) IsNodeAddress(addr netip.Addr, node string) bool {
	return node != "" && slices.Contains(s.nodesByAddr[addr], node)
}

// IsAnyNodeAddress reports whether addr is an address of some node.
func (s *Snapshot) IsAnyNodeAddress(addr netip.Addr) bool { return len(s.nodesByAddr[addr]) > 0 }

// AddressesOf returns the known addresses of node (a copy).
func (s *Snapshot) AddressesOf(node string) []netip.Addr {
	return slices.Clone(s.addrsByNode[node])
}

// Pod returns the pod namespace/name, or nil.
func (s *Snapshot) Pod(namespace, name string) *Pod {
	pods := s.podsByNamespace[namespace]
	i := sort.Search(len(pods), func(i int) bool { return pods[i].Name >= name })
	if i < len(pods) && pods[i].Name == name {
		return pods[i]
	}
	return nil
}

// PodsIn returns the pods of a namespace, sorted by name.
func (s *Snapshot) PodsIn(namespace string) []*Pod { return s.podsByNamespace[namespace] }

// PoliciesIn returns the policies of a namespace, sorted by name.
func (s *Snapshot) PoliciesIn(namespace string) []*Policy { return s.policiesByNamespace[namespace] }

// NamespaceLabels returns the labels of a namespace (empty if unknown).
func (s *Snapshot) NamespaceLabels(name string) labels.Set {
	if ns, ok := s.Namespaces[name]; ok {
		return ns.Labels
	}
	return labels.Set{NamespaceNameLabel: name}
}

// Errors returns every problem found in the snapshot's policies.
func (s *Snapshot) Errors() []FieldError {
	var out []FieldError
	for _, p := range s.Policies {
		out = append(out, p.Errors...)
	}
	for _, p := range s.ClusterPolicies {
		out = append(out, p.Errors...)
	}
	return out
}

// AddClusterPolicies adds normalised ClusterNetworkPolicies and orders all
// of them for evaluation.
func (s *Snapshot) AddClusterPolicies(ps ...*ClusterPolicy) {
	s.ClusterPolicies = append(s.ClusterPolicies, ps...)
	slices.SortFunc(s.ClusterPolicies, func(a, b *ClusterPolicy) int {
		if a.Tier != b.Tier {
			return int(a.Tier) - int(b.Tier)
		}
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// ClusterPoliciesIn returns the cluster policies of tier in evaluation order.
func (s *Snapshot) ClusterPoliciesIn(tier Tier) []*ClusterPolicy {
	lo := slices.IndexFunc(s.ClusterPolicies, func(p *ClusterPolicy) bool { return p.Tier == tier })
	if lo < 0 {
		return nil
	}
	hi := lo
	for hi < len(s.ClusterPolicies) && s.ClusterPolicies[hi].Tier == tier {
		hi++
	}
	return s.ClusterPolicies[lo:hi]
}

// PriorityTies returns the pairs of cluster policies of one tier with the
// same priority. The API leaves their order to the implementation; weft
// orders them by name and warns, naming both.
func (s *Snapshot) PriorityTies() [][2]string {
	var out [][2]string
	for i := 1; i < len(s.ClusterPolicies); i++ {
		a, b := s.ClusterPolicies[i-1], s.ClusterPolicies[i]
		if a.Tier == b.Tier && a.Priority == b.Priority {
			out = append(out, [2]string{a.Name, b.Name})
		}
	}
	return out
}

// NodesWithAddress returns the nodes whose Node object has addr.
func (s *Snapshot) NodesWithAddress(addr netip.Addr) []*Node {
	var out []*Node
	for _, name := range s.nodesByAddr[addr] {
		if n := s.Nodes[name]; n != nil && slices.Contains(n.Addrs, addr) {
			out = append(out, n)
		}
	}
	return out
}

// IsLocal reports whether policy for the pod is enforced on node; node "" means
// every node (each pod is local), as in offline explanations.
func IsLocal(p *Pod, node string) bool {
	return p != nil && p.Selectable() && (node == "" || p.NodeName == node)
}
