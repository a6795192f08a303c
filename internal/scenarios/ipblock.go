package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
)

func ipBlockScenarios() []*Scenario {
	return []*Scenario{
		{
			Name: "ipblock-cidr",
			Description: "x/a accepts 10.32.2.0/24, the IPv4 addresses of namespace y. An IPv4 block matches no " +
				"IPv6 address, so over IPv6 x/a accepts nothing.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-y-net", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromCIDR("10.32.2.0/24")), nil)),
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
`, tcp80, udp81),
				expect(xaIsolated, tcp80v6, udp81v6),
			),
		},
		{
			Name:        "ipblock-except",
			Description: "x accepts 10.32.0.0/16 except 10.32.2.0/24: every IPv4 pod address but those of namespace y.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "all-but-y", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromCIDR("10.32.0.0/16", "10.32.2.0/24")), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   .   .   .   .   .
y/b   X   X   X   .   .   .   .   .   .
y/c   X   X   X   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp80),
				expect(xIsolated, tcp80v6),
			),
		},
		{
			Name:        "ipblock-ipv6",
			Description: "z accepts fd00::1:0/112, the IPv6 addresses of namespace x, and no IPv4 address.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "from-x-net6", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromCIDR("fd00::1:0/112")), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   X   X   X
y/b   .   .   .   .   .   .   X   X   X
y/c   .   .   .   .   .   .   X   X   X
z/a   .   .   .   .   .   .   .   X   X
z/b   .   .   .   .   .   .   X   .   X
z/c   .   .   .   .   .   .   X   X   .
`, tcp80v6, udp81v6),
				expect(zIsolated, tcp80, udp81),
			),
		},
		{
			Name: "ipblock-both-families-with-excepts",
			Description: "y/a accepts fd00::/64 except namespace z (fd00::3:0/112) and x/b (fd00::1:2/128), and " +
				"10.32.3.0/24 except z/b (10.32.3.2/32): each family has its own block and exceptions.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "dual", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress: ingress(ingressRule(peers(
						fromCIDR("fd00::/64", "fd00::3:0/112", "fd00::1:2/128"),
						fromCIDR("10.32.3.0/24", "10.32.3.2/32"),
					), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   X   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   X   .   .   .   .   .
z/b   .   .   .   X   .   .   .   .   .
z/c   .   .   .   X   .   .   .   .   .
`, tcp80v6, udp80v6),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   X   .   .   .   .   .
x/b   .   .   .   X   .   .   .   .   .
x/c   .   .   .   X   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   X   .   .   .   .   .
y/c   .   .   .   X   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   X   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp80),
			),
		},
		{
			Name:        "ipblock-egress",
			Description: "Pods of y may send only to 10.32.3.0/24 (namespace z, IPv4), so nothing over IPv6.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "to-z-net", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromCIDR("10.32.3.0/24")), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   X   X   .   .   .
y/b   X   X   X   X   .   X   .   .   .
y/c   X   X   X   X   X   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp81),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   X   X   X   .   X   X   X   X   X
y/b   X   X   X   X   .   X   X   X   X
y/c   X   X   X   X   X   .   X   X   X
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80v6),
			),
		},
		{
			Name: "ipblock-single-addresses-and-selectors",
			Description: "x/b accepts pod c of x, the single address 10.32.3.1 (z/a over IPv4) and fd00::2:3 " +
				"(y/c over IPv6).",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "b-mixed", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					Ingress: ingress(ingressRule(peers(
						fromPods(podSel("c")),
						fromCIDR("10.32.3.1/32"),
						fromCIDR("fd00::2:3/128"),
					), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   X   .   .   .   .   .   .   .
y/b   .   X   .   .   .   .   .   .   .
y/c   .   X   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   X   .   .   .   .   .   .   .
z/c   .   X   .   .   .   .   .   .   .
`, tcp80, udp81),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   X   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   X   .   .   .   .   .   .   .
y/b   .   X   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   X   .   .   .   .   .   .   .
z/b   .   X   .   .   .   .   .   .   .
z/c   .   X   .   .   .   .   .   .   .
`, tcp80v6, udp81v6),
			),
		},
		{
			Name: "ipblock-everything-except",
			Description: "z/b may send to 0.0.0.0/0 except 10.32.1.0/24 (namespace x) and 10.32.2.2/32 (y/b), and " +
				"to ::/0 except fd00::2:0/112 (namespace y): the exceptions carve holes of different sizes.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "b-to-world", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					PolicyTypes: types(typeEgress),
					Egress: egress(egressRule(peers(
						fromCIDR("0.0.0.0/0", "10.32.1.0/24", "10.32.2.2/32"),
						fromCIDR("::/0", "fd00::2:0/112"),
					), nil)),
				}),
			},
			Probes: probes(
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   X   X   X   .   X   .   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80, udp81, sctp80),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   .   .   .
x/b   .   .   .   .   .   .   .   .   .
x/c   .   .   .   .   .   .   .   .   .
y/a   .   .   .   .   .   .   .   .   .
y/b   .   .   .   .   .   .   .   .   .
y/c   .   .   .   .   .   .   .   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   X   X   X   .   .   .
z/c   .   .   .   .   .   .   .   .   .
`, tcp80v6, udp80v6),
			),
		},
		{
			Name:        "ipblock-with-ports",
			Description: "z/a accepts UDP/80 from 10.32.0.0/12: every IPv4 pod, that port only, and nothing over IPv6.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("z", "udp-80-from-net", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					Ingress:     ingress(ingressRule(peers(fromCIDR("10.32.0.0/12")), ports(port("UDP", 80)))),
				}),
			},
			Probes: probes(
				expect(allAllowed, udp80),
				expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a   .   .   .   .   .   .   X   .   .
x/b   .   .   .   .   .   .   X   .   .
x/c   .   .   .   .   .   .   X   .   .
y/a   .   .   .   .   .   .   X   .   .
y/b   .   .   .   .   .   .   X   .   .
y/c   .   .   .   .   .   .   X   .   .
z/a   .   .   .   .   .   .   .   .   .
z/b   .   .   .   .   .   .   X   .   .
z/c   .   .   .   .   .   .   X   .   .
`, udp81, tcp80, udp80v6),
			),
		},
	}
}
