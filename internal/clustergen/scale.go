package clustergen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/policy"
)

// ScaleConfig sizes a realistic cluster for benchmarks.
type ScaleConfig struct {
	Pods       int
	Namespaces int
	// Policies: 70% with podSelector peers only, 20% with namespaceSelector
	// peers, 10% with ipBlock peers.
	Policies int
	// Node is the node the benchmark compiles for; LocalPods of the pods run
	// there, the others on Nodes other nodes. LocalPods 0 means every pod.
	Node      string
	LocalPods int
	Nodes     int // default 100
	Seed      uint64
	// ClusterPolicies adds that many ClusterNetworkPolicies (default 0),
	// half Admin, half Baseline; see scaleClusterPolicy.
	ClusterPolicies int
	// LocalNamespaces, when above 0, puts the LocalPods local pods into the
	// first LocalNamespaces namespaces (local pod i in ns-(i%LocalNamespaces),
	// app app-((i/LocalNamespaces)%8)) instead of one per namespace, so that
	// the policies of those namespaces select local pods and let other local
	// pods in: paths a benchmark on a real node can probe. 0 keeps pod i in
	// ns-(i%Namespaces). It must not exceed Namespaces.
	LocalNamespaces int
	// PodAddr, when set, gives pod i on node its IPv4 address (default
	// 10.(32+i>>16).(i>>8).(i)), e.g. one of the node's pod range.
	PodAddr func(i int, node string) netip.Addr
}

// Scale makes a large cluster: each namespace runs a few apps (app=app-N,
// tier, team labels), and policies resemble what clusters hold: per-app
// ingress from other apps of the namespace, from monitoring namespaces, from
// CIDRs, on a few ports, some named.
func Scale(cfg ScaleConfig) *Cluster {
	if cfg.Nodes == 0 {
		cfg.Nodes = 100
	}
	if cfg.Node == "" {
		cfg.Node = NodeName(0)
	}
	if cfg.LocalNamespaces > cfg.Namespaces {
		panic(fmt.Sprintf("clustergen.Scale: LocalNamespaces %d exceeds Namespaces %d: lower LocalNamespaces", cfg.LocalNamespaces, cfg.Namespaces))
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 7))
	c := &Cluster{NodeIPs: map[string][]netip.Addr{}}
	teams := []string{"red", "green", "blue", "gold"}
	for i := 0; i < cfg.Namespaces; i++ {
		c.Namespaces = append(c.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("ns-%d", i),
			Labels: map[string]string{"team": teams[i%len(teams)], "purpose": pick(rng, []string{"app", "app", "app", "monitoring"})},
		}})
	}
	local := cfg.LocalPods
	if local == 0 {
		local = cfg.Pods
	}
	for i := 0; i < cfg.Pods; i++ {
		ns := i % cfg.Namespaces
		node := cfg.Node
		if i >= local {
			node = NodeName(1 + i%(cfg.Nodes-1))
		}
		app := fmt.Sprintf("app-%d", (i/cfg.Namespaces)%8)
		if i < local && cfg.LocalNamespaces > 0 {
			ns = i % cfg.LocalNamespaces
			app = fmt.Sprintf("app-%d", (i/cfg.LocalNamespaces)%8)
		}
		addr := netip.AddrFrom4([4]byte{10, byte(32 + i>>16), byte(i >> 8), byte(i)})
		if cfg.PodAddr != nil {
			addr = cfg.PodAddr(i, node)
		}
		c.Pods = append(c.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("ns-%d", ns),
				Name:      fmt.Sprintf("pod-%d", i),
				Labels:    map[string]string{"app": app, "tier": pick(rng, []string{"web", "api", "db"}), "pod-template-hash": fmt.Sprintf("h%d", i%5)},
			},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", ContainerPort: 9090 + int32(i%3), Protocol: corev1.ProtocolTCP},
			}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: addr.String()}}},
		})
	}
	tcp := corev1.ProtocolTCP
	port := func(n int32) networkingv1.NetworkPolicyPort {
		v := intstr.FromInt32(n)
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &v}
	}
	named := func(s string) networkingv1.NetworkPolicyPort {
		v := intstr.FromString(s)
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &v}
	}
	for i := 0; i < cfg.Policies; i++ {
		ns := fmt.Sprintf("ns-%d", i%cfg.Namespaces)
		app := fmt.Sprintf("app-%d", rng.IntN(8))
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("policy-%d", i)}}
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
		var peers []networkingv1.NetworkPolicyPeer
		ports := []networkingv1.NetworkPolicyPort{port(8080)}
		switch r := i % 10; {
		case r < 7:
			peers = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(8))}}}}
			if r == 0 {
				peers = append(peers, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}}})
				ports = append(ports, named("metrics"))
			}
		case r < 9:
			peers = []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"purpose": "monitoring", "team": teams[rng.IntN(len(teams))]}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(8))}},
			}}
			ports = []networkingv1.NetworkPolicyPort{named("metrics")}
		default:
			peers = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR:   fmt.Sprintf("192.168.%d.0/24", rng.IntN(256)),
				Except: []string{fmt.Sprintf("192.168.%d.%d/28", rng.IntN(256), 16*rng.IntN(16))},
			}}}
		}
		if np.Spec.PodSelector.MatchLabels != nil && len(peers) > 0 && peers[0].IPBlock != nil {
			// keep excepts inside their CIDR
			pfx := netip.MustParsePrefix(peers[0].IPBlock.CIDR)
			peers[0].IPBlock.Except = []string{netip.PrefixFrom(pfx.Addr().Next(), 28).Masked().String()}
		}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: peers, Ports: ports}}
		c.Policies = append(c.Policies, np)
	}
	c.Snapshot = policy.NewSnapshot(c.Namespaces, c.Pods, c.Policies)
	for i := range cfg.ClusterPolicies {
		cnp := scaleClusterPolicy(i)
		c.ClusterPolicies = append(c.ClusterPolicies, cnp)
		c.Snapshot.AddClusterPolicies(policy.ClusterPolicyFromAPI(cnp))
	}
	return c
}

// scaleClusterPolicy is the i-th cluster policy of a scale cluster, like
// what administrators write: per team, monitoring always let in on the
// metrics ports (Admin Accept), other teams' app namespaces kept out of the
// databases (Admin Deny), a team's own traffic passed to NetworkPolicy
// (Admin Pass), and baseline isolation between teams (Baseline Deny).
func scaleClusterPolicy(i int) *npav1alpha2.ClusterNetworkPolicy {
	teams := []string{"red", "green", "blue", "gold"}
	team, other := teams[i%4], teams[(i+1)%4]
	ns := func(k, v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	p := &npav1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp-%d", i)}}
	p.Spec.Priority = int32(i)
	p.Spec.Subject.Namespaces = ns("team", team)
	tcp := func(lo, hi int32) []npav1alpha2.ClusterNetworkPolicyProtocol {
		return []npav1alpha2.ClusterNetworkPolicyProtocol{{TCP: &npav1alpha2.ClusterNetworkPolicyProtocolTCP{
			DestinationPort: &npav1alpha2.Port{Range: &npav1alpha2.PortRange{Start: lo, End: hi}}}}}
	}
	switch i % 4 {
	case 0:
		p.Spec.Tier = npav1alpha2.AdminTier
		p.Spec.Ingress = []npav1alpha2.ClusterNetworkPolicyIngressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionAccept,
			From: []npav1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: ns("purpose", "monitoring")}}, Protocols: tcp(9090, 9092)}}
	case 1:
		p.Spec.Tier = npav1alpha2.AdminTier
		p.Spec.Subject = npav1alpha2.ClusterNetworkPolicySubject{Pods: &npav1alpha2.NamespacedPod{
			NamespaceSelector: *ns("team", team), PodSelector: *ns("tier", "db")}}
		p.Spec.Ingress = []npav1alpha2.ClusterNetworkPolicyIngressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionDeny,
			From: []npav1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: ns("team", other)}}}}
	case 2:
		p.Spec.Tier = npav1alpha2.AdminTier
		p.Spec.Ingress = []npav1alpha2.ClusterNetworkPolicyIngressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionPass,
			From: []npav1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: ns("team", team)}}}}
	case 3:
		p.Spec.Tier = npav1alpha2.BaselineTier
		p.Spec.Ingress = []npav1alpha2.ClusterNetworkPolicyIngressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionDeny,
			From: []npav1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: ns("team", other)}}}}
		p.Spec.Egress = []npav1alpha2.ClusterNetworkPolicyEgressRule{{Action: npav1alpha2.ClusterNetworkPolicyRuleActionDeny,
			To: []npav1alpha2.ClusterNetworkPolicyEgressPeer{{Networks: []npav1alpha2.CIDR{npav1alpha2.CIDR(fmt.Sprintf("192.0.2.%d/32", i%256))}}}}}
	}
	return p
}
