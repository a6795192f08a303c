package policy

import "net/netip"

// Tier is a stage of the evaluation pipeline. Each direction of a flow is
// decided by the first stage that accepts or denies it; later stages do not
// see it. ClusterNetworkPolicy's Admin tier comes before NetworkPolicy, its
// Baseline tier after; a direction no stage decides is allowed (Default).
type Tier uint8

// The tiers, in evaluation order.
const (
	TierAdmin Tier = iota
	TierNetworkPolicy
	TierBaseline
	TierDefault
)

func (t Tier) String() string {
	switch t {
	case TierAdmin:
		return "Admin"
	case TierNetworkPolicy:
		return "NetworkPolicy"
	case TierBaseline:
		return "Baseline"
	}
	return "default"
}

// Action is what a stage does with one direction of a flow.
type Action uint8

// Next leaves the decision to the next stage (a NetworkPolicy stage whose
// pod no policy isolates; a ClusterNetworkPolicy Pass, or no matching rule).
// Accept and Deny decide.
const (
	Next Action = iota
	Accept
	Deny
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "Accept"
	case Deny:
		return "Deny"
	}
	return "Next"
}

// Subject is one end of a flow whose policies a stage checks: the
// destination for Ingress, the source for Egress.
type Subject struct {
	Direction Direction
	Pod       *Pod
	Addr      netip.Addr
	// PeerIP and PeerPod are the other end (PeerPod nil when no pod).
	PeerIP  netip.Addr
	PeerPod *Pod
	// PortPod is the pod whose named ports the flow's port is resolved on:
	// the destination.
	PortPod *Pod
	Flow    Flow
}

// Stage is one tier of the pipeline. Evaluate returns the stage's action
// for the subject and records what explains it on c (the policies that
// isolate, the rules that match).
type Stage interface {
	Tier() Tier
	Evaluate(e *Evaluator, s *Subject, c *Check) Action
}

// networkPolicyStage is Kubernetes NetworkPolicy: a pod that some policy
// selects for the direction is isolated (Deny) unless a rule of such a
// policy allows the flow (Accept); a pod no policy isolates is left to the
// next stage (Next).
type networkPolicyStage struct{}

func (networkPolicyStage) Tier() Tier { return TierNetworkPolicy }

func (networkPolicyStage) Evaluate(e *Evaluator, s *Subject, c *Check) Action {
	dir := s.Direction
	for _, pol := range e.Snapshot.PoliciesIn(s.Pod.Namespace) {
		if !pol.Isolates[dir] || !pol.Selects(s.Pod) {
			continue
		}
		c.IsolatedBy = append(c.IsolatedBy, pol.PolicyRef)
		for i := range pol.Rules[dir] {
			if e.ruleMatches(pol, &pol.Rules[dir][i], s.PeerIP, s.PeerPod, s.PortPod, s.Flow) {
				c.AllowedBy = append(c.AllowedBy, RuleRef{Policy: pol.PolicyRef, Direction: dir, Index: i})
			}
		}
	}
	switch {
	case len(c.IsolatedBy) == 0:
		return Next
	case len(c.AllowedBy) > 0:
		return Accept
	}
	return Deny
}

// DefaultStages is the pipeline of Kubernetes: ClusterNetworkPolicy's Admin
// tier, NetworkPolicy, ClusterNetworkPolicy's Baseline tier.
func DefaultStages() []Stage {
	return []Stage{clusterStage{TierAdmin}, networkPolicyStage{}, clusterStage{TierBaseline}}
}
