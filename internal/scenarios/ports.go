package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// swapTCPNames makes y/b call its TCP port 81 serve-80-tcp and its TCP port
// 80 serve-81-tcp: the same names stand for other numbers than on every other pod.
func swapTCPNames(m *Model) {
	m.SetNamedPort("y/b", "serve-80-tcp", 81)
	m.SetNamedPort("y/b", "serve-81-tcp", 80)
}

// Namespaces x and y accept nothing.
const xyIsolated = `
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   X   X   X   .   .   .
x/b   X   .   X   X   X   X   .   .   .
x/c   X   X   .   X   X   X   .   .   .
y/a   X   X   X   .   X   X   .   .   .
y/b   X   X   X   X   .   X   .   .   .
y/c   X   X   X   X   X   .   .   .   .
z/a   X   X   X   X   X   X   .   .   .
z/b   X   X   X   X   X   X   .   .   .
z/c   X   X   X   X   X   X   .   .   .
`

func portScenarios() []*Scenario {
	return []*Scenario{
		{
			Name: "numeric-port-default-protocol",
			Description: "A port without protocol is TCP, and a rule without `from` allows every peer: x accepts " +
				"TCP/80 from everyone, and neither TCP/81 nor UDP/80.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "tcp-80", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(port("", 80)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, tcp80, tcp80v6),
				expect(xIsolated, tcp81, udp80, udp80v6),
			),
		},
		{
			Name:        "udp-port",
			Description: "x/a accepts UDP/81 only.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "udp-81", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(nil, ports(port("UDP", 81)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, udp81, udp81v6),
				expect(xaIsolated, udp80, tcp81),
			),
		},
		{
			Name:        "protocol-without-port",
			Description: "A port entry with a protocol and no port matches every port of that protocol: x/a accepts all UDP.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "all-udp", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(nil, ports(anyPort("UDP")))),
				}),
			},
			Probes: probes(
				expect(allAllowed, udp80, udp81, udp81v6),
				expect(xaIsolated, tcp80, sctp80),
			),
		},
		{
			Name:        "sctp-port",
			Description: "x accepts SCTP/80 only.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "sctp-80", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(port("SCTP", 80)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, sctp80),
				expect(xIsolated, sctp81, tcp80),
			),
		},
		{
			Name: "empty-peers-list",
			Description: "`from: []` and `to: []` are the same as leaving them out: every peer. x accepts TCP/81 " +
				"from everyone; y/a may send UDP/80 to everyone and nothing else.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "tcp-81-from-all", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule([]networkingv1.NetworkPolicyPeer{}, ports(port("TCP", 81)))),
				}),
				netpol("y", "a-udp-80-to-all", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule([]networkingv1.NetworkPolicyPeer{}, ports(port("UDP", 80)))),
				}),
			},
			Probes: probes(
				expect(`
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
`, tcp81, tcp81v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   .   .
x/b   X   .   X   .   .   .   .   .   .
x/c   X   X   .   .   .   .   .   .   .
y/a   X   X   X   .   X   X   X   X   X
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   X   X   X   .   .   .   .   .   .
z/b   X   X   X   .   .   .   .   .   .
z/c   X   X   X   .   .   .   .   .   .
`, tcp80),
				expect(xIsolated, udp80, udp80v6),
			),
		},
		{
			Name:        "empty-ports-list",
			Description: "`ports: []` is the same as leaving it out: every port of every protocol, here from namespace x only.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-x-all-ports", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPods(everything())), []networkingv1.NetworkPolicyPort{})),
				}),
			},
			Probes: expect(xFromXOnly, tcp80, udp81, sctp80, tcp81v6),
		},
		{
			Name: "port-range",
			Description: "endPort makes a range: x accepts TCP 80-81, y TCP 81-1000 (protocol left out). UDP " +
				"stays closed for both.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "tcp-80-81", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(portRange("TCP", 80, 81)))),
				}),
				netpol("y", "tcp-81-1000", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(portRange("", 81, 1000)))),
				}),
			},
			Probes: probes(
				expect(yIsolated, tcp80, tcp80v6),
				expect(allAllowed, tcp81, tcp81v6),
				expect(xyIsolated, udp80, udp81v6),
			),
		},
		{
			Name:        "port-range-of-one-port",
			Description: "port 80 with endPort 80 is the single port 80: z accepts UDP/80 only.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "udp-80-80", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(portRange("UDP", 80, 80)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, udp80, udp80v6),
				expect(zIsolated, udp81, tcp80),
			),
		},
		{
			Name:        "named-port",
			Description: "A named port resolves on the destination pod: serve-80-tcp is TCP/80 on every pod of x.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "serve-80-tcp", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(namedPort("", "serve-80-tcp")))),
				}),
			},
			Probes: probes(
				expect(allAllowed, tcp80, tcp80v6),
				expect(xIsolated, tcp81, udp80),
			),
		},
		{
			Name:        "named-port-udp",
			Description: "serve-81-udp with protocol UDP is UDP/81: x/a accepts nothing else.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "serve-81-udp", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(nil, ports(namedPort("UDP", "serve-81-udp")))),
				}),
			},
			Probes: probes(
				expect(allAllowed, udp81, udp81v6),
				expect(xaIsolated, udp80, tcp81),
			),
		},
		{
			Name: "named-port-protocol-mismatch",
			Description: "A named port matches a container port of that name and protocol: serve-80-udp without " +
				"protocol means TCP, and no pod has a TCP port called serve-80-udp, so x accepts nothing.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "wrong-protocol", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(namedPort("", "serve-80-udp")))),
				}),
			},
			Probes: expect(xIsolated, tcp80, udp80, udp80v6),
		},
		{
			Name: "named-port-numbers-differ",
			Description: "On y/b serve-80-tcp is port 81 (and serve-81-tcp port 80): a policy on serve-80-tcp opens " +
				"TCP/80 of y/a and y/c but TCP/81 of y/b.",
			Setup: swapTCPNames,
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "serve-80-tcp", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(namedPort("TCP", "serve-80-tcp")))),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   X   .   .   .   .
x/b   .   .   .   .   X   .   .   .   .
x/c   .   .   .   .   X   .   .   .   .
y/a   .   .   .   .   X   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   X   .   .   .   .
z/a   .   .   .   .   X   .   .   .   .
z/b   .   .   .   .   X   .   .   .   .
z/c   .   .   .   .   X   .   .   .   .
`, tcp80, tcp80v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   .   X   .   .   .
x/b   .   .   .   X   .   X   .   .   .
x/c   .   .   .   X   .   X   .   .   .
y/a   .   .   .   .   .   X   .   .   .
y/b   .   .   .   X   .   X   .   .   .
y/c   .   .   .   X   .   .   .   .   .
z/a   .   .   .   X   .   X   .   .   .
z/b   .   .   .   X   .   X   .   .   .
z/c   .   .   .   X   .   X   .   .   .
`, tcp81, tcp81v6),
				expect(yIsolated, udp80),
			),
		},
		{
			Name: "named-port-egress",
			Description: "In egress a named port resolves on the destination: x/a may send to serve-81-tcp, which " +
				"is TCP/81 everywhere but on y/b, where it is TCP/80.",
			Setup: swapTCPNames,
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "a-to-serve-81-tcp", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(nil, ports(namedPort("", "serve-81-tcp")))),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   X   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp81, tcp81v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   X   .   X   X   X   X
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   X   X   X   X   X   X   X
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, udp81),
			),
		},
		{
			Name:        "named-port-missing-on-a-pod",
			Description: "z/c does not name its TCP port 80, so a policy on serve-80-tcp opens TCP/80 of z/a and z/b only.",
			Setup:       func(m *Model) { m.RemoveNamedPort("z/c", "serve-80-tcp") },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "serve-80-tcp", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(nil, ports(namedPort("", "serve-80-tcp")))),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   X
x/b   .   .   .   .   .   .   .   .   X
x/c   .   .   .   .   .   .   .   .   X
y/a   .   .   .   .   .   .   .   .   X
y/b   .   .   .   .   .   .   .   .   X
y/c   .   .   .   .   .   .   .   .   X
z/a   .   .   .   .   .   .   .   .   X
z/b   .   .   .   .   .   .   .   .   X
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6),
				expect(zIsolated, tcp81),
			),
		},
		{
			Name: "peers-and-ports-combine",
			Description: "Within a rule peers and ports must both match; rules are alternatives: x/a accepts " +
				"TCP/80 from namespace y and UDP/81 from x/b.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "two-rules", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress: ingress(
						ingressRule(peers(fromNamespaces(nsSel("y"))), ports(port("TCP", 80))),
						ingressRule(peers(fromPods(podSel("b"))), ports(port("UDP", 81))),
					),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   X   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, tcp80, tcp80v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   X   .   .   .   .   .   .   .   .
y/a   X   .   .   .   .   .   .   .   .
y/b   X   .   .   .   .   .   .   .   .
y/c   X   .   .   .   .   .   .   .   .
z/a   X   .   .   .   .   .   .   .   .
z/b   X   .   .   .   .   .   .   .   .
z/c   X   .   .   .   .   .   .   .   .
`, udp81, udp81v6),
				expect(xaIsolated, tcp81, udp80),
			),
		},
	}
}
