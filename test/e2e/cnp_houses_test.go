package e2e

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/lab"
)

// The network-policy-api conformance suite's cluster: four houses, each a
// namespace (network-policy-conformance-<house>, label conformance-house)
// with two pods of a StatefulSet (-0 on node-1, -1 on node-2) serving TCP 80
// ("web") and 8080, UDP 53 ("dns") and 5353. (Its SCTP ports are left out:
// this kernel has no SCTP.)
var houses = []struct{ house, pod string }{
	{"gryffindor", "harry-potter"}, {"slytherin", "draco-malfoy"}, {"hufflepuff", "cedric-diggory"}, {"ravenclaw", "luna-lovegood"},
}

func houseNS(house string) string { return "network-policy-conformance-" + house }

var houseServes = []corev1.ContainerPort{
	{Name: "web", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
	{ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
	{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
	{ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
}

var (
	houseTCP80   = lab.Target{Protocol: corev1.ProtocolTCP, Port: 80, Family: lab.IPv4}
	houseTCP8080 = lab.Target{Protocol: corev1.ProtocolTCP, Port: 8080, Family: lab.IPv4}
	houseUDP53   = lab.Target{Protocol: corev1.ProtocolUDP, Port: 53, Family: lab.IPv4}
	houseUDP5353 = lab.Target{Protocol: corev1.ProtocolUDP, Port: 5353, Family: lab.IPv4}
)

func (c *cluster) addHouses(t testing.TB) {
	t.Helper()
	for _, h := range houses {
		if err := c.lab.EnsureNamespace(context.Background(), houseNS(h.house), map[string]string{"conformance-house": h.house}); err != nil {
			t.Fatal(err)
		}
		for i, node := range c.lab.Nodes[:2] {
			id := houseNS(h.house) + "/" + h.pod + "-" + string(rune('0'+i))
			if c.pods[id] != nil {
				continue
			}
			c.addPod(t, lab.PodSpec{Namespace: houseNS(h.house), Name: h.pod + "-" + string(rune('0'+i)), Node: node,
				Labels: map[string]string{"conformance-house": h.house}, Ports: houseServes})
		}
	}
}

// houseSubject and fromHouse select a house's namespace by its name label,
// as the suite does.
func houseSubject(house string) npa.ClusterNetworkPolicySubject {
	return npa.ClusterNetworkPolicySubject{Namespaces: sel("kubernetes.io/metadata.name", houseNS(house))}
}

func fromHouse(action npa.ClusterNetworkPolicyRuleAction, house string, protos ...npa.ClusterNetworkPolicyProtocol) npa.ClusterNetworkPolicyIngressRule {
	return npa.ClusterNetworkPolicyIngressRule{Action: action, Protocols: protos,
		From: []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("kubernetes.io/metadata.name", houseNS(house))}}}
}

func toHouse(action npa.ClusterNetworkPolicyRuleAction, house string, protos ...npa.ClusterNetworkPolicyProtocol) npa.ClusterNetworkPolicyEgressRule {
	return npa.ClusterNetworkPolicyEgressRule{Action: action, Protocols: protos,
		To: []npa.ClusterNetworkPolicyEgressPeer{{Namespaces: sel("kubernetes.io/metadata.name", houseNS(house))}}}
}

func portRange(proto string, lo, hi int32) npa.ClusterNetworkPolicyProtocol {
	p := &npa.Port{Range: &npa.PortRange{Start: lo, End: hi}}
	if proto == "udp" {
		return npa.ClusterNetworkPolicyProtocol{UDP: &npa.ClusterNetworkPolicyProtocolUDP{DestinationPort: p}}
	}
	return npa.ClusterNetworkPolicyProtocol{TCP: &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: p}}
}

// baselineDenyInto is a Baseline policy denying everything into house, so
// that an Admin Accept, a Pass and no rule at all can be told apart.
func baselineDenyInto(house string) *npa.ClusterNetworkPolicy {
	p := cnpOf("baseline-deny-into-"+house, npa.BaselineTier, 50, houseSubject(house))
	p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{{Action: cnpDeny,
		From: []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}}
	return p
}

// storyCNPHouses runs cases modelled on the suite's standard Admin and
// Baseline tests on the suite's namespaces and pods, both backends.
func storyCNPHouses(t *testing.T, c *cluster) {
	c.ensureCNPCRD(t)
	defer c.deleteAllCNPs(t)
	c.addHouses(t)
	const (
		g = "network-policy-conformance-gryffindor/harry-potter-"
		s = "network-policy-conformance-slytherin/draco-malfoy-"
		h = "network-policy-conformance-hufflepuff/cedric-diggory-"
		r = "network-policy-conformance-ravenclaw/luna-lovegood-"
	)
	matrix := func(rows ...string) string {
		out := "\n" + "     " + g + "0 " + g + "1\n"
		for _, row := range rows {
			out += row + "\n"
		}
		return out
	}
	type check struct {
		target lab.Target
		matrix string
	}
	for _, tc := range []struct {
		name   string
		cnps   func() []*npa.ClusterNetworkPolicy
		change func(t *testing.T)
		checks []check
	}{
		{"ingress-tcp: the first matching rule decides, Accept before Deny before Pass",
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("ingress-tcp", npa.AdminTier, 3, houseSubject("gryffindor"))
				p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{
					fromHouse(cnpAccept, "ravenclaw"), fromHouse(cnpDeny, "ravenclaw"), fromHouse(cnpPass, "ravenclaw"),
					fromHouse(cnpDeny, "slytherin", tcpOn(80)), fromHouse(cnpPass, "slytherin", tcpOn(80)),
					fromHouse(cnpAccept, "hufflepuff", tcpOn(80)),
				}
				return []*npa.ClusterNetworkPolicy{p, baselineDenyInto("gryffindor")}
			}, nil,
			[]check{
				{houseTCP80, matrix(r+"0   .   .", r+"1   .   .", s+"0   X   X", s+"1   X   X", h+"0   .   .", h+"1   .   .")},
				{houseTCP8080, matrix(r+"0   .   .", s+"0   X   X", h+"1   X   X")},
			}},
		{"ingress-udp: Deny and Pass on a port, Accept on a range",
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("ingress-udp", npa.AdminTier, 4, houseSubject("gryffindor"))
				p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{
					fromHouse(cnpDeny, "slytherin", udpOn(53)),
					fromHouse(cnpPass, "hufflepuff", udpOn(53)),
					fromHouse(cnpAccept, "hufflepuff", portRange("udp", 5000, 6000)),
					fromHouse(cnpAccept, "ravenclaw", udpOn(53)),
				}
				return []*npa.ClusterNetworkPolicy{p, baselineDenyInto("gryffindor")}
			}, nil,
			[]check{
				{houseUDP53, matrix(s+"0   X   X", h+"0   X   X", r+"1   .   .")},
				{houseUDP5353, matrix(s+"1   X   X", h+"0   .   .", r+"0   X   X")},
			}},
		{"priority: a Pass raised above a Deny lets NetworkPolicy and Baseline decide",
			func() []*npa.ClusterNetworkPolicy {
				deny := cnpOf("priority-50-example", npa.AdminTier, 50, houseSubject("gryffindor"))
				deny.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{fromHouse(cnpDeny, "slytherin")}
				pass := cnpOf("old-priority-60-new-priority-40-example", npa.AdminTier, 60, houseSubject("gryffindor"))
				pass.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{fromHouse(cnpPass, "slytherin")}
				return []*npa.ClusterNetworkPolicy{deny, pass}
			},
			func(t *testing.T) {
				c.expectText(t, matrix(s+"0   X   X", s+"1   X   X"), houseTCP80)
				c.updateCNP(t, "old-priority-60-new-priority-40-example", func(p *npa.ClusterNetworkPolicy) { p.Spec.Priority = 40 })
			},
			[]check{{houseTCP80, matrix(s+"0   .   .", s+"1   .   .", h+"0   .   .")}}},
		{"same priority: two policies at 15 with rules for other peers both apply",
			func() []*npa.ClusterNetworkPolicy {
				a := cnpOf("same-priority-gryffindor-slytherin", npa.AdminTier, 15, houseSubject("gryffindor"))
				a.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{fromHouse(cnpDeny, "slytherin", tcpOn(80))}
				b := cnpOf("same-priority-gryffindor-hufflepuff", npa.AdminTier, 15, houseSubject("gryffindor"))
				b.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{fromHouse(cnpDeny, "hufflepuff", tcpOn(80))}
				return []*npa.ClusterNetworkPolicy{a, b}
			}, nil,
			[]check{{houseTCP80, matrix(s+"0   X   X", h+"1   X   X", r+"0   .   .")}}},
		{"egress-tcp and port range: Deny to a house on a range, Accept before it on one port",
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("egress-tcp", npa.AdminTier, 5, houseSubject("slytherin"))
				p.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{
					toHouse(cnpAccept, "gryffindor", tcpOn(8080)),
					toHouse(cnpDeny, "gryffindor", portRange("tcp", 1, 9000)),
				}
				return []*npa.ClusterNetworkPolicy{p}
			}, nil,
			[]check{
				{houseTCP80, matrix(s+"0   X   X", s+"1   X   X", h+"0   .   .")},
				{houseTCP8080, matrix(s+"0   .   .", s+"1   .   .")},
			}},
		{"baseline egress: Deny to a house applies only where no NetworkPolicy isolates",
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("baseline-egress", npa.BaselineTier, 5, houseSubject("hufflepuff"))
				p.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{toHouse(cnpDeny, "gryffindor", udpOn(5353))}
				return []*npa.ClusterNetworkPolicy{p}
			}, nil,
			[]check{
				{houseUDP5353, matrix(h+"0   X   X", h+"1   X   X", r+"0   .   .")},
				{houseUDP53, matrix(h + "0   .   .")},
			}},
	} {
		t.Run(strings.SplitN(tc.name, ":", 2)[0], func(t *testing.T) {
			c.deleteAllCNPs(t)
			for _, p := range tc.cnps() {
				c.createCNP(t, p)
			}
			if tc.change != nil {
				tc.change(t)
			}
			for _, ch := range tc.checks {
				c.expectText(t, ch.matrix, ch.target)
			}
		})
	}
}
