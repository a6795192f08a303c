package scenarios

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Small builders so that the catalogue reads close to the YAML it stands for.

func netpol(namespace, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       spec,
	}
}

// everything is the empty selector {}.
func everything() *metav1.LabelSelector { return &metav1.LabelSelector{} }

// labelsSel is matchLabels {k1: v1, k2: v2, ...}.
func labelsSel(kv ...string) *metav1.LabelSelector {
	if len(kv)%2 != 0 {
		panic("scenarios: labelsSel needs key/value pairs")
	}
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// podSel is matchLabels {pod: name}; nsSel is matchLabels {ns: name}.
func podSel(name string) *metav1.LabelSelector { return labelsSel(PodLabel, name) }
func nsSel(name string) *metav1.LabelSelector  { return labelsSel(NamespaceLabel, name) }

func exprSel(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

func req(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

// Peers.
func fromPods(sel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: sel}
}

func fromNamespaces(sel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: sel}
}

func fromPodsIn(namespaces, pods *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaces, PodSelector: pods}
}

func fromCIDR(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func peers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

// Ports; protocol "" leaves the protocol out (it defaults to TCP).
func protocol(p string) *corev1.Protocol {
	if p == "" {
		return nil
	}
	proto := corev1.Protocol(p)
	return &proto
}

func port(proto string, n int32) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: protocol(proto), Port: &v}
}

func namedPort(proto, name string) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: protocol(proto), Port: &v}
}

func portRange(proto string, from, to int32) networkingv1.NetworkPolicyPort {
	p := port(proto, from)
	p.EndPort = &to
	return p
}

func anyPort(proto string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: protocol(proto)}
}

func ports(p ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return p }

// Rules.
func ingressRule(from []networkingv1.NetworkPolicyPeer, ps []networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: from, Ports: ps}
}

func egressRule(to []networkingv1.NetworkPolicyPeer, ps []networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: to, Ports: ps}
}

func ingress(r ...networkingv1.NetworkPolicyIngressRule) []networkingv1.NetworkPolicyIngressRule {
	return r
}

func egress(r ...networkingv1.NetworkPolicyEgressRule) []networkingv1.NetworkPolicyEgressRule {
	return r
}

func types(t ...networkingv1.PolicyType) []networkingv1.PolicyType { return t }

const (
	typeIngress = networkingv1.PolicyTypeIngress
	typeEgress  = networkingv1.PolicyTypeEgress
)
