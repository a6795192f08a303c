package explain

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftnet/weft/internal/policy"
)

// Report is a Decision in a form for people and scripts (JSON).
type Report struct {
	Verdict  string   `json:"verdict"` // "allowed" or "blocked"
	Protocol string   `json:"protocol"`
	Port     uint16   `json:"port,omitempty"`
	From     Endpoint `json:"from"`
	To       Endpoint `json:"to"`
	// Blocked lists the directions that block: "egress", "ingress".
	Blocked []string `json:"blockedBy,omitempty"`
	Egress  Side     `json:"egress"`
	Ingress Side     `json:"ingress"`
	// Problems are parts of the involved policies weft cannot understand.
	Problems []string `json:"problems,omitempty"`
}

// Endpoint is one end of the flow.
type Endpoint struct {
	IP  string `json:"ip"`
	Pod string `json:"pod,omitempty"` // "namespace/name", empty when no pod holds the address
}

// Side is the verdict of one direction.
type Side struct {
	Pod        string   `json:"pod,omitempty"`
	Enforced   bool     `json:"enforced"`
	Allowed    bool     `json:"allowed"`
	IsolatedBy []string `json:"isolatedBy"`
	AllowedBy  []Rule   `json:"allowedBy"`
	FromNode   bool     `json:"fromNode,omitempty"`
	Unknown    bool     `json:"unknown,omitempty"`
	// Audited: blocked, but the pod's namespace is annotated
	// weft.dev/enforcement=audit, so its node logs the connection as would
	// be blocked and lets it through.
	Audited bool `json:"audited,omitempty"`
	// Tier is the stage that decided: "Admin", "NetworkPolicy", "Baseline"
	// or "default" (none did: allowed).
	Tier string `json:"tier"`
	// ClusterRule is the ClusterNetworkPolicy rule that decided (or passed).
	ClusterRule *ClusterRule `json:"clusterRule,omitempty"`
	Reason      string       `json:"reason"`
}

// ClusterRule names a ClusterNetworkPolicy rule and what it did.
type ClusterRule struct {
	Policy string `json:"policy"`
	Tier   string `json:"tier"`
	Field  string `json:"field"` // e.g. spec.ingress[0]
	Name   string `json:"name,omitempty"`
	Action string `json:"action"` // Accept, Deny or Pass
}

// Rule names a policy rule.
type Rule struct {
	Policy string `json:"policy"`
	Field  string `json:"field"` // e.g. spec.ingress[0]
}

// NewReport describes d; snap supplies the policies' problems.
func NewReport(d policy.Decision, snap *policy.Snapshot) Report {
	r := Report{
		Verdict:  "allowed",
		Protocol: d.Flow.Protocol.String(),
		Port:     d.Flow.Port,
		From:     endpoint(d.Flow.Src, d.Src),
		To:       endpoint(d.Flow.Dst, d.Dst),
		Egress:   side(d.Egress),
		Ingress:  side(d.Ingress),
	}
	if !d.Allowed {
		r.Verdict = "blocked"
	}
	for _, dir := range d.Blocked() {
		r.Blocked = append(r.Blocked, dir.String())
	}
	seen := map[policy.PolicyRef]bool{}
	for _, c := range []policy.Check{d.Egress, d.Ingress} {
		for _, ref := range c.IsolatedBy {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			for _, p := range snap.PoliciesIn(ref.Namespace) {
				if p.PolicyRef == ref {
					for _, e := range p.Errors {
						r.Problems = append(r.Problems, e.Error())
					}
				}
			}
		}
	}
	return r
}

func endpoint(ip netip.Addr, p *policy.Pod) Endpoint {
	e := Endpoint{IP: ip.String()}
	if p != nil {
		e.Pod = p.Key()
	}
	return e
}

func side(c policy.Check) Side {
	s := Side{Enforced: c.Enforced, Allowed: c.Allowed, FromNode: c.FromNode, Unknown: c.Unknown, Audited: c.Audited, IsolatedBy: []string{}, AllowedBy: []Rule{}}
	if c.Pod != nil {
		s.Pod = c.Pod.Key()
	}
	for _, ref := range c.IsolatedBy {
		s.IsolatedBy = append(s.IsolatedBy, ref.String())
	}
	for _, rr := range c.AllowedBy {
		s.AllowedBy = append(s.AllowedBy, Rule{Policy: rr.Policy.String(), Field: fmt.Sprintf("spec.%s[%d]", rr.Direction, rr.Index)})
	}
	s.Tier = c.Tier.String()
	if r := c.ClusterRule; r != nil {
		s.ClusterRule = &ClusterRule{Policy: r.Policy, Tier: r.Tier.String(), Field: fmt.Sprintf("spec.%s[%d]", r.Direction, r.Index), Name: r.Name, Action: clusterAction(r.Action)}
	}
	s.Reason = reason(c)
	return s
}

// clusterAction is the API's word for a rule's action.
func clusterAction(a policy.Action) string {
	if a == policy.Next {
		return "Pass"
	}
	return a.String()
}

func reason(c policy.Check) string {
	dir := c.Direction.String()
	switch {
	case c.Unknown && c.Direction == policy.Egress:
		return "the source address is in this node's pod range but no known pod holds it: denied until weft knows its pod"
	case c.Unknown:
		return "the destination address is in this node's pod range but no known pod holds it: denied until weft knows its pod"
	case c.Pod == nil && c.Direction == policy.Egress:
		return "the source is not a pod, so no egress policy applies"
	case c.Pod == nil:
		return "the destination is not a pod, so no ingress policy applies"
	case c.Self:
		return "a pod's traffic to itself is always allowed"
	case c.FromNode:
		return "traffic from the pod's own node is always allowed"
	case c.ToNode:
		return "traffic to the pod's own node is always allowed"
	case !c.Enforced:
		return fmt.Sprintf("%s of %s is not enforced here (the pod runs on node %q)", dir, c.Pod.Key(), c.Pod.NodeName)
	case c.ClusterRule != nil && (c.Tier == policy.TierAdmin || c.Tier == policy.TierBaseline):
		r := c.ClusterRule
		verb := "denies"
		if c.Action == policy.Accept {
			verb = "accepts"
		}
		return fmt.Sprintf("%s tier: clusternetworkpolicy %s spec.%s[%d] %s it", r.Tier, r.Policy, r.Direction, r.Index, verb)
	case len(c.IsolatedBy) == 0:
		return fmt.Sprintf("not isolated: no policy selects it for %s", dir)
	case len(c.AllowedBy) == 0:
		return fmt.Sprintf("isolated by %s, and no %s rule allows it", joinRefs(c.IsolatedBy), dir)
	}
	var rules []string
	for _, rr := range c.AllowedBy {
		rules = append(rules, fmt.Sprintf("%s spec.%s[%d]", rr.Policy, rr.Direction, rr.Index))
	}
	return fmt.Sprintf("isolated by %s; allowed by %s", joinRefs(c.IsolatedBy), strings.Join(rules, ", "))
}

func joinRefs(refs []policy.PolicyRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

func (e Endpoint) String() string {
	if e.Pod == "" {
		return e.IP
	}
	return e.Pod + " " + e.IP
}

func portSuffix(r *Report) string {
	if r.Port == 0 {
		return ""
	}
	return ":" + strconv.Itoa(int(r.Port))
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s: %s connection from %s to %s%s\n", strings.ToUpper(r.Verdict), r.Protocol, r.From, r.To, portSuffix(r))
	for _, s := range []struct {
		name string
		side Side
	}{{"egress", r.Egress}, {"ingress", r.Ingress}} {
		verdict := "allowed"
		switch {
		case s.side.Audited:
			verdict = "BLOCKED, audited: its node logs it as would be blocked and lets it through"
		case !s.side.Allowed:
			verdict = "BLOCKED"
		}
		who := s.side.Pod
		if who == "" {
			who = map[string]string{"egress": r.From.IP, "ingress": r.To.IP}[s.name]
		}
		fmt.Fprintf(w, "  %s of %s: %s (%s)\n", s.name, who, verdict, s.side.Reason)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  warning: %s\n", p)
	}
}

// Summary is the one-line form used in logs, e.g. "TCP connection from x/b
// 10.32.0.7 to y/a 10.32.0.11:80 blocked: ingress of y/a isolated by
// y/deny-all, and no ingress rule allows it".
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s connection from %s to %s%s %s", r.Protocol, r.From, r.To, portSuffix(r), r.Verdict)
	var why []string
	for _, dir := range r.Blocked {
		s := r.Egress
		if dir == "ingress" {
			s = r.Ingress
		}
		why = append(why, fmt.Sprintf("%s of %s %s", dir, s.Pod, s.Reason))
	}
	if len(why) > 0 {
		b.WriteString(": " + strings.Join(why, "; "))
	}
	return b.String()
}
