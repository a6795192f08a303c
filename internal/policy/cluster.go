package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
)

// ClusterPolicy is a ClusterNetworkPolicy (policy.networking.k8s.io
// v1alpha2) as policy sees it: rules of the Admin tier, evaluated before
// NetworkPolicy, or of the Baseline tier, evaluated after it.
type ClusterPolicy struct {
	Name string
	// UID is the API object's, for Events about it ("" from files).
	UID  string
	Tier Tier // TierAdmin or TierBaseline
	// Priority orders the policies of a tier: lower first. Policies of equal
	// priority are ordered by name (the API leaves the choice to the
	// implementation; weft warns).
	Priority int32
	Subject  ClusterSubject
	// Rules per direction, in the order of the manifest: the first rule that
	// matches decides.
	Rules  [2][]ClusterRule
	Errors []FieldError
}

// ClusterSubject selects the pods a cluster policy applies to: every pod of
// the namespaces Namespaces matches, or (Namespaces nil) the pods Pods
// matches in the namespaces PodNamespaces matches.
type ClusterSubject struct {
	Namespaces    labels.Selector
	PodNamespaces labels.Selector
	Pods          labels.Selector
}

// ClusterRule is one ingress or egress rule of a cluster policy. A Broken
// rule never opens: a broken Accept matches nothing; a broken Deny or Pass
// was made a Deny of every peer and port when it was read.
type ClusterRule struct {
	Name     string
	Action   Action // Accept, Deny, or Next for Pass
	Peers    []ClusterPeer
	AllPorts bool
	Ports    []Port // a named port has Protocol 0: any protocol the pod names
	AllPeers bool
	Broken   bool
}

// ClusterPeer is one peer of a cluster policy rule; exactly one field is set.
type ClusterPeer struct {
	// Namespaces: every pod of the matching namespaces.
	Namespaces labels.Selector
	// PodNamespaces and Pods: the matching pods of the matching namespaces.
	PodNamespaces, Pods labels.Selector
	// Nodes: the addresses of the matching nodes (egress).
	Nodes labels.Selector
	// Networks: addresses in these prefixes (egress).
	Networks []netip.Prefix
}

// ClusterRuleRef names one rule of a cluster policy.
type ClusterRuleRef struct {
	Policy    string    `json:"policy"`
	Tier      Tier      `json:"-"`
	Direction Direction `json:"-"`
	Index     int       `json:"rule"`
	Name      string    `json:"name,omitempty"`
	Action    Action    `json:"-"`
}

func (r ClusterRuleRef) String() string {
	s := fmt.Sprintf("%s %s[%d]", r.Policy, r.Direction, r.Index)
	if r.Name != "" {
		s += " (" + r.Name + ")"
	}
	return s
}

// ClusterPolicyFromAPI normalises a ClusterNetworkPolicy. What weft cannot
// understand is recorded in Errors and never opens traffic: a subject it
// cannot read selects every pod (and then only the policy's Deny rules
// act), a rule it cannot read is a broken rule (see ClusterRule).
func ClusterPolicyFromAPI(in *npav1alpha2.ClusterNetworkPolicy) *ClusterPolicy {
	p := &ClusterPolicy{Name: in.Name, UID: string(in.UID), Priority: in.Spec.Priority}
	ref := PolicyRef{Name: in.Name}
	fail := func(field, format string, args ...any) {
		p.Errors = append(p.Errors, FieldError{Policy: ref, Kind: "clusternetworkpolicy", Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch in.Spec.Tier {
	case npav1alpha2.AdminTier:
		p.Tier = TierAdmin
	case npav1alpha2.BaselineTier:
		p.Tier = TierBaseline
	default:
		// Unknown tier: treat it as Admin, where its Deny rules hold
		// (Accept and Pass rules are disabled below).
		p.Tier = TierAdmin
		fail("spec.tier", "unknown tier %q (want Admin or Baseline)", in.Spec.Tier)
	}
	if in.Spec.Priority < 0 || in.Spec.Priority > 1000 {
		fail("spec.priority", "%d is out of 0-1000", in.Spec.Priority)
	}
	subjectOK := p.readSubject(&in.Spec.Subject, fail)
	for i := range in.Spec.Ingress {
		r := &in.Spec.Ingress[i]
		peers := make([]npav1alpha2.ClusterNetworkPolicyEgressPeer, len(r.From))
		for j, f := range r.From {
			peers[j] = npav1alpha2.ClusterNetworkPolicyEgressPeer{Namespaces: f.Namespaces, Pods: f.Pods}
		}
		p.Rules[Ingress] = append(p.Rules[Ingress], readClusterRule(fmt.Sprintf("spec.ingress[%d]", i), "from", r.Name, r.Action, peers, r.Protocols, fail))
	}
	for i := range in.Spec.Egress {
		r := &in.Spec.Egress[i]
		p.Rules[Egress] = append(p.Rules[Egress], readClusterRule(fmt.Sprintf("spec.egress[%d]", i), "to", r.Name, r.Action, r.To, r.Protocols, fail))
	}
	if !subjectOK || in.Spec.Tier != npav1alpha2.AdminTier && in.Spec.Tier != npav1alpha2.BaselineTier {
		// Whom the policy applies to, or where, is not known: its Deny
		// rules apply to every pod; nothing else of it does.
		for dir := range p.Rules {
			for i := range p.Rules[dir] {
				if r := &p.Rules[dir][i]; r.Action != Deny {
					r.Broken = true
				}
			}
		}
	}
	return p
}

// readSubject reads the subject; false when it cannot (then it selects
// every pod).
func (p *ClusterPolicy) readSubject(in *npav1alpha2.ClusterNetworkPolicySubject, fail func(string, string, ...any)) bool {
	everyone := func() bool {
		p.Subject = ClusterSubject{Namespaces: labels.Everything()}
		return false
	}
	switch {
	case in.Namespaces != nil && in.Pods != nil:
		fail("spec.subject", "namespaces and pods are both set (want exactly one)")
		return everyone()
	case in.Namespaces != nil:
		sel, err := metav1.LabelSelectorAsSelector(in.Namespaces)
		if err != nil {
			fail("spec.subject.namespaces", "%v", err)
			return everyone()
		}
		p.Subject = ClusterSubject{Namespaces: sel}
	case in.Pods != nil:
		nsSel, err := metav1.LabelSelectorAsSelector(&in.Pods.NamespaceSelector)
		if err != nil {
			fail("spec.subject.pods.namespaceSelector", "%v", err)
			return everyone()
		}
		podSel, err := metav1.LabelSelectorAsSelector(&in.Pods.PodSelector)
		if err != nil {
			fail("spec.subject.pods.podSelector", "%v", err)
			return everyone()
		}
		p.Subject = ClusterSubject{PodNamespaces: nsSel, Pods: podSel}
	default:
		fail("spec.subject", "neither namespaces nor pods is set (want exactly one)")
		return everyone()
	}
	return true
}

// readClusterRule reads one rule; path is e.g. "spec.egress[2]" and
// peersField "from" or "to".
func readClusterRule(path, peersField, name string, action npav1alpha2.ClusterNetworkPolicyRuleAction,
	peers []npav1alpha2.ClusterNetworkPolicyEgressPeer, protocols []npav1alpha2.ClusterNetworkPolicyProtocol,
	fail func(string, string, ...any)) ClusterRule {
	r := ClusterRule{Name: name}
	broken := false
	bad := func(field, format string, args ...any) {
		fail(path+"."+field, format, args...)
		broken = true
	}
	switch action {
	case npav1alpha2.ClusterNetworkPolicyRuleActionAccept:
		r.Action = Accept
	case npav1alpha2.ClusterNetworkPolicyRuleActionDeny:
		r.Action = Deny
	case npav1alpha2.ClusterNetworkPolicyRuleActionPass:
		r.Action = Next
	default:
		r.Action = Deny
		bad("action", "unknown action %q (want Accept, Deny or Pass)", action)
	}
	if len(peers) == 0 {
		bad(peersField, "no peers: the API requires at least one")
	}
	for j := range peers {
		peer, err := readClusterPeer(&peers[j])
		if err != nil {
			bad(joinField(fmt.Sprintf("%s[%d]", peersField, j), err.field), "%s", err.msg)
			continue
		}
		r.Peers = append(r.Peers, peer)
	}
	r.AllPorts = len(protocols) == 0
	for j := range protocols {
		ports, err := readClusterProtocol(&protocols[j])
		if err != nil {
			bad(joinField(fmt.Sprintf("protocols[%d]", j), err.field), "%s", err.msg)
			continue
		}
		r.Ports = append(r.Ports, ports)
	}
	if broken {
		if r.Action == Accept {
			r.Broken = true // allows nothing
		} else {
			// A Deny or Pass weft cannot read denies everything it
			// might have covered (a Pass could have let a lower tier
			// deny): closed, never open.
			r.Action, r.AllPeers, r.AllPorts, r.Peers, r.Ports = Deny, true, true, nil, nil
		}
	}
	return r
}

type clusterFieldErr struct{ field, msg string }

// joinField is "a.b", or "a" when b is empty.
func joinField(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}

func readClusterPeer(in *npav1alpha2.ClusterNetworkPolicyEgressPeer) (ClusterPeer, *clusterFieldErr) {
	var set []string
	var out ClusterPeer
	if in.Namespaces != nil {
		set = append(set, "namespaces")
		sel, err := metav1.LabelSelectorAsSelector(in.Namespaces)
		if err != nil {
			return out, &clusterFieldErr{"namespaces", err.Error()}
		}
		out.Namespaces = sel
	}
	if in.Pods != nil {
		set = append(set, "pods")
		nsSel, err := metav1.LabelSelectorAsSelector(&in.Pods.NamespaceSelector)
		if err != nil {
			return out, &clusterFieldErr{"pods.namespaceSelector", err.Error()}
		}
		podSel, err := metav1.LabelSelectorAsSelector(&in.Pods.PodSelector)
		if err != nil {
			return out, &clusterFieldErr{"pods.podSelector", err.Error()}
		}
		out.PodNamespaces, out.Pods = nsSel, podSel
	}
	if in.Nodes != nil {
		set = append(set, "nodes")
		sel, err := metav1.LabelSelectorAsSelector(in.Nodes)
		if err != nil {
			return out, &clusterFieldErr{"nodes", err.Error()}
		}
		out.Nodes = sel
	}
	if len(in.Networks) > 0 {
		set = append(set, "networks")
		for k, c := range in.Networks {
			pfx, err := netip.ParsePrefix(string(c))
			if err != nil {
				if a, aerr := netip.ParseAddr(string(c)); aerr == nil {
					pfx = netip.PrefixFrom(a, a.BitLen())
				} else {
					return out, &clusterFieldErr{fmt.Sprintf("networks[%d]", k), fmt.Sprintf("%q is not a CIDR", c)}
				}
			}
			if pfx != pfx.Masked() {
				return out, &clusterFieldErr{fmt.Sprintf("networks[%d]", k), fmt.Sprintf("%q has host bits set (did you mean %s?)", c, pfx.Masked())}
			}
			out.Networks = append(out.Networks, pfx)
		}
	}
	if len(in.DomainNames) > 0 {
		// Matching by name needs the DNS answers pods get; weft programs
		// addresses only.
		return out, &clusterFieldErr{"domainNames", "weft cannot enforce peers by domain name (it matches addresses only); use networks"}
	}
	switch len(set) {
	case 0:
		return out, &clusterFieldErr{"", "empty peer (want exactly one of namespaces, pods, nodes, networks)"}
	case 1:
		return out, nil
	}
	return out, &clusterFieldErr{"", fmt.Sprintf("%s are all set (want exactly one)", strings.Join(set, " and "))}
}

func readClusterProtocol(in *npav1alpha2.ClusterNetworkPolicyProtocol) (Port, *clusterFieldErr) {
	type cand struct {
		field string
		proto Protocol
		port  *npav1alpha2.Port
	}
	var set []cand
	if in.TCP != nil {
		set = append(set, cand{"tcp", TCP, in.TCP.DestinationPort})
	}
	if in.UDP != nil {
		set = append(set, cand{"udp", UDP, in.UDP.DestinationPort})
	}
	if in.SCTP != nil {
		set = append(set, cand{"sctp", SCTP, in.SCTP.DestinationPort})
	}
	if in.DestinationNamedPort != "" {
		if len(set) > 0 {
			return Port{}, &clusterFieldErr{"destinationNamedPort", "set beside a protocol (want exactly one)"}
		}
		if !validPortName(in.DestinationNamedPort) {
			return Port{}, &clusterFieldErr{"destinationNamedPort", fmt.Sprintf("%q is not a valid port name", in.DestinationNamedPort)}
		}
		return Port{Name: in.DestinationNamedPort}, nil
	}
	if len(set) != 1 {
		return Port{}, &clusterFieldErr{"", "want exactly one of tcp, udp, sctp, destinationNamedPort"}
	}
	c := set[0]
	out := Port{Protocol: c.proto}
	if c.port == nil {
		return out, nil // every port of the protocol
	}
	switch {
	case c.port.Range != nil && c.port.Number != 0:
		return out, &clusterFieldErr{c.field + ".destinationPort", "number and range are both set"}
	case c.port.Range != nil:
		lo, hi := c.port.Range.Start, c.port.Range.End
		if lo < 1 || hi > 65535 || lo > hi {
			return out, &clusterFieldErr{c.field + ".destinationPort.range", fmt.Sprintf("%d-%d is not a range of ports 1-65535", lo, hi)}
		}
		out.Port, out.EndPort = uint16(lo), uint16(hi)
	default:
		if c.port.Number < 1 || c.port.Number > 65535 {
			return out, &clusterFieldErr{c.field + ".destinationPort.number", fmt.Sprintf("%d is not a port 1-65535", c.port.Number)}
		}
		out.Port, out.EndPort = uint16(c.port.Number), uint16(c.port.Number)
	}
	return out, nil
}

// Selects reports whether the policy applies to pod, whose namespace has
// labels nsLabels.
func (p *ClusterPolicy) Selects(pod *Pod, nsLabels labels.Set) bool {
	return p.Subject.selects(pod, nsLabels)
}

// selects reports whether the subject is the pod.
func (s *ClusterSubject) selects(pod *Pod, nsLabels labels.Set) bool {
	if !pod.Selectable() {
		return false
	}
	if s.Namespaces != nil {
		return s.Namespaces.Matches(nsLabels)
	}
	return s.PodNamespaces.Matches(nsLabels) && s.Pods.Matches(pod.Labels)
}

// clusterStage is one ClusterNetworkPolicy tier: the policies of the tier
// that select the pod, by priority (then name), each rule of the direction
// in order; the first rule that matches decides: Accept, Deny, or Pass,
// which leaves the rest of the tier and goes on to the next stage.
type clusterStage struct{ tier Tier }

func (s clusterStage) Tier() Tier { return s.tier }

func (s clusterStage) Evaluate(e *Evaluator, sub *Subject, c *Check) Action {
	snap := e.Snapshot
	nsLabels := snap.NamespaceLabels(sub.Pod.Namespace)
	for _, p := range snap.ClusterPoliciesIn(s.tier) {
		if !p.Subject.selects(sub.Pod, nsLabels) {
			continue
		}
		for i := range p.Rules[sub.Direction] {
			r := &p.Rules[sub.Direction][i]
			if !e.clusterRuleMatches(r, sub) {
				continue
			}
			c.ClusterRule = &ClusterRuleRef{Policy: p.Name, Tier: s.tier, Direction: sub.Direction, Index: i, Name: r.Name, Action: r.Action}
			return r.Action
		}
	}
	return Next
}

func (e *Evaluator) clusterRuleMatches(r *ClusterRule, sub *Subject) bool {
	if r.Broken {
		return false
	}
	if !r.AllPorts && !clusterPortsMatch(r.Ports, sub.PortPod, sub.Flow) {
		return false
	}
	if r.AllPeers {
		return true
	}
	for i := range r.Peers {
		if e.clusterPeerMatches(&r.Peers[i], sub) {
			return true
		}
	}
	return false
}

func (e *Evaluator) clusterPeerMatches(p *ClusterPeer, sub *Subject) bool {
	switch {
	case p.Namespaces != nil:
		return sub.PeerPod != nil && sub.PeerPod.Selectable() && p.Namespaces.Matches(e.Snapshot.NamespaceLabels(sub.PeerPod.Namespace))
	case p.Pods != nil:
		return sub.PeerPod != nil && sub.PeerPod.Selectable() &&
			p.PodNamespaces.Matches(e.Snapshot.NamespaceLabels(sub.PeerPod.Namespace)) && p.Pods.Matches(sub.PeerPod.Labels)
	case p.Nodes != nil:
		for _, n := range e.Snapshot.NodesWithAddress(sub.PeerIP) {
			if p.Nodes.Matches(n.Labels) {
				return true
			}
		}
		return false
	}
	return slices.ContainsFunc(p.Networks, func(n netip.Prefix) bool { return n.Contains(sub.PeerIP) })
}

// clusterPortsMatch: a named port (Protocol 0) matches the flow's protocol
// and port when the destination pod names that port for that protocol.
func clusterPortsMatch(ports []Port, dstPod *Pod, f Flow) bool {
	for _, p := range ports {
		if p.Name != "" && p.Protocol == 0 {
			if dstPod != nil && slices.Contains(dstPod.ResolvePort(p.Name, f.Protocol), f.Port) {
				return true
			}
			continue
		}
		if portsMatch([]Port{p}, dstPod, f) {
			return true
		}
	}
	return false
}
