package scenarios

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestCatalog(t *testing.T) {
	all := All()
	if len(all) < 40 {
		t.Errorf("%d scenarios, want at least 40", len(all))
	}
	names := map[string]bool{}
	for _, s := range all {
		if s.Name == "" || names[s.Name] {
			t.Errorf("scenario name %q empty or repeated", s.Name)
		}
		names[s.Name] = true
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
		if err := s.Validate(s.Model()); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
		policies := map[string]bool{}
		for _, np := range s.Policies {
			key := np.Namespace + "/" + np.Name
			if np.Namespace == "" || np.Name == "" || policies[key] {
				t.Errorf("%s: policy %q without namespace or name, or repeated", s.Name, key)
			}
			policies[key] = true
		}
		probes := map[ProbeKey]bool{}
		for _, p := range s.Probes {
			if probes[p.ProbeKey] {
				t.Errorf("%s: probe %s twice", s.Name, p.ProbeKey)
			}
			probes[p.ProbeKey] = true
		}
		if len(s.Probes) < 2 {
			t.Errorf("%s: %d probes, want several", s.Name, len(s.Probes))
		}
	}
	if ByName("deny-all-ingress") == nil || ByName("no-such-scenario") != nil {
		t.Errorf("ByName does not find exactly the catalogue's scenarios")
	}
}

func TestAllReturnsFreshScenarios(t *testing.T) {
	a := ByName("deny-all-ingress")
	a.Policies[0].Name = "changed"
	a.Probes[0].Expect.Set("y/a", "x/a", true)
	b := ByName("deny-all-ingress")
	if b.Policies[0].Name == "changed" {
		t.Errorf("a change to a scenario's policy shows in the next All()")
	}
	if allowed, _ := b.Probes[0].Expect.Allowed("y/a", "x/a"); allowed {
		t.Errorf("a change to a scenario's matrix shows in the next All()")
	}
	// Probes sharing one hand-written matrix do not share its cells.
	if got, _ := a.Probes[1].Expect.Allowed("y/a", "x/a"); got {
		t.Errorf("probes of one scenario share a matrix")
	}
}

func TestValidateRejectsIncompleteMatrices(t *testing.T) {
	for name, matrix := range map[string]string{
		"missing pod":      "x/a x/b\nx/a . .\nx/b . .",
		"unknown endpoint": allAllowed + "node-9 . . . . . . . . .",
	} {
		s := &Scenario{Name: name, Probes: expect(matrix, tcp80)}
		if err := s.Validate(NewModel()); err == nil {
			t.Errorf("%s: Validate accepted the matrix", name)
		}
	}
	names := []string{"x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c", "x/d"}
	text := strings.Join(names, " ") + "\n"
	for _, n := range names {
		text += n + " " + strings.Repeat(".", len(names)) + "\n"
	}
	single := &Scenario{
		Name:   "single-stack pod in an IPv6 probe",
		Setup:  func(m *Model) { m.AddSingleStackPod("x", "d", Node1, IPv4) },
		Probes: expect(text, tcp80v6),
	}
	if err := single.Validate(single.Model()); err == nil || !strings.Contains(err.Error(), "no IPv6 address") {
		t.Errorf("Validate of a matrix naming a pod without an address of the family: %v", err)
	}
	if err := (&Scenario{Name: "no probes"}).Validate(NewModel()); err == nil {
		t.Errorf("Validate accepted a scenario without probes")
	}
}

// TestCatalogCoversEveryFeature reads the catalogue's policies, models and
// probes and requires every feature of the issue to appear in at least one
// scenario.
func TestCatalogCoversEveryFeature(t *testing.T) {
	required := []string{
		"policyTypes defaulted without egress rules", "policyTypes defaulted with egress rules",
		"explicit policyTypes Ingress", "explicit policyTypes Egress", "explicit policyTypes Ingress+Egress",
		"empty podSelector", "namespaceSelector {}", "namespaceSelector {} with podSelector",
		"namespaceSelector with podSelector", "podSelector peer alone",
		"operator In", "operator NotIn", "operator Exists", "operator DoesNotExist", "matchLabels with matchExpressions",
		"ingress: []", "ingress: [{}]", "egress: [{}]",
		"peers absent", "peers empty", "ports absent", "ports empty",
		"ipBlock", "ipBlock except", "ipBlock IPv6", "ipBlock in egress",
		"numeric port", "named port", "named port in egress", "named port numbers differ between pods",
		"named port missing on a pod", "endPort", "protocol without port", "protocol defaults to TCP",
		"policy protocol TCP", "policy protocol UDP", "policy protocol SCTP",
		"probe TCP", "probe UDP", "probe SCTP", "probe IPv4", "probe IPv6", "pods with two addresses", "single-stack pod",
		"pods on two nodes", "pods on one node", "same-node flow isolated at both ends",
		"host-network pod", "finished pod with reused address", "node traffic", "several policies", "bad input",
	}
	covered := map[string][]string{}
	for _, s := range All() {
		for f := range features(s) {
			covered[f] = append(covered[f], s.Name)
		}
	}
	var missing []string
	for _, f := range required {
		if len(covered[f]) == 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		t.Errorf("no scenario covers: %v", missing)
	}
	if testing.Verbose() {
		keys := make([]string, 0, len(covered))
		for k := range covered {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("%-45s %d scenarios", k, len(covered[k]))
		}
	}
}

func isEmpty(s *metav1.LabelSelector) bool {
	return s != nil && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// features lists what a scenario exercises, read from its objects.
func features(s *Scenario) map[string]bool {
	f := map[string]bool{}
	selector := func(sel *metav1.LabelSelector) {
		if sel == nil {
			return
		}
		for _, r := range sel.MatchExpressions {
			f["operator "+string(r.Operator)] = true
		}
		if len(sel.MatchLabels) > 0 && len(sel.MatchExpressions) > 0 {
			f["matchLabels with matchExpressions"] = true
		}
	}
	peerList := func(peers []networkingv1.NetworkPolicyPeer, egress bool) {
		switch {
		case peers == nil:
			f["peers absent"] = true
		case len(peers) == 0:
			f["peers empty"] = true
		}
		for _, p := range peers {
			selector(p.PodSelector)
			selector(p.NamespaceSelector)
			switch {
			case p.IPBlock != nil:
				f["ipBlock"] = true
				if len(p.IPBlock.Except) > 0 {
					f["ipBlock except"] = true
				}
				if pfx, err := netip.ParsePrefix(p.IPBlock.CIDR); err == nil && pfx.Addr().Is6() {
					f["ipBlock IPv6"] = true
				}
				if egress {
					f["ipBlock in egress"] = true
				}
			case isEmpty(p.NamespaceSelector) && p.PodSelector == nil:
				f["namespaceSelector {}"] = true
			case isEmpty(p.NamespaceSelector) && p.PodSelector != nil:
				f["namespaceSelector {} with podSelector"] = true
			case p.NamespaceSelector != nil && p.PodSelector != nil:
				f["namespaceSelector with podSelector"] = true
			case p.NamespaceSelector == nil && p.PodSelector != nil:
				f["podSelector peer alone"] = true
			}
		}
	}
	portList := func(ports []networkingv1.NetworkPolicyPort, egress bool) {
		switch {
		case ports == nil:
			f["ports absent"] = true
		case len(ports) == 0:
			f["ports empty"] = true
		}
		for _, p := range ports {
			if p.Protocol == nil {
				f["protocol defaults to TCP"] = true
			} else {
				f["policy protocol "+string(*p.Protocol)] = true
			}
			switch {
			case p.Port == nil:
				f["protocol without port"] = true
			case p.Port.Type == intstr.String:
				f["named port"] = true
				if egress {
					f["named port in egress"] = true
				}
			default:
				f["numeric port"] = true
			}
			if p.EndPort != nil {
				f["endPort"] = true
			}
		}
	}

	isolates := map[string][2]bool{} // pod key → ingress, egress isolated (roughly: by explicit or defaulted types)
	m := s.Model()
	if len(s.Policies) > 1 {
		f["several policies"] = true
	}
	for _, np := range s.Policies {
		spec := np.Spec
		hasEgressRules := len(spec.Egress) > 0
		types := slices.Clone(spec.PolicyTypes)
		if types == nil {
			if hasEgressRules {
				f["policyTypes defaulted with egress rules"] = true
				types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
			} else {
				f["policyTypes defaulted without egress rules"] = true
				types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			}
		} else {
			names := fmt.Sprint(types)
			switch names {
			case "[Ingress]":
				f["explicit policyTypes Ingress"] = true
			case "[Egress]":
				f["explicit policyTypes Egress"] = true
			case "[Ingress Egress]", "[Egress Ingress]":
				f["explicit policyTypes Ingress+Egress"] = true
			}
		}
		if isEmpty(&spec.PodSelector) {
			f["empty podSelector"] = true
		}
		selector(&spec.PodSelector)
		if spec.Ingress != nil && len(spec.Ingress) == 0 {
			f["ingress: []"] = true
		}
		for _, r := range spec.Ingress {
			if r.From == nil && r.Ports == nil {
				f["ingress: [{}]"] = true
			}
			peerList(r.From, false)
			portList(r.Ports, false)
		}
		for _, r := range spec.Egress {
			if r.To == nil && r.Ports == nil {
				f["egress: [{}]"] = true
			}
			peerList(r.To, true)
			portList(r.Ports, true)
		}
		// Which model pods the policy selects (for the same-node feature).
		sel, err := metav1.LabelSelectorAsSelector(&spec.PodSelector)
		if err != nil {
			continue
		}
		for _, p := range m.Pods {
			if p.Namespace != np.Namespace || p.Spec.HostNetwork || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			iso := isolates[p.Namespace+"/"+p.Name]
			for _, t := range types {
				iso[0] = iso[0] || t == networkingv1.PolicyTypeIngress
				iso[1] = iso[1] || t == networkingv1.PolicyTypeEgress
			}
			isolates[p.Namespace+"/"+p.Name] = iso
		}
	}
	// An egress-isolated pod and a different ingress-isolated pod on one node.
	for _, a := range m.Pods {
		for _, b := range m.Pods {
			ka, kb := a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name
			if ka != kb && a.Spec.NodeName == b.Spec.NodeName && isolates[ka][1] && isolates[kb][0] {
				f["same-node flow isolated at both ends"] = true
			}
		}
	}

	nodes := map[string]bool{}
	portNumbers := map[string]map[int32]bool{} // name/protocol → numbers
	portNamesOnPods := map[string]int{}
	allDual := true
	for _, p := range m.Pods {
		nodes[p.Spec.NodeName] = true
		if p.Spec.HostNetwork {
			f["host-network pod"] = true
		}
		if p.Status.Phase == corev1.PodSucceeded {
			f["finished pod with reused address"] = true
		}
		if len(p.Status.PodIPs) != 2 {
			allDual = false
			f["single-stack pod"] = true
		}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == "" {
					continue
				}
				k := cp.Name + "/" + string(cp.Protocol)
				if portNumbers[k] == nil {
					portNumbers[k] = map[int32]bool{}
				}
				portNumbers[k][cp.ContainerPort] = true
				portNamesOnPods[k]++
			}
		}
	}
	if allDual {
		f["pods with two addresses"] = true
	}
	if len(nodes) >= 2 {
		f["pods on two nodes"] = true
	} else {
		f["pods on one node"] = true
	}
	for k, numbers := range portNumbers {
		if len(numbers) > 1 {
			f["named port numbers differ between pods"] = true
		}
		if portNamesOnPods[k] < len(m.Pods) {
			f["named port missing on a pod"] = true
		}
	}
	for _, p := range s.Probes {
		f["probe "+string(p.Protocol)] = true
		f["probe "+p.Family.String()] = true
		for _, name := range slices.Concat(p.Expect.From, p.Expect.To) {
			if e, ok := m.Endpoint(name); ok && e.Kind == NodeEndpoint {
				f["node traffic"] = true
			}
		}
	}
	if len(s.Errors) > 0 {
		f["bad input"] = true
	}
	return f
}
