package clustergen

import (
	"fmt"
	"math/rand/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/policy"
)

// nodeRoles are the values of the "role" label random clusters give their
// Node objects, for ClusterNetworkPolicy nodes peers.
var nodeRoles = []string{"infra", "worker"}

// addClusterPolicies gives c n random ClusterNetworkPolicies, and Node
// objects with labels (their addresses are the hosts' in NodeIPs) for the
// policies' nodes peers. Only called when n > 0, so that clusters without
// cluster policies draw the same random numbers as before.
func (c *Cluster) addClusterPolicies(rng *rand.Rand, n int) {
	for name, addrs := range c.NodeIPs {
		c.Snapshot.AddNodes(&policy.Node{Name: name, Addrs: addrs, Labels: map[string]string{"role": pick(rng, nodeRoles)}})
	}
	for i := range n {
		cnp := randomClusterPolicy(rng, fmt.Sprintf("cnp%d", i))
		c.ClusterPolicies = append(c.ClusterPolicies, cnp)
		c.Snapshot.AddClusterPolicies(policy.ClusterPolicyFromAPI(cnp))
	}
}

func randomClusterPolicy(rng *rand.Rand, name string) *npa.ClusterNetworkPolicy {
	cnp := &npa.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	cnp.Spec.Tier = npa.AdminTier
	if rng.IntN(2) == 0 {
		cnp.Spec.Tier = npa.BaselineTier
	}
	cnp.Spec.Priority = int32(rng.IntN(4)) // ties are likely: they must be ordered the same everywhere
	if rng.IntN(2) == 0 {
		cnp.Spec.Subject.Namespaces = randomSelector(rng)
	} else {
		cnp.Spec.Subject.Pods = &npa.NamespacedPod{NamespaceSelector: *randomSelector(rng), PodSelector: *randomSelector(rng)}
	}
	actions := []npa.ClusterNetworkPolicyRuleAction{npa.ClusterNetworkPolicyRuleActionAccept, npa.ClusterNetworkPolicyRuleActionDeny, npa.ClusterNetworkPolicyRuleActionPass}
	for k := rng.IntN(4); k > 0; k-- {
		r := npa.ClusterNetworkPolicyIngressRule{Action: pick(rng, actions), Protocols: randomProtocols(rng)}
		for m := 1 + rng.IntN(2); m > 0; m-- {
			p := randomClusterPeer(rng, false)
			r.From = append(r.From, npa.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
		}
		cnp.Spec.Ingress = append(cnp.Spec.Ingress, r)
	}
	for k := rng.IntN(4); k > 0; k-- {
		r := npa.ClusterNetworkPolicyEgressRule{Action: pick(rng, actions), Protocols: randomProtocols(rng)}
		for m := 1 + rng.IntN(2); m > 0; m-- {
			r.To = append(r.To, randomClusterPeer(rng, true))
		}
		cnp.Spec.Egress = append(cnp.Spec.Egress, r)
	}
	return cnp
}

func randomClusterPeer(rng *rand.Rand, egress bool) npa.ClusterNetworkPolicyEgressPeer {
	kinds := 2
	if egress {
		kinds = 4
	}
	var p npa.ClusterNetworkPolicyEgressPeer
	switch rng.IntN(kinds) {
	case 0:
		p.Namespaces = randomSelector(rng)
	case 1:
		p.Pods = &npa.NamespacedPod{NamespaceSelector: *randomSelector(rng), PodSelector: *randomSelector(rng)}
	case 2:
		p.Nodes = &metav1.LabelSelector{MatchLabels: map[string]string{"role": pick(rng, nodeRoles)}}
	case 3:
		for m := 1 + rng.IntN(2); m > 0; m-- {
			b := randomIPBlock(rng) // its CIDR (exceptions are ipBlock's, not networks')
			p.Networks = append(p.Networks, npa.CIDR(b.CIDR))
		}
		if rng.IntN(20) == 0 {
			p.DomainNames = []npa.DomainName{"example.com"} // unsupported: fails closed
		}
	}
	return p
}

func randomProtocols(rng *rand.Rand) []npa.ClusterNetworkPolicyProtocol {
	if rng.IntN(3) == 0 {
		return nil // every protocol and port
	}
	var out []npa.ClusterNetworkPolicyProtocol
	for n := 1 + rng.IntN(2); n > 0; n-- {
		var port *npa.Port
		switch rng.IntN(3) {
		case 0: // every port of the protocol
		case 1:
			port = &npa.Port{Number: pick(rng, portNumbers)}
		case 2:
			lo := pick(rng, portNumbers)
			port = &npa.Port{Range: &npa.PortRange{Start: lo, End: lo + int32(rng.IntN(8000))}}
		}
		var p npa.ClusterNetworkPolicyProtocol
		switch rng.IntN(4) {
		case 0:
			p.TCP = &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
		case 1:
			p.UDP = &npa.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}
		case 2:
			p.SCTP = &npa.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}
		case 3:
			p.DestinationNamedPort = pick(rng, portNames)
		}
		out = append(out, p)
	}
	return out
}
