package clustergen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/policy"
)

// Change is one change Mutate made to a cluster: the objects written, by
// key ("namespace/name", or the name of a namespace, node or cluster
// policy), nil for the ones deleted.
type Change struct {
	// What says what changed, for messages ("relabel pod ns1/pod3").
	What       string
	Pods       map[string]*corev1.Pod
	Namespaces map[string]*corev1.Namespace
	Policies   map[string]*networkingv1.NetworkPolicy
	// Nodes are changed Node objects (their normal form; the random
	// cluster's nodes exist only as such).
	Nodes map[string]*policy.Node
	// ClusterPolicies is set when the cluster policies changed: c's
	// ClusterPolicies are all of them.
	ClusterPolicies bool
}

// Mutate makes one random change to c, of the kinds a cluster sees: pods
// created (some taking the address of a pod that is gone or terminating),
// relabelled, moved through their phases, terminating, deleted;
// namespaces relabelled, created, deleted; policies created, edited,
// deleted; cluster policies and nodes changed. c's object lists (not its
// Snapshot) are updated; the change is returned.
func (c *Cluster) Mutate(rng *rand.Rand) Change {
	ch := Change{Pods: map[string]*corev1.Pod{}, Namespaces: map[string]*corev1.Namespace{}, Policies: map[string]*networkingv1.NetworkPolicy{}, Nodes: map[string]*policy.Node{}}
	c.serial++
	nsName := func() string {
		if len(c.Namespaces) == 0 || rng.IntN(8) == 0 {
			return fmt.Sprintf("ns%d", rng.IntN(len(c.Namespaces)+2))
		}
		return pick(rng, c.Namespaces).Name
	}
	setPod := func(i int, p *corev1.Pod) {
		c.Pods[i] = p
		ch.Pods[p.Namespace+"/"+p.Name] = p
	}
	switch r := rng.IntN(100); {
	case r < 20 || len(c.Pods) == 0: // a new pod
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsName(), Name: fmt.Sprintf("new%d", c.serial), Labels: randomLabels(rng)},
			Spec:       corev1.PodSpec{NodeName: NodeName(rng.IntN(max(1, len(c.NodeIPs))))},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if rng.IntN(5) == 0 {
			p.Spec.NodeName, p.Status.Phase = "", corev1.PodPending // not scheduled yet
		}
		if rng.IntN(2) == 0 {
			for _, ip := range c.NodeIPs[p.Spec.NodeName] {
				p.Status.HostIPs = append(p.Status.HostIPs, corev1.HostIP{IP: ip.String()})
			}
		}
		if rng.IntN(2) == 0 {
			p.Spec.Containers = []corev1.Container{{Name: "main", Ports: []corev1.ContainerPort{{Name: pick(rng, portNames), Protocol: corev1.ProtocolTCP, ContainerPort: pick(rng, portNumbers)}}}}
		}
		switch {
		case p.Status.Phase == corev1.PodPending:
		case rng.IntN(3) == 0 && len(c.Pods) > 0: // an address another pod holds or held
			p.Status.PodIPs = slices.Clone(pick(rng, c.Pods).Status.PodIPs)
		case rng.IntN(15) == 0:
			p.Spec.HostNetwork = true
			for _, ip := range c.NodeIPs[p.Spec.NodeName] {
				p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
			}
		default:
			i := 1000 + c.serial
			p.Status.PodIPs = []corev1.PodIP{{IP: podIPv4(i).String()}}
			if rng.IntN(2) == 0 {
				p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: podIPv6(i).String()})
			}
		}
		c.Pods = append(c.Pods, p)
		ch.Pods[p.Namespace+"/"+p.Name] = p
		ch.What = "create pod " + p.Namespace + "/" + p.Name
	case r < 40: // relabel a pod
		i := rng.IntN(len(c.Pods))
		p := c.Pods[i].DeepCopy()
		p.Labels = randomLabels(rng)
		setPod(i, p)
		ch.What = "relabel pod " + p.Namespace + "/" + p.Name
	case r < 50: // a pod's life goes on: scheduled, running, finished, terminating, new address
		i := rng.IntN(len(c.Pods))
		p := c.Pods[i].DeepCopy()
		switch rng.IntN(5) {
		case 0:
			p.Status.Phase = corev1.PodSucceeded
		case 1:
			now := metav1.Now()
			p.DeletionTimestamp = &now
		case 2:
			if p.Spec.NodeName == "" {
				p.Spec.NodeName = NodeName(rng.IntN(max(1, len(c.NodeIPs))))
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIPs = []corev1.PodIP{{IP: podIPv4(2000 + c.serial).String()}}
		case 3:
			p.Status.PodIPs = nil
		default:
			p.Status.PodIPs = []corev1.PodIP{{IP: podIPv6(rng.IntN(len(c.Pods) + 8)).String()}}
		}
		setPod(i, p)
		ch.What = "pod life " + p.Namespace + "/" + p.Name
	case r < 60: // delete a pod
		i := rng.IntN(len(c.Pods))
		p := c.Pods[i]
		c.Pods = slices.Delete(c.Pods, i, i+1)
		ch.Pods[p.Namespace+"/"+p.Name] = nil
		ch.What = "delete pod " + p.Namespace + "/" + p.Name
	case r < 68: // namespaces: relabel, create, delete
		name := nsName()
		i := slices.IndexFunc(c.Namespaces, func(n *corev1.Namespace) bool { return n.Name == name })
		switch {
		case i >= 0 && rng.IntN(5) == 0:
			c.Namespaces = slices.Delete(c.Namespaces, i, i+1)
			ch.Namespaces[name] = nil
			ch.What = "delete namespace " + name
		case i >= 0:
			n := c.Namespaces[i].DeepCopy()
			n.Labels = randomLabels(rng)
			c.Namespaces[i] = n
			ch.Namespaces[name] = n
			ch.What = "relabel namespace " + name
		default:
			n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: randomLabels(rng)}}
			c.Namespaces = append(c.Namespaces, n)
			ch.Namespaces[name] = n
			ch.What = "create namespace " + name
		}
	case r < 90: // policies: create, edit, delete
		switch k := rng.IntN(3); {
		case k == 0 || len(c.Policies) == 0:
			np := randomPolicy(rng, nsName(), fmt.Sprintf("newpol%d", c.serial))
			c.Policies = append(c.Policies, np)
			ch.Policies[np.Namespace+"/"+np.Name] = np
			ch.What = "create policy " + np.Namespace + "/" + np.Name
		case k == 1:
			i := rng.IntN(len(c.Policies))
			old := c.Policies[i]
			np := randomPolicy(rng, old.Namespace, old.Name)
			c.Policies[i] = np
			ch.Policies[np.Namespace+"/"+np.Name] = np
			ch.What = "edit policy " + np.Namespace + "/" + np.Name
		default:
			i := rng.IntN(len(c.Policies))
			old := c.Policies[i]
			c.Policies = slices.Delete(c.Policies, i, i+1)
			ch.Policies[old.Namespace+"/"+old.Name] = nil
			ch.What = "delete policy " + old.Namespace + "/" + old.Name
		}
	case r < 95 && len(c.ClusterPolicies) > 0: // a cluster policy replaced
		i := rng.IntN(len(c.ClusterPolicies))
		c.ClusterPolicies[i] = randomClusterPolicy(rng, c.ClusterPolicies[i].Name)
		ch.ClusterPolicies = true
		ch.What = "edit cluster policy " + c.ClusterPolicies[i].Name
	default: // a node relabelled or given another address
		name := NodeName(rng.IntN(max(1, len(c.NodeIPs))))
		n := &policy.Node{Name: name, Addrs: slices.Clone(c.NodeIPs[name]), Labels: map[string]string{"role": pick(rng, nodeRoles)}}
		if rng.IntN(2) == 0 {
			n.Addrs = append(n.Addrs, netip.AddrFrom4([4]byte{10, 48, 0, byte(c.serial)}))
		}
		ch.Nodes[name] = n
		ch.What = "change node " + name
	}
	return ch
}

// FullSnapshot builds c's snapshot anew from its objects and nodes.
func (c *Cluster) FullSnapshot(nodes []*policy.Node) *policy.Snapshot {
	s := policy.NewSnapshot(c.Namespaces, c.Pods, c.Policies)
	s.AddNodes(nodes...)
	var cnps []*policy.ClusterPolicy
	for _, p := range c.ClusterPolicies {
		cnps = append(cnps, policy.ClusterPolicyFromAPI(p))
	}
	s.AddClusterPolicies(cnps...)
	return s
}
