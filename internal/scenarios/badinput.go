package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Policies the API server would reject (or a newer API might accept) but that
// can still reach weft: from an older API server, a file, a CRD conversion.
// weft must never open traffic because of them: a broken policy still
// isolates what it selects, and its broken rule allows nothing.

func badInputScenarios() []*Scenario {
	return []*Scenario{
		{
			Name: "bad-cidr-isolates",
			Description: "The first rule's CIDR does not parse: that rule allows nothing, the second rule still " +
				"lets namespace y in, and x stays isolated.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "bad-cidr", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress: ingress(
						ingressRule(peers(fromCIDR("10.32.0.0/33")), nil),
						ingressRule(peers(fromNamespaces(nsSel("y"))), nil),
					),
				}),
			},
			Errors: []string{"x/bad-cidr: spec.ingress[0].from[0].ipBlock.cidr"},
			Probes: expect(xFromYOnly, tcp80, tcp80v6, udp81),
		},
		{
			Name: "bad-except-isolates",
			Description: "An except outside its CIDR breaks the first rule, which would otherwise open x/a to " +
				"10.32.0.0/16; the second rule still opens UDP/81 to everyone.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "bad-except", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress: ingress(
						ingressRule(peers(fromCIDR("10.32.0.0/16", "10.33.0.0/24")), nil),
						ingressRule(nil, ports(port("UDP", 81))),
					),
				}),
			},
			Errors: []string{"x/bad-except: spec.ingress[0].from[0].ipBlock.except[0]"},
			Probes: probes(
				expect(xaIsolated, tcp80, udp80, tcp80v6),
				expect(allAllowed, udp81, udp81v6),
			),
		},
		{
			Name: "bad-selector-operator",
			Description: "An unknown operator in spec.podSelector: weft cannot tell which pods the policy means, so " +
				"it isolates every pod of y in both directions and allows nothing. An unknown operator in a peer " +
				"breaks only that rule: z/a still accepts namespace x.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "bad-operator", networkingv1.NetworkPolicySpec{
					PodSelector: *exprSel(req(PodLabel, metav1.LabelSelectorOperator("Matches"), "a")),
					Ingress:     ingress(networkingv1.NetworkPolicyIngressRule{}),
				}),
				netpol("z", "bad-peer-operator", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress: ingress(
						ingressRule(peers(fromPods(exprSel(req(PodLabel, metav1.LabelSelectorOperator("Near"), "b")))), nil),
						ingressRule(peers(fromNamespaces(nsSel("x"))), nil),
					),
				}),
			},
			Errors: []string{
				"y/bad-operator: spec.podSelector",
				"z/bad-peer-operator: spec.ingress[0].from[0].podSelector",
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   X   X   .   .   .
x/b   .   .   .   X   X   X   .   .   .
x/c   .   .   .   X   X   X   .   .   .
y/a   X   X   X   .   X   X   X   X   X
y/b   X   X   X   X   .   X   X   X   X
y/c   X   X   X   X   X   .   X   X   X
z/a   .   .   .   X   X   X   .   .   .
z/b   .   .   .   X   X   X   X   .   .
z/c   .   .   .   X   X   X   X   .   .
`, tcp80, udp81v6),
		},
		{
			Name: "bad-protocol-and-port",
			Description: "Rule 0 names protocol ICMP, rule 1 port 70000: both allow nothing. Rule 2 still opens " +
				"UDP/81 of x to everyone.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "bad-ports", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress: ingress(
						ingressRule(nil, ports(port("ICMP", 80))),
						ingressRule(nil, ports(port("TCP", 70000))),
						ingressRule(nil, ports(port("UDP", 81))),
					),
				}),
			},
			Errors: []string{
				"x/bad-ports: spec.ingress[0].ports[0].protocol",
				"x/bad-ports: spec.ingress[1].ports[0].port",
			},
			Probes: probes(
				expect(xIsolated, tcp80, udp80, tcp80v6),
				expect(allAllowed, udp81, udp81v6),
			),
		},
		{
			Name: "bad-endport-egress",
			Description: "An egress rule whose endPort is below its port allows nothing: y/a, isolated for " +
				"egress, may send to nobody.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "bad-endport", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(nil, ports(portRange("TCP", 81, 80)))),
				}),
			},
			Errors: []string{"y/bad-endport: spec.egress[0].ports[0].endPort"},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   X   X   X   X   X
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp81, tcp81v6),
		},
	}
}
