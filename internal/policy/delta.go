package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
)

// nextSnapshotID numbers snapshots.
var nextSnapshotID atomic.Uint64

// Changes are the objects that changed since a snapshot, by key; a nil
// value means the object is gone.
type Changes struct {
	Pods       map[string]*Pod       // by namespace/name
	Namespaces map[string]*Namespace // by name
	Policies   map[string]*Policy    // by namespace/name
	Nodes      map[string]*Node      // by name
	// ClusterPolicies replace all cluster policies when SetClusterPolicies.
	ClusterPolicies    []*ClusterPolicy
	SetClusterPolicies bool
}

// Empty reports whether ch holds no change.
func (ch *Changes) Empty() bool {
	return len(ch.Pods) == 0 && len(ch.Namespaces) == 0 && len(ch.Policies) == 0 && len(ch.Nodes) == 0 && !ch.SetClusterPolicies
}

// Delta is what a snapshot that With derived changed from its parent.
type Delta struct {
	// Pods are the pods that changed, old and new version (nil: none).
	Pods [][2]*Pod
	// Namespaces are the entries of Snapshot.Namespaces that changed
	// (namespaces known only from their pods included), old and new.
	Namespaces [][2]*Namespace
	// Policies, ClusterPolicies and Nodes say whether any of them changed.
	Policies, ClusterPolicies, Nodes bool
}

// DeltaFrom returns what changed from prev to s, when With derived s from
// prev; false otherwise.
func (s *Snapshot) DeltaFrom(prev *Snapshot) (*Delta, bool) {
	if prev == nil || s.delta == nil || s.parent != prev.id {
		return nil, false
	}
	return s.delta, true
}

// With returns the snapshot s would be with ch applied, sharing what did not
// change; s does not change. Its cost follows the size of ch, not of the
// cluster (but for a copy of the sorted pod list).
func (s *Snapshot) With(ch Changes) *Snapshot {
	n := *s
	n.id, n.parent = nextSnapshotID.Add(1), s.id
	d := &Delta{}
	n.delta = d

	var pods [][2]*Pod
	for key, np := range ch.Pods {
		ns, name, _ := strings.Cut(key, "/")
		if op := s.Pod(ns, name); op != np {
			pods = append(pods, [2]*Pod{op, np})
		}
	}
	slices.SortFunc(pods, func(a, b [2]*Pod) int { return comparePods(either(a), either(b)) })
	d.Pods = pods

	touchedNS := map[string]bool{}
	if len(pods) > 0 {
		n.applyPods(s, pods)
		for _, c := range pods {
			touchedNS[either(c).Namespace] = true
		}
	}
	var nss []string
	for name := range ch.Namespaces {
		touchedNS[name] = true
	}
	for name := range touchedNS {
		nss = append(nss, name)
	}
	slices.Sort(nss)
	n.applyNamespaces(s, nss, ch.Namespaces)

	if len(ch.Policies) > 0 {
		n.applyPolicies(s, ch.Policies)
	}
	if len(ch.Nodes) > 0 {
		d.Nodes = true
		n.Nodes = maps.Clone(s.Nodes)
		if n.Nodes == nil {
			n.Nodes = map[string]*Node{}
		}
		for name, node := range ch.Nodes {
			if node == nil {
				delete(n.Nodes, name)
			} else {
				n.Nodes[name] = node
			}
		}
		n.deriveNodeAddrs()
	}
	if ch.SetClusterPolicies {
		d.ClusterPolicies = true
		n.ClusterPolicies = nil
		n.AddClusterPolicies(ch.ClusterPolicies...)
	}
	return &n
}

// either is a change's old version, or its new one when it has none.
func either[T any](c [2]*T) *T {
	if c[0] != nil {
		return c[0]
	}
	return c[1]
}

// patch returns a copy of base (sorted by cmp) with changes (sorted by
// cmp; each old version is in base) applied: old versions out, new ones in.
func patch[T any](base []*T, changes [][2]*T, cmp func(a, b *T) int) []*T {
	out := make([]*T, 0, len(base)+len(changes))
	i := 0
	for _, c := range changes {
		j, found := slices.BinarySearchFunc(base[i:], either(c), cmp)
		out = append(out, base[i:i+j]...)
		i += j
		if found {
			i++
		}
		if c[1] != nil {
			out = append(out, c[1])
		}
	}
	if out = append(out, base[i:]...); len(out) == 0 {
		return nil // as BuildSnapshot has it
	}
	return out
}

// applyPods updates n (a copy of s) for pod changes sorted by key.
func (n *Snapshot) applyPods(s *Snapshot, pods [][2]*Pod) {
	n.Pods = patch(s.Pods, pods, comparePods)

	byNS := s.podsByNamespace.edit()
	byNode := map[string][][2]*Pod{}
	for i := 0; i < len(pods); {
		ns := either(pods[i]).Namespace
		j := i
		for j < len(pods) && either(pods[j]).Namespace == ns {
			j++
		}
		in, _ := byNS.get(ns)
		if out := patch(in, pods[i:j], comparePods); len(out) > 0 {
			byNS.set(ns, out)
		} else {
			byNS.del(ns)
		}
		i = j
	}
	for _, c := range pods {
		o, p := c[0], c[1]
		switch {
		case o != nil && p != nil && o.NodeName == p.NodeName:
			if o.NodeName != "" {
				byNode[o.NodeName] = append(byNode[o.NodeName], c)
			}
		default:
			if o != nil && o.NodeName != "" {
				byNode[o.NodeName] = append(byNode[o.NodeName], [2]*Pod{o, nil})
			}
			if p != nil && p.NodeName != "" {
				byNode[p.NodeName] = append(byNode[p.NodeName], [2]*Pod{nil, p})
			}
		}
	}
	n.podsByNamespace = byNS.done()
	if len(byNode) > 0 {
		n.podsByNode = maps.Clone(s.podsByNode)
		for node, cs := range byNode {
			if out := patch(s.podsByNode[node], cs, comparePods); len(out) > 0 {
				n.podsByNode[node] = out
			} else {
				delete(n.podsByNode, node)
			}
		}
	}

	// Owners of the addresses the changed pods held or hold.
	changed := make(map[*Pod]bool, 2*len(pods))
	var addrs []netip.Addr
	for _, c := range pods {
		for _, p := range c {
			if p != nil {
				changed[p] = true
				if p.Selectable() {
					addrs = append(addrs, p.IPs...)
				}
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	byIP := s.podsByIP.edit()
	shadowCloned := false
	for _, ip := range addrs {
		var holders []*Pod
		if p, ok := byIP.get(ip); ok && !changed[p] {
			holders = append(holders, p)
		}
		for _, p := range s.shadowed[ip] {
			if !changed[p] {
				holders = append(holders, p)
			}
		}
		for _, c := range pods {
			if p := c[1]; p != nil && p.Selectable() && slices.Contains(p.IPs, ip) {
				holders = append(holders, p)
			}
		}
		slices.SortFunc(holders, comparePods)
		owner := slices.IndexFunc(holders, func(p *Pod) bool { return !p.Terminating })
		if owner < 0 && len(holders) > 0 {
			owner = 0
		}
		if owner < 0 {
			byIP.del(ip)
		} else {
			byIP.set(ip, holders[owner])
			holders = slices.Delete(holders, owner, owner+1)
		}
		if len(holders) > 0 || len(s.shadowed[ip]) > 0 {
			if !shadowCloned {
				n.shadowed, shadowCloned = maps.Clone(s.shadowed), true
			}
			if len(holders) > 0 {
				n.shadowed[ip] = holders
			} else {
				delete(n.shadowed, ip)
			}
		}
	}
	n.podsByIP = byIP.done()

	// Node addresses the changed pods named.
	nodes := map[string]bool{}
	for _, c := range pods {
		for _, p := range c {
			if p != nil && p.NodeName != "" {
				nodes[p.NodeName] = true
			}
		}
	}
	if len(nodes) == 0 {
		return
	}
	n.podHostAddrs = maps.Clone(s.podHostAddrs)
	before := map[string][]netip.Addr{}
	for node := range nodes {
		before[node] = slices.Collect(maps.Keys(s.podHostAddrs[node]))
		if m := s.podHostAddrs[node]; m != nil {
			n.podHostAddrs[node] = maps.Clone(m)
		}
	}
	for _, c := range pods {
		n.countHostAddrs(c[0], -1)
		n.countHostAddrs(c[1], 1)
	}
	for node := range nodes {
		if len(before[node]) != len(n.podHostAddrs[node]) {
			n.deriveNodeAddrs()
			return
		}
		for _, a := range before[node] {
			if n.podHostAddrs[node][a] == 0 {
				n.deriveNodeAddrs()
				return
			}
		}
	}
}

// applyNamespaces updates n's Namespaces for the namespaces named (sorted):
// their objects changed (objs; nil: deleted) or their pods did, which may
// make a namespace known only from its pods appear or go.
func (n *Snapshot) applyNamespaces(s *Snapshot, names []string, objs map[string]*Namespace) {
	cloned := false
	for _, name := range names {
		old := s.Namespaces[name]
		obj, changed := objs[name]
		hasObj := obj != nil || !changed && old != nil && !s.implied[name]
		var cur *Namespace
		implied := false
		switch {
		case hasObj && changed:
			cur = obj
		case hasObj:
			cur = old
		case len(n.PodsIn(name)) > 0:
			cur, implied = old, true
			if !s.implied[name] {
				cur = impliedNamespace(name)
			}
		}
		if cur == old && implied == s.implied[name] {
			continue
		}
		if !cloned {
			n.Namespaces, n.implied, cloned = maps.Clone(s.Namespaces), maps.Clone(s.implied), true
		}
		if cur == nil {
			delete(n.Namespaces, name)
		} else {
			n.Namespaces[name] = cur
		}
		if implied {
			n.implied[name] = true
		} else {
			delete(n.implied, name)
		}
		if cur != old {
			n.delta.Namespaces = append(n.delta.Namespaces, [2]*Namespace{old, cur})
		}
	}
}

// applyPolicies updates n's policies for changed ones (nil: deleted).
func (n *Snapshot) applyPolicies(s *Snapshot, objs map[string]*Policy) {
	var pols [][2]*Policy
	for key, p := range objs {
		ns, name, _ := strings.Cut(key, "/")
		var old *Policy
		in := s.policiesByNamespace[ns]
		if i, ok := slices.BinarySearchFunc(in, name, func(p *Policy, name string) int { return strings.Compare(p.Name, name) }); ok {
			old = in[i]
		}
		if old != p {
			pols = append(pols, [2]*Policy{old, p})
		}
	}
	if len(pols) == 0 {
		return
	}
	cmp := func(a, b *Policy) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	}
	slices.SortFunc(pols, func(a, b [2]*Policy) int { return cmp(either(a), either(b)) })
	n.delta.Policies = true
	n.Policies = patch(s.Policies, pols, cmp)
	n.policiesByNamespace = maps.Clone(s.policiesByNamespace)
	for i := 0; i < len(pols); {
		ns := either(pols[i]).Namespace
		j := i
		for j < len(pols) && either(pols[j]).Namespace == ns {
			j++
		}
		if out := patch(s.policiesByNamespace[ns], pols[i:j], cmp); len(out) > 0 {
			n.policiesByNamespace[ns] = out
		} else {
			delete(n.policiesByNamespace, ns)
		}
		i = j
	}
}

// Diff says where snapshot got differs from want, as read through their
// accessors and compared by value ("": nowhere), for tests of snapshots
// derived by With.
func Diff(want, got *Snapshot) string {
	if !reflect.DeepEqual(want.Pods, got.Pods) {
		return fmt.Sprintf("pods: want %d, got %d", len(want.Pods), len(got.Pods))
	}
	if !reflect.DeepEqual(want.Policies, got.Policies) {
		return "policies differ"
	}
	if !reflect.DeepEqual(want.ClusterPolicies, got.ClusterPolicies) || !reflect.DeepEqual(want.Nodes, got.Nodes) {
		return "cluster policies or nodes differ"
	}
	if len(want.Namespaces) != len(got.Namespaces) {
		return fmt.Sprintf("namespaces: want %d, got %d", len(want.Namespaces), len(got.Namespaces))
	}
	nodes := map[string]bool{"": true}
	var addrs []netip.Addr
	for name, ns := range want.Namespaces {
		if g := got.Namespaces[name]; g == nil || ns.Name != g.Name || !maps.Equal(ns.Labels, g.Labels) || !maps.Equal(ns.Annotations, g.Annotations) {
			return fmt.Sprintf("namespace %s: want %+v, got %+v", name, ns, g)
		}
		if !reflect.DeepEqual(want.PodsIn(name), got.PodsIn(name)) {
			return "pods of namespace " + name
		}
		if !reflect.DeepEqual(want.PoliciesIn(name), got.PoliciesIn(name)) {
			return "policies of namespace " + name
		}
	}
	for _, p := range want.Pods {
		nodes[p.NodeName] = true
		addrs = append(addrs, p.IPs...)
		addrs = append(addrs, p.HostIPs...)
	}
	for node := range nodes {
		if !reflect.DeepEqual(want.PodsOn(node), got.PodsOn(node)) {
			return "pods on node " + node
		}
		if !reflect.DeepEqual(want.AddressesOf(node), got.AddressesOf(node)) {
			return fmt.Sprintf("addresses of node %s: want %v, got %v", node, want.AddressesOf(node), got.AddressesOf(node))
		}
	}
	for _, a := range addrs {
		if !reflect.DeepEqual(want.PodByIP(a), got.PodByIP(a)) {
			return fmt.Sprintf("owner of %s: want %v, got %v", a, want.PodByIP(a), got.PodByIP(a))
		}
		if !reflect.DeepEqual(want.NodesWithAddress(a), got.NodesWithAddress(a)) || want.IsAnyNodeAddress(a) != got.IsAnyNodeAddress(a) {
			return fmt.Sprintf("nodes with address %s", a)
		}
	}
	return ""
}
