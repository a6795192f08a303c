package manifest

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
)

// Change is one object a what-if replaced or added.
type Change struct {
	Kind string // NetworkPolicy, ClusterNetworkPolicy, Namespace, Pod
	Name string // namespace/name, or name for cluster-scoped kinds
	// Replaced: an object of that kind and name was there; otherwise added.
	Replaced bool
}

func (c Change) String() string {
	verb := "added"
	if c.Replaced {
		verb = "replaced"
	}
	return fmt.Sprintf("%s %s %s", c.Kind, c.Name, verb)
}

// WhatIf returns o with the objects of changes put on top: each policy
// (NetworkPolicy, ClusterNetworkPolicy) replaces the one of the same kind
// and name or is added; Namespaces and Pods replace existing ones (to try
// other labels) but may not be new, so that o and the result hold the same
// pods. o is not modified; objects are shared, not copied.
func (o *Objects) WhatIf(changes *Objects) (*Objects, []Change, error) {
	out := &Objects{
		Namespaces:      slices.Clone(o.Namespaces),
		Pods:            slices.Clone(o.Pods),
		Policies:        slices.Clone(o.Policies),
		ClusterPolicies: slices.Clone(o.ClusterPolicies),
		Nodes:           o.Nodes,
		Ignored:         o.Ignored,
	}
	var done []Change
	if len(changes.Nodes) > 0 {
		return nil, nil, fmt.Errorf("what-if files may not hold Nodes (Node %s): change policies, namespaces or pods", changes.Nodes[0].Name)
	}
	for _, ns := range changes.Namespaces {
		i := slices.IndexFunc(out.Namespaces, func(x *corev1.Namespace) bool { return x.Name == ns.Name })
		if i < 0 {
			return nil, nil, fmt.Errorf("what-if files may change namespaces, not add them: namespace %s is not in the cluster", ns.Name)
		}
		out.Namespaces[i] = ns
		done = append(done, Change{Kind: "Namespace", Name: ns.Name, Replaced: true})
	}
	for _, p := range changes.Pods {
		i := slices.IndexFunc(out.Pods, func(x *corev1.Pod) bool { return x.Namespace == p.Namespace && x.Name == p.Name })
		if i < 0 {
			return nil, nil, fmt.Errorf("what-if files may change pods, not add them: pod %s/%s is not in the cluster", p.Namespace, p.Name)
		}
		out.Pods[i] = p
		done = append(done, Change{Kind: "Pod", Name: p.Namespace + "/" + p.Name, Replaced: true})
	}
	for _, np := range changes.Policies {
		i := slices.IndexFunc(out.Policies, func(x *networkingv1.NetworkPolicy) bool {
			return x.Namespace == np.Namespace && x.Name == np.Name
		})
		c := Change{Kind: "NetworkPolicy", Name: np.Namespace + "/" + np.Name, Replaced: i >= 0}
		if i >= 0 {
			out.Policies[i] = np
		} else {
			out.Policies = append(out.Policies, np)
		}
		done = append(done, c)
	}
	for _, cnp := range changes.ClusterPolicies {
		i := slices.IndexFunc(out.ClusterPolicies, func(x *npav1alpha2.ClusterNetworkPolicy) bool { return x.Name == cnp.Name })
		c := Change{Kind: "ClusterNetworkPolicy", Name: cnp.Name, Replaced: i >= 0}
		if i >= 0 {
			out.ClusterPolicies[i] = cnp
		} else {
			out.ClusterPolicies = append(out.ClusterPolicies, cnp)
		}
		done = append(done, c)
	}
	return out, done, nil
}
