package policy

import (
	"net/netip"
	"slices"
)

// Flow is the first packet of a connection.
type Flow struct {
	Src, Dst netip.Addr
	Protocol Protocol
	Port     uint16 // destination port; 0 for protocols without ports
}

// RuleRef names one rule of a policy.
type RuleRef struct {
	Policy    PolicyRef `json:"policy"`
	Direction Direction `json:"-"`
	Index     int       `json:"rule"`
}

// Check is the verdict of one direction: the destination's ingress or the
// source's egress.
type Check struct {
	Direction Direction
	// Pod is the pod whose policies are checked; nil if that end is no pod
	// (an external address, a host-network pod, the node).
	Pod *Pod
	// Enforced is false when the pod's policy is not enforced on the node the
	// evaluator speaks for (a remote pod), or there is no pod.
	Enforced bool
	// IsolatedBy lists the policies that select the pod for this direction.
	IsolatedBy []PolicyRef
	// AllowedBy lists the rules of those policies that match the flow.
	AllowedBy []RuleRef
	// FromNode: ingress from the pod's own node, which is always allowed.
	FromNode bool
	// ToNode: egress to the pod's own node, which is always allowed.
	ToNode bool
	// Self: the pod talks to itself, which it can never block.
	Self bool
	// Unknown: this end is an address in the node's pod ranges that no
	// known pod holds (a pod weft does not know yet, or a released address);
	// it is denied in both directions until its pod is known.
	Unknown bool
	// Tier is the stage that decided (TierDefault: none did, so allowed)
	// and Action what it did (Next when none decided).
	Tier   Tier
	Action Action
	// ClusterRule is the ClusterNetworkPolicy rule that decided, or that
	// passed (a Pass in the Admin tier, when a later stage decided).
	ClusterRule *ClusterRuleRef
	Allowed     bool
	// Audited: the direction blocks the flow (not Allowed), but its pod is
	// audited (Evaluator.Mode, the namespace's EnforcementAnnotation), so
	// the node logs the flow as would-be-blocked and lets it pass. Never
	// set for unknown addresses, which are always dropped.
	Audited bool
}

// Decision is the evaluator's answer for one flow.
type Decision struct {
	Flow Flow
	// Src and Dst are the pods holding the flow's addresses, or nil.
	Src, Dst *Pod
	// Egress is checked at Src, Ingress at Dst.
	Egress, Ingress Check
	Allowed         bool
}

// Passes reports whether the node lets the flow through: each direction
// allows it or only audits it. (Allowed is the policy's answer, the same
// in both modes.)
func (d *Decision) Passes() bool {
	return (d.Egress.Allowed || d.Egress.Audited) && (d.Ingress.Allowed || d.Ingress.Audited)
}

// Audits returns the directions that log the flow as would-be-blocked, in
// the order the node checks them: egress, then ingress unless egress
// dropped the flow.
func (d *Decision) Audits() []Direction {
	var out []Direction
	if d.Egress.Audited {
		out = append(out, Egress)
	}
	if d.Ingress.Audited && (d.Egress.Allowed || d.Egress.Audited) {
		out = append(out, Ingress)
	}
	return out
}

// Blocked returns the directions that block the flow.
func (d *Decision) Blocked() []Direction {
	var out []Direction
	if !d.Egress.Allowed {
		out = append(out, Egress)
	}
	if !d.Ingress.Allowed {
		out = append(out, Ingress)
	}
	return out
}

// Evaluator decides flows on a snapshot, as seen from one node: policies are
// enforced for pods local to Node (every pod when Node is empty).
type Evaluator struct {
	Snapshot *Snapshot
	Node     string
	// NodeIPs are addresses of Node not known from its pods' status.hostIPs;
	// traffic between the node and its pods is always allowed.
	NodeIPs []netip.Addr
	// PodRanges are Node's pod address ranges in which addresses that no
	// known pod holds are denied, both ways. Empty: such addresses are no
	// pod, and no policy applies to them.
	PodRanges []netip.Prefix
	// Stages is the pipeline each direction runs through, in order (nil:
	// DefaultStages, NetworkPolicy alone).
	Stages []Stage
	// Mode is how Node enforces pods whose namespace does not say
	// otherwise (Snapshot.EnforcementOf); it sets Check.Audited only.
	Mode Enforcement
}

// Decide answers whether the flow is allowed and why.
func (e *Evaluator) Decide(f Flow) Decision {
	s := e.Snapshot
	d := Decision{Flow: f, Src: s.PodByIP(f.Src), Dst: s.PodByIP(f.Dst)}
	d.Egress = e.check(Egress, d.Src, f.Src, f.Dst, d.Dst, f)
	d.Ingress = e.check(Ingress, d.Dst, f.Dst, f.Src, d.Src, f)
	// Traffic between a pod and its own node, and a pod's traffic to itself,
	// is always allowed: the node runs the pod (kubelet probes), and a pod
	// cannot block access to itself.
	if d.Ingress.Pod != nil && !d.Ingress.Unknown && e.isNodeOf(f.Src, d.Ingress.Pod) {
		d.Ingress.FromNode, d.Ingress.Allowed = true, true
	}
	if d.Egress.Pod != nil && !d.Egress.Unknown && e.isNodeOf(f.Dst, d.Egress.Pod) {
		d.Egress.ToNode, d.Egress.Allowed = true, true
	}
	// An unknown address of this node's pod ranges talks to this node
	// unhindered too (a new pod's DHCP, DNS on the node, kubelet probes).
	if d.Ingress.Unknown && e.isThisNode(f.Src) {
		d.Ingress.FromNode, d.Ingress.Allowed = true, true
	}
	if d.Egress.Unknown && e.isThisNode(f.Dst) {
		d.Egress.ToNode, d.Egress.Allowed = true, true
	}
	// (An unknown address is denied even towards itself.)
	if (f.Src == f.Dst || (d.Src != nil && d.Src == d.Dst)) && !d.Egress.Unknown && !d.Ingress.Unknown {
		d.Egress.Self, d.Egress.Allowed = true, true
		d.Ingress.Self, d.Ingress.Allowed = true, true
	}
	d.Allowed = d.Egress.Allowed && d.Ingress.Allowed
	for _, c := range []*Check{&d.Egress, &d.Ingress} {
		c.Audited = !c.Allowed && !c.Unknown && c.Enforced && c.Pod != nil && s.EnforcementOf(c.Pod.Namespace, e.Mode) == Audit
	}
	return d
}

// isThisNode reports whether addr is an address of the evaluator's node.
func (e *Evaluator) isThisNode(addr netip.Addr) bool {
	return e.Snapshot.IsNodeAddress(addr, e.Node) || slices.Contains(e.NodeIPs, addr)
}

// isNodeOf reports whether addr is the node that runs pod.
func (e *Evaluator) isNodeOf(addr netip.Addr, pod *Pod) bool {
	return e.Snapshot.IsNodeAddress(addr, pod.NodeName) ||
		(e.Node != "" && pod.NodeName == e.Node && slices.Contains(e.NodeIPs, addr))
}

// IsUnknown reports whether addr is in the evaluator's pod ranges but held by
// no known pod of the node and not an address of the node. (A pod of another
// node with an address in this node's ranges is a misconfiguration; the
// address is treated as unknown, which is the closed choice.)
func (e *Evaluator) IsUnknown(addr netip.Addr) bool {
	if e.Node == "" || IsLocal(e.Snapshot.PodByIP(addr), e.Node) || e.Snapshot.IsNodeAddress(addr, e.Node) || slices.Contains(e.NodeIPs, addr) {
		return false
	}
	for _, r := range e.PodRanges {
		if r.Contains(addr) {
			return true
		}
	}
	return false
}

// check runs the pipeline for pod, at address addr, in direction dir;
// peerIP/peerPod is the other end of the flow.
func (e *Evaluator) check(dir Direction, pod *Pod, addr, peerIP netip.Addr, peerPod *Pod, f Flow) Check {
	c := Check{Direction: dir, Pod: pod, Allowed: true, Tier: TierDefault}
	if e.IsUnknown(addr) {
		c.Unknown, c.Enforced, c.Allowed = true, true, false
		return c
	}
	if pod == nil {
		return c
	}
	c.Enforced = IsLocal(pod, e.Node)
	// Named ports resolve on the destination pod.
	s := &Subject{Direction: dir, Pod: pod, Addr: addr, PeerIP: peerIP, PeerPod: peerPod, PortPod: pod, Flow: f}
	if dir == Egress {
		s.PortPod = peerPod
	}
	stages := e.Stages
	if stages == nil {
		stages = DefaultStages()
	}
	// Every stage up to the deciding one runs, also for a pod this node
	// does not enforce (a remote pod), so that explanations name them.
	for _, st := range stages {
		if a := st.Evaluate(e, s, &c); a != Next {
			c.Tier, c.Action = st.Tier(), a
			break
		}
	}
	c.Allowed = !c.Enforced || c.Action != Deny
	return c
}

func (e *Evaluator) ruleMatches(pol *Policy, r *Rule, peerIP netip.Addr, peerPod, dstPod *Pod, f Flow) bool {
	if r.Broken {
		return false
	}
	return (r.AllPeers || e.peersMatch(pol, r.Peers, peerIP, peerPod)) && (r.AllPorts || portsMatch(r.Ports, dstPod, f))
}

func (e *Evaluator) peersMatch(pol *Policy, peers []Peer, peerIP netip.Addr, peerPod *Pod) bool {
	for i := range peers {
		p := &peers[i]
		if p.IPBlock != nil {
			if p.IPBlock.Contains(peerIP) {
				return true
			}
			continue
		}
		if peerPod == nil {
			continue
		}
		if p.NamespaceSelector == nil {
			if peerPod.Namespace != pol.Namespace {
				continue
			}
		} else if !p.NamespaceSelector.Matches(e.Snapshot.NamespaceLabels(peerPod.Namespace)) {
			continue
		}
		if p.PodSelector == nil || p.PodSelector.Matches(peerPod.Labels) {
			return true
		}
	}
	return false
}

func portsMatch(ports []Port, dstPod *Pod, f Flow) bool {
	for _, p := range ports {
		if p.Protocol != f.Protocol {
			continue
		}
		if p.Name != "" {
			if dstPod != nil && slices.Contains(dstPod.ResolvePort(p.Name, p.Protocol), f.Port) {
				return true
			}
			continue
		}
		if p.Port == 0 || (f.Port >= p.Port && f.Port <= p.EndPort) {
			return true
		}
	}
	return false
}
