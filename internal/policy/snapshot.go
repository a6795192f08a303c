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

	// id identifies the snapshot; parent and delta say, for one that With
	// derived, which snapshot it came from and what changed (see Delta).
	id, parent uint64
	delta      *Delta

	podsByNamespace     *cowMap[string, []*Pod] // sorted by name
	podsByNode          map[string][]*Pod       // sorted by namespace/name
	policiesByNamespace map[string][]*Policy
	podsByIP            *cowMap[netip.Addr, *Pod]
	// shadowed are the selectable pods that hold an address another pod
	// owns (podsByIP), sorted by namespace/name: one of them takes the
	// address when its owner goes.
	shadowed map[netip.Addr][]*Pod
	// implied are the namespaces known only from their pods.
	implied map[string]bool
	// podHostAddrs counts, per node, the pods that name each of its
	// addresses (their host IPs, host-network pods' IPs).
	podHostAddrs map[string]map[netip.Addr]int
	nodesByAddr  map[netip.Addr][]string // node address → nodes, sorted
	addrsByNode  map[string][]netip.Addr // node → its addresses, sorted
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
		id:                  nextSnapshotID.Add(1),
		Namespaces:          make(map[string]*Namespace, len(namespaces)),
		Pods:                append([]*Pod(nil), pods...),
		Policies:            append([]*Policy(nil), policies...),
		podsByNamespace:     newCowMap[string, []*Pod](stringShard),
		podsByIP:            newCowMap[netip.Addr, *Pod](addrShard),
		podsByNode:          make(map[string][]*Pod),
		policiesByNamespace: make(map[string][]*Policy),
		shadowed:            make(map[netip.Addr][]*Pod),
		implied:             make(map[string]bool),
		podHostAddrs:        make(map[string]map[netip.Addr]int),
	}
	for _, ns := range namespaces {
		s.Namespaces[ns.Name] = ns
	}
	sort.Slice(s.Pods, func(i, j int) bool { return podLess(s.Pods[i], s.Pods[j]) })
	sort.Slice(s.Policies, func(i, j int) bool { return policyLess(s.Policies[i], s.Policies[j]) })
	byNS := s.podsByNamespace.edit()
	byIP := s.podsByIP.edit()
	for _, p := range s.Pods {
		if _, ok := s.Namespaces[p.Namespace]; !ok {
			s.Namespaces[p.Namespace] = impliedNamespace(p.Namespace)
			s.implied[p.Namespace] = true
		}
		in, _ := byNS.get(p.Namespace)
		byNS.set(p.Namespace, append(in, p))
		if p.NodeName != "" {
			s.podsByNode[p.NodeName] = append(s.podsByNode[p.NodeName], p)
		}
		s.countHostAddrs(p, 1)
		if !p.Selectable() {
			continue
		}
		for _, ip := range p.IPs {
			// Two live pods never hold one IP; if the API says so for a moment
			// (a reused address while the old pod terminates), the pod that is
			// not terminating wins, then the first by name, deterministically.
			old, taken := byIP.get(ip)
			switch {
			case !taken:
				byIP.set(ip, p)
			case old.Terminating && !p.Terminating:
				byIP.set(ip, p)
				s.shadowed[ip] = append(s.shadowed[ip], old)
			default:
				s.shadowed[ip] = append(s.shadowed[ip], p)
			}
		}
	}
	for _, sh := range s.shadowed {
		slices.SortFunc(sh, comparePods)
	}
	s.podsByNamespace, s.podsByIP = byNS.done(), byIP.done()
	for _, pol := range s.Policies {
		s.policiesByNamespace[pol.Namespace] = append(s.policiesByNamespace[pol.Namespace], pol)
	}
	s.deriveNodeAddrs()
	return s
}

// impliedNamespace is a namespace known only from its pods.
func impliedNamespace(name string) *Namespace {
	return &Namespace{Name: name, Labels: labels.Set{NamespaceNameLabel: name}}
}

// countHostAddrs adds n to the count of each node address p names: its host
// IPs, and the IPs of a running host-network pod.
func (s *Snapshot) countHostAddrs(p *Pod, n int) {
	if p == nil || p.NodeName == "" {
		return
	}
	count := func(addrs []netip.Addr) {
		for _, a := range addrs {
			m := s.podHostAddrs[p.NodeName]
			if m == nil {
				m = map[netip.Addr]int{}
				s.podHostAddrs[p.NodeName] = m
			}
			if m[a] += n; m[a] <= 0 {
				delete(m, a)
			}
		}
		if len(s.podHostAddrs[p.NodeName]) == 0 {
			delete(s.podHostAddrs, p.NodeName)
		}
	}
	var addrs []netip.Addr
	for _, a := range p.HostIPs {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if p.HostNetwork && !p.Finished {
		for _, a := range p.IPs {
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	count(addrs)
}

// deriveNodeAddrs computes which addresses are whose node's: from the pods
// (podHostAddrs) and the Node objects.
func (s *Snapshot) deriveNodeAddrs() {
	s.nodesByAddr = make(map[netip.Addr][]string)
	s.addrsByNode = make(map[string][]netip.Addr)
	add := func(node string, a netip.Addr) {
		if !slices.Contains(s.addrsByNode[node], a) {
			s.addrsByNode[node] = append(s.addrsByNode[node], a)
			s.nodesByAddr[a] = append(s.nodesByAddr[a], node)
		}
	}
	for node, addrs := range s.podHostAddrs {
		for a := range addrs {
			add(node, a)
		}
	}
	for _, n := range s.Nodes {
		for _, a := range n.Addrs {
			add(n.Name, a)
		}
	}
	for _, addrs := range s.addrsByNode {
		slices.SortFunc(addrs, netip.Addr.Compare)
	}
	for _, nodes := range s.nodesByAddr {
		slices.Sort(nodes)
	}
}

func policyLess(a, b *Policy) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func comparePods(a, b *Pod) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
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
	}
	s.deriveNodeAddrs()
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
func (s *Snapshot) PodByIP(addr netip.Addr) *Pod {
	p, _ := s.podsByIP.get(addr)
	return p
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
	pods, _ := s.podsByNamespace.get(namespace)
	i := sort.Search(len(pods), func(i int) bool { return pods[i].Name >= name })
	if i < len(pods) && pods[i].Name == name {
		return pods[i]
	}
	return nil
}

// PodsIn returns the pods of a namespace, sorted by name.
func (s *Snapshot) PodsIn(namespace string) []*Pod {
	pods, _ := s.podsByNamespace.get(namespace)
	return pods
}

// PodsOn returns the pods that run on node, sorted by namespace/name; for
// node "" every pod.
func (s *Snapshot) PodsOn(node string) []*Pod {
	if node == "" {
		return s.Pods
	}
	return s.podsByNode[node]
}

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
