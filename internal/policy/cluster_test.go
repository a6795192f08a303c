package policy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"
)

// The cluster of these tests: namespaces x (team=a) and y (team=b); pods
// x/web (app=web, named port http=8080/TCP), x/db (app=db), y/client
// (app=client); node n1 (role=worker, 192.168.0.1) runs them all; node n2
// (role=infra, 192.168.0.2) runs none. (Traffic between a pod and its own
// node is always allowed, whatever the tier.)
func cnpSnapshot(nps []*networkingv1.NetworkPolicy, cnps ...*npa.ClusterNetworkPolicy) *Snapshot {
	ns := func(name, team string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": team}}}
	}
	pod := func(ns, name, ip string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}},
		}
	}
	s := NewSnapshot(
		[]*corev1.Namespace{ns("x", "a"), ns("y", "b")},
		[]*corev1.Pod{
			pod("x", "web", "10.32.0.10", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}),
			pod("x", "db", "10.32.0.11", map[string]string{"app": "db"}),
			pod("y", "client", "10.32.0.20", map[string]string{"app": "client"}),
		}, nps)
	s.AddNodes(&Node{Name: "n1", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}, Labels: map[string]string{"role": "worker"}},
		&Node{Name: "n2", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}, Labels: map[string]string{"role": "infra"}})
	for _, c := range cnps {
		s.AddClusterPolicies(ClusterPolicyFromAPI(c))
	}
	return s
}

func cnp(name string, tier npa.Tier, prio int32, subject npa.ClusterNetworkPolicySubject) *npa.ClusterNetworkPolicy {
	return &npa.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: npa.ClusterNetworkPolicySpec{Tier: tier, Priority: prio, Subject: subject}}
}

func nsSubject(team string) npa.ClusterNetworkPolicySubject {
	return npa.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}}}
}

func ingress(action npa.ClusterNetworkPolicyRuleAction, from ...npa.ClusterNetworkPolicyIngressPeer) npa.ClusterNetworkPolicyIngressRule {
	return npa.ClusterNetworkPolicyIngressRule{Action: action, From: from}
}

func fromNS(team string) npa.ClusterNetworkPolicyIngressPeer {
	return npa.ClusterNetworkPolicyIngressPeer{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}}}
}

const (
	accept = npa.ClusterNetworkPolicyRuleActionAccept
	deny   = npa.ClusterNetworkPolicyRuleActionDeny
	pass   = npa.ClusterNetworkPolicyRuleActionPass
)

// npAllowClient isolates x/web and lets y/client in.
var npAllowClient = &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "allow-client"},
	Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}}}}},
	}}

// npDenyAll isolates every pod of x.
var npDenyAll = &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny-all"},
	Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}

func decide(s *Snapshot, src, dst string, proto Protocol, port uint16) Decision {
	return (&Evaluator{Snapshot: s}).Decide(Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: proto, Port: port})
}

const (
	web, db, client = "10.32.0.10", "10.32.0.11", "10.32.0.20"
	node1, node2    = "192.168.0.1", "192.168.0.2"
)

func TestClusterTiers(t *testing.T) {
	withRules := func(c *npa.ClusterNetworkPolicy, rules ...npa.ClusterNetworkPolicyIngressRule) *npa.ClusterNetworkPolicy {
		c.Spec.Ingress = rules
		return c
	}
	type probe struct {
		src, dst string
		allowed  bool
		tier     Tier
	}
	for _, tc := range []struct {
		name   string
		nps    []*networkingv1.NetworkPolicy
		cnps   []*npa.ClusterNetworkPolicy
		probes []probe
	}{
		{"Admin Deny beats a NetworkPolicy allow",
			[]*networkingv1.NetworkPolicy{npAllowClient},
			[]*npa.ClusterNetworkPolicy{withRules(cnp("deny-b", npa.AdminTier, 10, nsSubject("a")), ingress(deny, fromNS("b")))},
			[]probe{{client, web, false, TierAdmin}, {db, web, false, TierNetworkPolicy}}},
		{"Admin Accept beats a NetworkPolicy isolation",
			[]*networkingv1.NetworkPolicy{npDenyAll},
			[]*npa.ClusterNetworkPolicy{withRules(cnp("monitoring", npa.AdminTier, 10, nsSubject("a")), ingress(accept, fromNS("b")))},
			[]probe{{client, db, true, TierAdmin}, {web, db, false, TierNetworkPolicy}}},
		{"Admin Pass defers to NetworkPolicy, then Baseline",
			[]*networkingv1.NetworkPolicy{npAllowClient},
			[]*npa.ClusterNetworkPolicy{
				withRules(cnp("pass-b", npa.AdminTier, 1, nsSubject("a")), ingress(pass, fromNS("b"))),
				withRules(cnp("deny-b-later", npa.AdminTier, 2, nsSubject("a")), ingress(deny, fromNS("b"))),
				withRules(cnp("baseline-deny-b", npa.BaselineTier, 1, nsSubject("a")), ingress(deny, fromNS("b")))},
			// To x/web NetworkPolicy decides (allow); x/db no NetworkPolicy
			// isolates, so Baseline denies. The Pass skips deny-b-later.
			[]probe{{client, web, true, TierNetworkPolicy}, {client, db, false, TierBaseline}}},
		{"Baseline Deny applies only where no NetworkPolicy isolates",
			[]*networkingv1.NetworkPolicy{npAllowClient},
			[]*npa.ClusterNetworkPolicy{withRules(cnp("baseline", npa.BaselineTier, 1, nsSubject("a")), ingress(deny, fromNS("b")))},
			[]probe{{client, web, true, TierNetworkPolicy}, {client, db, false, TierBaseline}}},
		{"Baseline Accept opens nothing NetworkPolicy isolates",
			[]*networkingv1.NetworkPolicy{npDenyAll},
			[]*npa.ClusterNetworkPolicy{withRules(cnp("baseline", npa.BaselineTier, 1, nsSubject("a")), ingress(accept, fromNS("b")))},
			[]probe{{client, web, false, TierNetworkPolicy}}},
		{"lower priority value first",
			nil,
			[]*npa.ClusterNetworkPolicy{
				withRules(cnp("z-accept", npa.AdminTier, 5, nsSubject("a")), ingress(accept, fromNS("b"))),
				withRules(cnp("a-deny", npa.AdminTier, 50, nsSubject("a")), ingress(deny, fromNS("b")))},
			[]probe{{client, web, true, TierAdmin}}},
		{"equal priority: by name, then rule order within a policy",
			nil,
			[]*npa.ClusterNetworkPolicy{
				withRules(cnp("b-accept", npa.AdminTier, 5, nsSubject("a")), ingress(accept, fromNS("b"))),
				withRules(cnp("a-deny-then-accept", npa.AdminTier, 5, nsSubject("a")), ingress(deny, fromNS("b")), ingress(accept, fromNS("b")))},
			[]probe{{client, web, false, TierAdmin}}},
		{"no rule matches: the next stage, then default allow",
			nil,
			[]*npa.ClusterNetworkPolicy{withRules(cnp("deny-a", npa.AdminTier, 1, nsSubject("a")), ingress(deny, fromNS("a")))},
			[]probe{{client, web, true, TierDefault}, {db, web, false, TierAdmin}}},
	} {
		s := cnpSnapshot(tc.nps, tc.cnps...)
		for _, p := range tc.probes {
			d := decide(s, p.src, p.dst, TCP, 80)
			if d.Ingress.Allowed != p.allowed || d.Ingress.Tier != p.tier {
				t.Errorf("%s: %s -> %s: allowed %v by %v (%v, rule %v); want %v by %v", tc.name, p.src, p.dst,
					d.Ingress.Allowed, d.Ingress.Tier, d.Ingress.Action, d.Ingress.ClusterRule, p.allowed, p.tier)
			}
		}
	}
	if ties := cnpSnapshot(nil,
		cnp("b", npa.AdminTier, 5, nsSubject("a")), cnp("a", npa.AdminTier, 5, nsSubject("a")), cnp("c", npa.BaselineTier, 5, nsSubject("a")),
	).PriorityTies(); len(ties) != 1 || ties[0] != [2]string{"a", "b"} {
		t.Errorf("priority ties %v, want [[a b]] (the Baseline policy of the same number is no tie)", ties)
	}
}

// Every peer kind, ports, and named ports.
func TestClusterPeersAndPorts(t *testing.T) {
	egress := func(name string, action npa.ClusterNetworkPolicyRuleAction, to npa.ClusterNetworkPolicyEgressPeer, protos ...npa.ClusterNetworkPolicyProtocol) *npa.ClusterNetworkPolicy {
		c := cnp(name, npa.AdminTier, 1, nsSubject("b"))
		c.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{{Action: action, To: []npa.ClusterNetworkPolicyEgressPeer{to}, Protocols: protos}}
		return c
	}
	tcpPort := func(n int32) npa.ClusterNetworkPolicyProtocol {
		return npa.ClusterNetworkPolicyProtocol{TCP: &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npa.Port{Number: n}}}
	}
	tcpRange := func(lo, hi int32) npa.ClusterNetworkPolicyProtocol {
		return npa.ClusterNetworkPolicyProtocol{TCP: &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npa.Port{Range: &npa.PortRange{Start: lo, End: hi}}}}
	}
	type probe struct {
		dst    string
		proto  Protocol
		port   uint16
		denied bool
	}
	for _, tc := range []struct {
		name   string
		cnp    *npa.ClusterNetworkPolicy
		probes []probe
	}{
		{"pods peer", egress("pods", deny, npa.ClusterNetworkPolicyEgressPeer{Pods: &npa.NamespacedPod{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
			PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}),
			[]probe{{db, TCP, 80, true}, {web, TCP, 80, false}}},
		{"namespaces peer", egress("ns", deny, npa.ClusterNetworkPolicyEgressPeer{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}),
			[]probe{{db, TCP, 80, true}, {web, UDP, 53, true}, {"203.0.113.1", TCP, 80, false}}},
		{"nodes peer", egress("nodes", deny, npa.ClusterNetworkPolicyEgressPeer{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "infra"}}}),
			[]probe{{node2, TCP, 80, true}, {node1, TCP, 80, false}, {web, TCP, 80, false}}},
		{"networks peer", egress("networks", deny, npa.ClusterNetworkPolicyEgressPeer{Networks: []npa.CIDR{"203.0.113.0/24", "10.32.0.11"}}),
			[]probe{{"203.0.113.7", TCP, 80, true}, {db, TCP, 80, true}, {web, TCP, 80, false}}},
		{"a port", egress("port", deny, npa.ClusterNetworkPolicyEgressPeer{Networks: []npa.CIDR{"0.0.0.0/0"}}, tcpPort(80)),
			[]probe{{web, TCP, 80, true}, {web, TCP, 81, false}, {web, UDP, 80, false}}},
		{"a port range", egress("range", deny, npa.ClusterNetworkPolicyEgressPeer{Networks: []npa.CIDR{"0.0.0.0/0"}}, tcpRange(8000, 8100)),
			[]probe{{web, TCP, 8000, true}, {web, TCP, 8100, true}, {web, TCP, 8101, false}}},
		{"a named port resolves on the destination", egress("named", deny, npa.ClusterNetworkPolicyEgressPeer{Networks: []npa.CIDR{"0.0.0.0/0"}},
			npa.ClusterNetworkPolicyProtocol{DestinationNamedPort: "http"}),
			[]probe{{web, TCP, 8080, true}, {web, UDP, 8080, false}, {db, TCP, 8080, false}}},
	} {
		s := cnpSnapshot(nil, tc.cnp)
		if errs := s.Errors(); len(errs) > 0 {
			t.Errorf("%s: %v", tc.name, errs)
		}
		for _, p := range tc.probes {
			d := decide(s, client, p.dst, p.proto, p.port)
			if denied := !d.Egress.Allowed; denied != p.denied {
				t.Errorf("%s: to %s %d/%s: denied %v, want %v", tc.name, p.dst, p.port, p.proto, denied, p.denied)
			}
		}
	}
}

// What weft cannot enforce or read is an error naming policy, rule and
// field, and never opens: a broken Accept allows nothing, a broken Deny or
// Pass denies everything it might have covered.
func TestClusterBadInput(t *testing.T) {
	domain := cnp("by-name", npa.AdminTier, 1, nsSubject("b"))
	domain.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{
		{Name: "no-example", Action: deny, To: []npa.ClusterNetworkPolicyEgressPeer{{DomainNames: []npa.DomainName{"example.com"}}}},
	}
	acceptDomain := cnp("accept-by-name", npa.AdminTier, 1, nsSubject("a"))
	acceptDomain.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{{Action: accept, From: []npa.ClusterNetworkPolicyIngressPeer{{}}}}
	s := cnpSnapshot([]*networkingv1.NetworkPolicy{npDenyAll}, domain, acceptDomain)
	errs := s.Errors()
	var text []string
	for _, e := range errs {
		text = append(text, e.Error())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"clusternetworkpolicy by-name: spec.egress[0].to[0].domainNames: weft cannot enforce peers by domain name",
		"clusternetworkpolicy accept-by-name: spec.ingress[0].from[0]: empty peer",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	// The broken Deny denies all egress of its subjects (y/client).
	if d := decide(s, client, "203.0.113.9", TCP, 443); d.Egress.Allowed {
		t.Error("a Deny rule weft cannot read let traffic out")
	}
	// The broken Accept does not open x's isolation.
	if d := decide(s, client, web, TCP, 80); d.Ingress.Allowed {
		t.Error("an Accept rule weft cannot read opened an isolated pod")
	}
}
