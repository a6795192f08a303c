package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	opIn           = metav1.LabelSelectorOpIn
	opNotIn        = metav1.LabelSelectorOpNotIn
	opExists       = metav1.LabelSelectorOpExists
	opDoesNotExist = metav1.LabelSelectorOpDoesNotExist
)

// tierLabels labels y/b tier=web and z/c tier=db.
func tierLabels(m *Model) {
	m.SetPodLabel("y/b", "tier", "web")
	m.SetPodLabel("z/c", "tier", "db")
}

func selectorScenarios() []*Scenario {
	return []*Scenario{
		{
			Name:        "allow-from-same-namespace",
			Description: "A peer with only `podSelector: {}` means every pod of the policy's own namespace.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-x", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPods(everything())), nil)),
				}),
			},
			Probes: expect(xFromXOnly, tcp80, udp81v6),
		},
		{
			Name:        "pod-selector-peer-is-own-namespace",
			Description: "A podSelector peer without namespaceSelector matches pods of the policy's namespace only: y accepts y/a, not x/a or z/a.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "from-a", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPods(podSel("a"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   X   X   .   .   .
x/b   .   .   .   X   X   X   .   .   .
x/c   .   .   .   X   X   X   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   X   .   X   .   .   .
y/c   .   .   .   X   X   .   .   .   .
z/a   .   .   .   X   X   X   .   .   .
z/b   .   .   .   X   X   X   .   .   .
z/c   .   .   .   X   X   X   .   .   .
`, tcp80, tcp81v6),
		},
		{
			Name: "namespace-selector-everything",
			Description: "`namespaceSelector: {}` matches every pod of every namespace; with port TCP 80 it opens x/a " +
				"to everyone on TCP/80 only.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "all-namespaces-80", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(everything())), ports(port("TCP", 80)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, tcp80, tcp80v6),
				expect(xaIsolated, tcp81, udp80),
			),
		},
		{
			Name:        "namespace-selector-everything-with-pod-selector",
			Description: "`namespaceSelector: {}` with `podSelector: {pod: b}` in one peer matches pod b of every namespace.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-any-b", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(everything(), podSel("b"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   X   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   X   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, tcp80, udp80v6),
		},
		{
			Name:        "combined-namespace-and-pod-selector",
			Description: "namespaceSelector and podSelector in the same peer must both match: only y/b reaches x/a.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-yb", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(nsSel("y"), podSel("b"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   X   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   X   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   X   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6, udp81),
		},
		{
			Name: "separate-namespace-and-pod-peers",
			Description: "Two peers are alternatives: namespace y, or pod b of the policy's namespace: x/a accepts " +
				"y/a, y/b, y/c and x/b.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-y-or-b", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("y")), fromPods(podSel("b"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, tcp80, udp81v6),
		},
		{
			Name: "match-expressions-in",
			Description: "`pod In (a, b)` selects x/a and x/b; they accept only pods `pod In (c)` of namespaces " +
				"`ns In (y, z)`: y/c and z/c. x/c is not selected.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "in", networkingv1.NetworkPolicySpec{
					PodSelector: *exprSel(req(PodLabel, opIn, "a", "b")),
					Ingress: ingress(ingressRule(peers(fromPodsIn(
						exprSel(req(NamespaceLabel, opIn, "y", "z")),
						exprSel(req(PodLabel, opIn, "c")),
					)), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   .   .   .   .   .   .   .
x/b   X   .   .   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   X   X   .   .   .   .   .   .   .
y/b   X   X   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   X   X   .   .   .   .   .   .   .
z/b   X   X   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp81v6),
		},
		{
			Name: "match-expressions-not-in",
			Description: "`pod NotIn (a)` selects y/b and y/c; they accept namespaces `ns NotIn (x)`, that is y " +
				"and z.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "not-in", networkingv1.NetworkPolicySpec{
					PodSelector: *exprSel(req(PodLabel, opNotIn, "a")),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(exprSel(req(NamespaceLabel, opNotIn, "x")))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   X   X   .   .   .
x/b   .   .   .   .   X   X   .   .   .
x/c   .   .   .   .   X   X   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp80v6),
		},
		{
			Name: "match-expressions-exists",
			Description: "With y/b labelled tier=web and z/c tier=db, namespace x accepts only pods of any " +
				"namespace that have a tier label.",
			Setup: tierLabels,
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-tiered", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(everything(), exprSel(req("tier", opExists)))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6),
		},
		{
			Name: "match-expressions-does-not-exist",
			Description: "With z/c labelled tier=db, `tier DoesNotExist` selects z/a and z/b, which may send only " +
				"to namespace x; z/c is free.",
			Setup: tierLabels,
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "untiered-to-x", networkingv1.NetworkPolicySpec{
					PodSelector: *exprSel(req("tier", opDoesNotExist)),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromNamespaces(nsSel("x"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   X   X   X   .   X   X
z/b   .   .   .   X   X   X   X   .   X
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp81v6),
		},
		{
			Name: "namespace-labels",
			Description: "With y and z labelled team=blue, x accepts only team=blue namespaces; y/c accepts only " +
				"the namespace whose kubernetes.io/metadata.name is z (the label the API server sets).",
			Setup: func(m *Model) {
				m.SetNamespaceLabel("y", "team", "blue")
				m.SetNamespaceLabel("z", "team", "blue")
			},
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-blue", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(labelsSel("team", "blue"))), nil)),
				}),
				netpol("y", "c-from-z", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("c"),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(labelsSel("kubernetes.io/metadata.name", "z"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   X   .   .   .
x/b   X   .   X   .   .   X   .   .   .
x/c   X   X   .   .   .   X   .   .   .
y/a   .   .   .   .   .   X   .   .   .
y/b   .   .   .   .   .   X   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp81v6),
		},
		{
			Name: "match-labels-and-expressions-together",
			Description: "matchLabels and matchExpressions of one selector must all hold: with y/a and y/c " +
				"labelled role=db, {role: db} + `pod NotIn (c)` selects y/a only, which accepts only x/b " +
				"({pod: b} + `pod In (a, b)` in namespace x).",
			Setup: func(m *Model) {
				m.SetPodLabel("y/a", "role", "db")
				m.SetPodLabel("y/c", "role", "db")
			},
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "db", networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{
						MatchLabels:      map[string]string{"role": "db"},
						MatchExpressions: []metav1.LabelSelectorRequirement{req(PodLabel, opNotIn, "c")},
					},
					Ingress: ingress(ingressRule(peers(fromPodsIn(nsSel("x"), &metav1.LabelSelector{
						MatchLabels:      map[string]string{PodLabel: "b"},
						MatchExpressions: []metav1.LabelSelectorRequirement{req(PodLabel, opIn, "a", "b")},
					})), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   X   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   X   .   .   .   .   .
y/c   .   .   .   X   .   .   .   .   .
z/a   .   .   .   X   .   .   .   .   .
z/b   .   .   .   X   .   .   .   .   .
z/c   .   .   .   X   .   .   .   .   .
`, tcp80, udp80v6),
		},
		{
			Name:        "egress-to-selected-pods",
			Description: "x/b may send only to z/a (combined selectors) and x/c (podSelector of its own namespace).",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "b-egress", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromPodsIn(nsSel("z"), podSel("a")), fromPods(podSel("c"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   X   .   .   X   X   X   .   X   X
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp81v6, udp80),
		},
	}
}
