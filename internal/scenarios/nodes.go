package scenarios

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// Pods a and b run on node-1 (10.32.0.1, fd00::1), pods c on node-2
// (10.32.0.2, fd00::2). A host-network pod has its node's addresses.

func nodeScenarios() []*Scenario {
	return []*Scenario{
		{
			Name: "node-traffic-always-allowed",
			Description: "Every namespace denies all ingress, yet a node reaches the pods it runs (kubelet " +
				"probes); it does not reach the pods of the other node. Nodes themselves are not isolated.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
				netpol("y", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
				netpol("z", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
			},
			Probes: expect(`
        x/a x/b x/c y/a y/b y/c z/a z/b z/c node-1 node-2
x/a      .   X   X   X   X   X   X   X   X    .      .
x/b      X   .   X   X   X   X   X   X   X    .      .
x/c      X   X   .   X   X   X   X   X   X    .      .
y/a      X   X   X   .   X   X   X   X   X    .      .
y/b      X   X   X   X   .   X   X   X   X    .      .
y/c      X   X   X   X   X   .   X   X   X    .      .
z/a      X   X   X   X   X   X   .   X   X    .      .
z/b      X   X   X   X   X   X   X   .   X    .      .
z/c      X   X   X   X   X   X   X   X   .    .      .
node-1   .   .   X   .   .   X   .   .   X    .      .
node-2   X   X   .   X   X   .   X   X   .    .      .
`, tcp80, tcp80v6, udp80, sctp81),
		},
		{
			Name: "remote-node-by-ipblock",
			Description: "x accepts 10.32.0.2/32, node-2's IPv4 address: node-2 reaches x/a and x/b over IPv4 " +
				"only; node-1 reaches only the pods it runs.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "from-node-2", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromCIDR("10.32.0.2/32")), nil)),
				}),
			},
			Probes: probes(
				expect(`
        x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a      .   X   X   .   .   .   .   .   .
x/b      X   .   X   .   .   .   .   .   .
x/c      X   X   .   .   .   .   .   .   .
y/a      X   X   X   .   .   .   .   .   .
y/b      X   X   X   .   .   .   .   .   .
y/c      X   X   X   .   .   .   .   .   .
z/a      X   X   X   .   .   .   .   .   .
z/b      X   X   X   .   .   .   .   .   .
z/c      X   X   X   .   .   .   .   .   .
node-1   .   .   X   .   .   .   .   .   .
node-2   .   .   .   .   .   .   .   .   .
`, tcp80, udp81),
				expect(`
        x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a      .   X   X   .   .   .   .   .   .
x/b      X   .   X   .   .   .   .   .   .
x/c      X   X   .   .   .   .   .   .   .
y/a      X   X   X   .   .   .   .   .   .
y/b      X   X   X   .   .   .   .   .   .
y/c      X   X   X   .   .   .   .   .   .
z/a      X   X   X   .   .   .   .   .   .
z/b      X   X   X   .   .   .   .   .   .
z/c      X   X   X   .   .   .   .   .   .
node-1   .   .   X   .   .   .   .   .   .
node-2   X   X   .   .   .   .   .   .   .
`, tcp80v6),
			),
		},
		{
			Name: "host-network-pod-matched-only-by-ipblock",
			Description: "x/h is a host-network pod on node-2. Label selectors never match it: the deny-all of x " +
				"does not isolate it, and y's `namespaceSelector: {}` + `podSelector: {}` does not let it in " +
				"(except into y/c, on its own node: node traffic). z accepts the node block 10.32.0.0/24 and " +
				"fd00::/112, which holds x/h.",
			Setup: func(m *Model) { m.AddHostNetworkPod("x", "h", Node2) },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *everything()}),
				netpol("y", "from-all-pods", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPodsIn(everything(), everything())), nil)),
				}),
				netpol("z", "from-nodes", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromCIDR("10.32.0.0/24"), fromCIDR("fd00::/112")), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c x/h y/a y/b y/c z/a z/b z/c
x/a   .   X   X   .   .   .   .   X   X   X
x/b   X   .   X   .   .   .   .   X   X   X
x/c   X   X   .   .   .   .   .   X   X   X
x/h   X   X   .   .   X   X   .   .   .   .
y/a   X   X   X   .   .   .   .   X   X   X
y/b   X   X   X   .   .   .   .   X   X   X
y/c   X   X   X   .   .   .   .   X   X   X
z/a   X   X   X   .   .   .   .   .   X   X
z/b   X   X   X   .   .   .   .   X   .   X
z/c   X   X   X   .   .   .   .   X   X   .
`, tcp80, tcp80v6, udp81),
		},
		{
			Name: "host-network-pod-on-same-node-is-node-traffic",
			Description: "z/h is a host-network pod on node-1: it reaches the pods of node-1 whatever their " +
				"policies say, and no pod of node-2 whose policies use selectors only (a selector for pod=h " +
				"does not match it). z/h itself is never isolated.",
			Setup: func(m *Model) { m.AddHostNetworkPod("z", "h", Node1) },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("y", "from-z", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromNamespaces(nsSel("z"))), nil)),
				}),
				netpol("z", "from-h", networkingv1.NetworkPolicySpec{
					PodSelector: *everything(),
					Ingress:     ingress(ingressRule(peers(fromPods(podSel("h"))), nil)),
				}),
			},
			Probes: expect(`
     x/a x/b x/c y/a y/b y/c z/a z/b z/c z/h
x/a   .   .   .   X   X   X   X   X   X   .
x/b   .   .   .   X   X   X   X   X   X   .
x/c   .   .   .   X   X   X   X   X   X   .
y/a   .   .   .   .   X   X   X   X   X   .
y/b   .   .   .   X   .   X   X   X   X   .
y/c   .   .   .   X   X   .   X   X   X   .
z/a   .   .   .   .   .   .   .   X   X   .
z/b   .   .   .   .   .   .   X   .   X   .
z/c   .   .   .   .   .   .   X   X   .   .
z/h   .   .   .   .   .   X   .   .   X   .
`, tcp80, udp80v6),
		},
		{
			Name: "egress-to-remote-node-needs-ipblock",
			Description: "x/a may send to every pod of every namespace, which does not include a host-network " +
				"pod (y/h) or a node; x/b may send only to 10.32.0.0/24, the IPv4 node addresses. y/h runs " +
				"on node-2, x/a and x/b on node-1.",
			Setup: func(m *Model) { m.AddHostNetworkPod("y", "h", Node2) },
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "a-to-all-pods", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("a"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromNamespaces(everything())), nil)),
				}),
				netpol("x", "b-to-nodes", networkingv1.NetworkPolicySpec{
					PodSelector: *podSel("b"),
					PolicyTypes: types(typeEgress),
					Egress:      egress(egressRule(peers(fromCIDR("10.32.0.0/24")), nil)),
				}),
			},
			Probes: probes(
				expect(`
       x/a x/b x/c y/a y/b y/c y/h z/a z/b z/c node-2
x/a     .   .   .   .   .   .   X   .   .   .    X
x/b     X   .   X   X   X   X   .   X   X   X    .
x/c     .   .   .   .   .   .   .   .   .   .    .
y/a     .   .   .   .   .   .   .   .   .   .    .
y/b     .   .   .   .   .   .   .   .   .   .    .
y/c     .   .   .   .   .   .   .   .   .   .    .
y/h     .   .   .   .   .   .   .   .   .   .    .
z/a     .   .   .   .   .   .   .   .   .   .    .
z/b     .   .   .   .   .   .   .   .   .   .    .
z/c     .   .   .   .   .   .   .   .   .   .    .
node-1  .   .   .   .   .   .   .   .   .   .    .
node-2  .   .   .   .   .   .   .   .   .   .    .
`, tcp80, udp81),
				expect(`
       x/a x/b x/c y/a y/b y/c y/h z/a z/b z/c node-2
x/a     .   .   .   .   .   .   X   .   .   .    X
x/b     X   .   X   X   X   X   X   X   X   X    X
x/c     .   .   .   .   .   .   .   .   .   .    .
y/a     .   .   .   .   .   .   .   .   .   .    .
y/b     .   .   .   .   .   .   .   .   .   .    .
y/c     .   .   .   .   .   .   .   .   .   .    .
y/h     .   .   .   .   .   .   .   .   .   .    .
z/a     .   .   .   .   .   .   .   .   .   .    .
z/b     .   .   .   .   .   .   .   .   .   .    .
z/c     .   .   .   .   .   .   .   .   .   .    .
node-1  .   .   .   .   .   .   .   .   .   .    .
node-2  .   .   .   .   .   .   .   .   .   .    .
`, tcp80v6),
			),
		},
		{
			Name: "egress-to-own-node-always-allowed",
			Description: "Pods of x may send to nobody, but the NetworkPolicy documentation says traffic to and " +
				"from the node where a pod runs is always allowed: x/a and x/b still reach node-1, x/c " +
				"node-2, and none reaches the other node.",
			Policies: []*networkingv1.NetworkPolicy{
				netpol("x", "deny-egress", networkingv1.NetworkPolicySpec{PodSelector: *everything(), PolicyTypes: types(typeEgress)}),
			},
			Probes: expect(`
        x/a x/b x/c y/a y/b y/c z/a z/b z/c node-1 node-2
x/a      .   X   X   X   X   X   X   X   X    .      X
x/b      X   .   X   X   X   X   X   X   X    .      X
x/c      X   X   .   X   X   X   X   X   X    X      .
y/a      .   .   .   .   .   .   .   .   .    .      .
y/b      .   .   .   .   .   .   .   .   .    .      .
y/c      .   .   .   .   .   .   .   .   .    .      .
z/a      .   .   .   .   .   .   .   .   .    .      .
z/b      .   .   .   .   .   .   .   .   .    .      .
z/c      .   .   .   .   .   .   .   .   .    .      .
node-1   .   .   .   .   .   .   .   .   .    .      .
node-2   .   .   .   .   .   .   .   .   .    .      .
`, tcp80, udp81v6),
		},
	}
}
