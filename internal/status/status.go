// Package status is what `weft status` shows: what one node enforces now,
// built by the running daemon from the ruleset it applied and served over
// its local HTTP endpoint (GET /status, with ?verify=1 the kernel read back
// and compared), and the text form the command prints.
package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Report is the daemon's answer to GET /status.
type Report struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	Backend string `json:"backend"`
	// Mode is the node's --mode, enforce or audit (a namespace's
	// weft.dev/enforcement annotation overrides it for its pods).
	Mode string `json:"mode,omitempty"`
	// Ready and Reason are /readyz's answer.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// LastSync is when the view was last found enforced (a sync
	// succeeded); LastApply when the kernel was last changed.
	LastSync  time.Time `json:"lastSync,omitzero"`
	LastApply time.Time `json:"lastApply,omitzero"`
	// SyncFailures counts syncs failed in a row, LastError the latest.
	SyncFailures int    `json:"syncFailures,omitempty"`
	LastError    string `json:"lastError,omitempty"`
	// PolicyErrors are the parts of policies weft cannot understand.
	PolicyErrors []string `json:"policyErrors,omitempty"`
	Counts       Counts   `json:"counts"`
	// Pods are the node's local pods weft knows, by name.
	Pods []Pod `json:"pods"`
	// Verify is set when asked for (?verify=1).
	Verify *Verify `json:"verify,omitempty"`
	// Kernel is what the kernel holds for the addresses asked for
	// (?addr=IP, repeated), read back from the backend.
	Kernel []backend.AddressView `json:"kernel,omitempty"`
}

// Counts are the sizes of the ruleset in force.
type Counts struct {
	LocalPods int `json:"localPods"`
	Groups    int `json:"groups"`
	Chains    int `json:"chains"`
	Rules     int `json:"rules"`
	Sets      int `json:"sets"`
	Elements  int `json:"elements"`
}

// Pod is one local pod and what isolates it.
type Pod struct {
	Pod   string   `json:"pod"`
	Addrs []string `json:"addrs"`
	// Ingress and Egress are nil where no policy applies to the direction.
	Ingress *Isolation `json:"ingress,omitempty"`
	Egress  *Isolation `json:"egress,omitempty"`
}

// Isolation is the group a pod's direction is dispatched to and the
// policies (NetworkPolicies "namespace/name", cluster tiers) it walks.
type Isolation struct {
	Group    string   `json:"group"`
	Policies []string `json:"policies"`
	// Audit says the direction is audited (weft run --mode audit, or the
	// namespace's weft.dev/enforcement annotation): what policy blocks is
	// logged and let through.
	Audit bool `json:"audit,omitempty"`
}

// Verify is what reading the kernel back found.
type Verify struct {
	At    time.Time       `json:"at"`
	Drift []backend.Drift `json:"drift"`
	Error string          `json:"error,omitempty"`
}

// Build makes the report of what rs (compiled from snap) enforces on node.
// Pods are the local pods the snapshot knows with an address; a pod in no
// group of a direction is not isolated there.
func Build(node string, snap *policy.Snapshot, rs *ir.Ruleset) Report {
	r := Report{Node: node, Pods: []Pod{}}
	if snap != nil {
		for _, e := range snap.Errors() {
			r.PolicyErrors = append(r.PolicyErrors, e.Error())
		}
	}
	if rs == nil {
		return r
	}
	r.Counts = Counts{Groups: len(rs.Groups), Chains: len(rs.Chains), Sets: len(rs.Sets)}
	for i := range rs.Chains {
		r.Counts.Rules += len(rs.Chains[i].Rules)
	}
	for i := range rs.Sets {
		r.Counts.Elements += rs.Sets[i].Len()
	}
	pods := map[string]*Pod{}
	get := func(name string) *Pod {
		if p := pods[name]; p != nil {
			return p
		}
		p := &Pod{Pod: name}
		pods[name] = p
		return p
	}
	for i := range rs.Groups {
		g := &rs.Groups[i]
		iso := &Isolation{Group: g.Name, Policies: slices.Clone(g.Policies), Audit: g.Audit}
		if iso.Policies == nil {
			iso.Policies = []string{}
		}
		for _, m := range g.Members {
			p := get(m.Pod)
			if !slices.Contains(p.Addrs, m.Addr.String()) {
				p.Addrs = append(p.Addrs, m.Addr.String())
			}
			if len(g.Policies) == 0 {
				continue // the open group: known, not isolated
			}
			if g.Direction == ir.Ingress {
				p.Ingress = iso
			} else {
				p.Egress = iso
			}
		}
	}
	if snap != nil {
		for _, pod := range snap.Pods {
			if policy.IsLocal(pod, node) && len(pod.IPs) > 0 {
				p := get(pod.Key())
				for _, a := range pod.IPs {
					if !slices.Contains(p.Addrs, a.String()) {
						p.Addrs = append(p.Addrs, a.String())
					}
				}
			}
		}
	}
	for _, p := range pods {
		r.Pods = append(r.Pods, *p)
	}
	slices.SortFunc(r.Pods, func(a, b Pod) int { return strings.Compare(a.Pod, b.Pod) })
	r.Counts.LocalPods = len(r.Pods)
	return r
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	state := "ready"
	if !r.Ready {
		state = "NOT READY: " + r.Reason
	}
	mode := ""
	if r.Mode == "audit" {
		mode = ", audit mode (what policy blocks is logged and let through)"
	}
	fmt.Fprintf(w, "node %s: weft %s, %s backend%s, %s\n", r.Node, r.Version, r.Backend, mode, state)
	fmt.Fprintf(w, "last sync %s, last change applied %s\n", ago(r.LastSync), ago(r.LastApply))
	if r.SyncFailures > 0 {
		fmt.Fprintf(w, "%d syncs failed in a row; the rules applied before stay in place: %s\n", r.SyncFailures, r.LastError)
	}
	c := r.Counts
	fmt.Fprintf(w, "in force: %d local pods, %d groups, %d chains, %d rules, %d sets, %d set elements\n",
		c.LocalPods, c.Groups, c.Chains, c.Rules, c.Sets, c.Elements)
	for _, e := range r.PolicyErrors {
		fmt.Fprintf(w, "policy error (fails closed): %s\n", e)
	}
	if len(r.Pods) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POD\tADDRESSES\tINGRESS POLICIES\tEGRESS POLICIES")
		for _, p := range r.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Pod, strings.Join(p.Addrs, ","), p.Ingress.text(), p.Egress.text())
		}
		tw.Flush()
	}
	if v := r.Verify; v != nil {
		fmt.Fprintln(w)
		switch {
		case v.Error != "":
			fmt.Fprintf(w, "verify: could not compare the kernel with weft's rules: %s\n", v.Error)
		case len(v.Drift) == 0:
			fmt.Fprintln(w, "verify: the kernel holds exactly what weft applied")
		default:
			fmt.Fprintf(w, "verify: %d differences between the kernel and what weft applied:\n", len(v.Drift))
			for _, d := range v.Drift {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
}

func (i *Isolation) text() string {
	if i == nil {
		return "- (open)"
	}
	if i.Audit {
		return strings.Join(i.Policies, ",") + " (audit)"
	}
	return strings.Join(i.Policies, ",")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), time.Since(t).Round(time.Millisecond))
}
