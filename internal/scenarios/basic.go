package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// Matrices that several scenarios share. Each is written by hand.
const (
	allAllowed = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`
	// Namespace x accepts nothing (but from each pod to itself).
	xIsolated = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`
	yIsolated = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   X   X   .   .   .
x/b   .   .   .   X   X   X   .   .   .
x/c   .   .   .   X   X   X   .   .   .
y/a   .   .   .   .   X   X   .   .   .
y/b   .   .   .   X   .   X   .   .   .
y/c   .   .   .   X   X   .   .   .   .
z/a   .   .   .   X   X   X   .   .   .
z/b   .   .   .   X   X   X   .   .   .
z/c   .   .   .   X   X   X   .   .   .
`
	zIsolated = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   X   X   X
x/b   .   .   .   .   .   .   X   X   X
x/c   .   .   .   .   .   .   X   X   X
y/a   .   .   .   .   .   .   X   X   X
y/b   .   .   .   .   .   .   X   X   X
y/c   .   .   .   .   .   .   X   X   X
z/a   .   .   .   .   .   .   .   X   X
z/b   .   .   .   .   .   .   X   .   X
z/c   .   .   .   .   .   .   X   X   .
`
	// Only x/a accepts nothing.
	xaIsolated = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   X   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   X   .   .   .   .   .   .   .   .
y/b   X   .   .   .   .   .   .   .   .
y/c   X   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`
	// Namespace x accepts only from namespace y.
	xFromYOnly = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`
	// Namespace x accepts only from itself.
	xFromXOnly = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`
)

func basicScenarios() []*Scenario {
	return []*Scenario{
		{
			Name:        "no-policies",
			Description: "Without a policy no pod is isolated: every connection is allowed, in both families and for every protocol.",
			Probes:      expect(allAllowed, tcp80, udp81v6, sctp80),
		},
		{
			Name: "deny-all-ingress",
			Description: "An empty podSelector selects every pod of x; without policyTypes the policy isolates ingress " +
				"(always) but not egress (it has no egress rules), and having no ingress rules it allows nothing in.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
			},
			Probes: expect(xIsolated, tcp80, tcp81v6, udp80, sctp81),
		},
		{
			Name:        "deny-all-ingress-empty-list",
			Description: "`ingress: []` with policyTypes [Ingress] is the same as no ingress rules: namespace x accepts nothing.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-all", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					PolicyTypes: types(typeIngress),
					Ingress:     []networkingv1.NetworkPolicyIngressRule{},
				}),
			},
			Probes: expect(xIsolated, tcp80, udp81v6),
		},
		{
			Name: "allow-all-ingress-empty-rule",
			Description: "`ingress: [{}]` is one rule with no peers and no ports: it allows everything. Policies are " +
				"additive, so it opens x again despite a deny-all policy; y/a is selected only by an allow-all policy.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
				netpol("x", "allow-all", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(networkingv1.NetworkPolicyIngressRule{}),
				}),
				netpol("y", "allow-all-to-a", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeIngress),
					Ingress:     ingress(networkingv1.NetworkPolicyIngressRule{}),
				}),
			},
			Probes: expect(allAllowed, tcp80, udp81, tcp81v6),
		},
		{
			Name:        "deny-all-egress",
			Description: "policyTypes [Egress] without egress rules: pods of x can send to nobody but still receive from everyone.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-egress", networkingv1.NetworkPolicySpec{PodSelector: *everything(), PolicyTypes: types(typeEgress)}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   X   X   X   X   X   X
x/b   X   .   X   X   X   X   X   X   X
x/c   X   X   .   X   X   X   X   X   X
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp80v6),
		},
		{
			Name:        "deny-all-both-directions",
			Description: "policyTypes [Ingress, Egress] without rules isolates namespace z completely.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything(), PolicyTypes: types(typeIngress, typeEgress)}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   X   X   X
x/b   .   .   .   .   .   .   X   X   X
x/c   .   .   .   .   .   .   X   X   X
y/a   .   .   .   .   .   .   X   X   X
y/b   .   .   .   .   .   .   X   X   X
y/c   .   .   .   .   .   .   X   X   X
z/a   X   X   X   X   X   X   .   X   X
z/b   X   X   X   X   X   X   X   .   X
z/c   X   X   X   X   X   X   X   X   .
`, tcp80, tcp81v6, udp81),
		},
		{
			Name: "egress-rules-imply-egress-type",
			Description: "Without policyTypes, a policy with egress rules isolates egress too (and ingress always): " +
				"x/a receives nothing and sends only to x/b.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "a-to-b", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Egress:      egress(egressRule(peers(fromPods(podSel("b"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   X   X   X   X   X   X   X
x/b   X   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   X   .   .   .   .   .   .   .   .
y/b   X   .   .   .   .   .   .   .   .
y/c   X   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, tcp80, udp81, tcp80v6),
		},
		{
			Name: "ingress-type-ignores-egress-rules",
			Description: "policyTypes [Ingress] is explicit: the egress rules of the policy are ignored and egress stays " +
				"open; namespace x accepts only from namespace y.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "ingress-only", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					PolicyTypes: types(typeIngress),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("y"))), nil)),
					Egress:      egress(egressRule(peers(fromPods(podSel("b"))), nil)),
				}),
			},
			Probes: expect(xFromYOnly, tcp80, udp80v6),
		},
		{
			Name: "egress-type-ignores-ingress-rules",
			Description: "policyTypes [Egress] is explicit: ingress stays open whatever the ingress rules say; pods " +
				"of x send only to namespace y.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "egress-only", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					PolicyTypes: types(typeEgress),
					Ingress:     ingress(ingressRule(peers(fromPods(podSel("c"))), nil)),
					Egress:      egress(egressRule(peers(fromNamespaces(nsSel("y"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   X   X   X
x/b   X   .   X   .   .   .   X   X   X
x/c   X   X   .   .   .   .   X   X   X
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp81v6),
		},
		{
			Name:        "allow-all-egress-empty-rule",
			Description: "`egress: [{}]` allows every destination while ingress of y stays closed.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "egress-open", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					PolicyTypes: types(typeIngress, typeEgress),
					Egress:      egress(networkingv1.NetworkPolicyEgressRule{}),
				}),
			},
			Probes: expect(yIsolated, tcp80, udp81v6),
		},
		{
			Name: "ingress-and-egress",
			Description: "Without policyTypes and with both kinds of rules, y accepts only from z and sends only to x; " +
				"a connection needs the source's egress and the destination's ingress, so y cannot reach y.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "both", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("z"))), nil)),
					Egress:      egress(egressRule(peers(fromNamespaces(nsSel("x"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   X   X   .   .   .
x/b   .   .   .   X   X   X   .   .   .
x/c   .   .   .   X   X   X   .   .   .
y/a   .   .   .   .   X   X   X   X   X
y/b   .   .   .   X   .   X   X   X   X
y/c   .   .   .   X   X   .   X   X   X
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6, udp81),
		},
		{
			Name: "policies-are-additive",
			Description: "x/a is selected by three policies and accepts what any of them allows (x/b, z/c, x/c); " +
				"x/b and x/c are selected by one and accept only x/c.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "a-from-b", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromPods(podSel("b"))), nil)),
				}),
				netpol("x", "a-from-zc", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(nsSel("z"), podSel("c"))), nil)),
				}),
				netpol("x", "all-from-c", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPods(podSel("c"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   .   .   X   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   .   X   X   .   .   .   .   .   .
`, tcp80, udp80, tcp81v6),
		},
		{
			Name:        "policy-selects-no-pod",
			Description: "Policies whose podSelector matches no pod isolate nothing.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "nobody", networkingv1.NetworkPolicySpec{PodSelector: *podSel("nobody"), PolicyTypes: types(typeIngress, typeEgress)}),
				netpol("y", "nobody-expr", networkingv1.NetworkPolicySpec{
					PodSelector: *exprSel(req(PodLabel, opIn, "d", "e")),
					PolicyTypes: types(typeIngress, typeEgress),
				}),
			},
			Probes: expect(allAllowed, tcp80, udp81v6),
		},
		{
			Name: "same-node-checked-on-both-sides",
			Description: "x/a, x/b and y/b share node-1. x/a may send only within x, x/b accepts only from y, y/b may " +
				"send only to z: x/a->x/b passes egress but not ingress, y/b->x/b passes ingress but not egress.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "a-egress-in-x", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromPods(everything())), nil)),
				}),
				netpol("x", "b-from-y", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("y"))), nil)),
				}),
				netpol("y", "b-egress-to-z", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromNamespaces(nsSel("z"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   .   X   X   X   X   X   X
x/b   .   .   .   .   .   .   .   .   .
x/c   .   X   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   X   X   X   X   .   X   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   X   .   .   .   .   .   .   .
z/b   .   X   .   .   .   .   .   .   .
z/c   .   X   .   .   .   .   .   .   .
`, tcp80, udp81, tcp80v6),
		},
		{
			Name: "finished-pod-address-reused",
			Description: "x/old has finished and y/a now holds its addresses. z accepts only pod=old of x, and a " +
				"policy isolates x/old for egress: neither may touch y/a, so z accepts nothing and y/a sends freely.",
			Setup: func(m *Model) { m.AddFinishedPod("x", "old", Node1, "y/a") },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "from-old", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(nsSel("x"), podSel("old"))), nil)),
				}),
				netpol("x", "old-deny-egress", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("old"),
					PolicyTypes: types(typeEgress),
				}),
			},
			Probes: expect(zIsolated, tcp80, udp81v6),
		},
		{
			Name: "single-stack-pod",
			Description: "y/d has an IPv4 address only. x accepts y/d (by selectors) and fd00::3:0/112 (namespace " +
				"z over IPv6): over IPv4 only y/d gets in, over IPv6 only z, and y/d is in no IPv6 probe.",
			Setup: func(m *Model) { m.AddSingleStackPod("y", "d", Node2, IPv4) },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-yd-or-z6", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(nsSel("y"), podSel("d")), fromCIDR("fd00::3:0/112")), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c y/d z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .   .
y/d   .   .   .   .   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .   .
`, tcp80, udp81),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80v6, udp81v6),
			),
		},
		{
			Name: "all-pods-on-one-node",
			Description: "Every pod runs on node-1, so every connection is checked on one node, egress and ingress " +
				"alike: x talks only with y, in both directions.",
			Setup: func(m *Model) {
				for _, ns := range StandardNamespaces {
					m.MovePod(ns+"/c", Node1)
				}
			},
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "only-y", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("y"))), nil)),
					Egress:      egress(egressRule(peers(fromNamespaces(nsSel("y"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   X   X   X
x/b   X   .   X   .   .   .   X   X   X
x/c   X   X   .   .   .   .   X   X   X
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`, tcp80, udp80v6),
		},
	}
}
