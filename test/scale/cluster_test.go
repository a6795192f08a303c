package scale

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftnet/weft/internal/clustergen"
	"github.com/weftnet/weft/internal/policy"
)

// scale is one size of generated cluster.
type scale struct {
	Name                           string
	Pods, Namespaces, Policies     int
	LocalPods                      int
	localPerNamespace, otherNodes  int
	changes                        int
	loadWorkers                    int
	benchNode                      string
	probePort                      int
	pairs                          int
	friendLabel, benchPolicyPrefix string
	podImage                       string
	seed                           uint64
}

// scales are S1, S2 and S3 of issue 17.
var scales = []scale{
	newScale("S1", 1_000, 100, 200, 60),
	newScale("S2", 10_000, 1_000, 2_000, 60),
	newScale("S3", 100_000, 10_000, 10_000, 100),
}

func newScale(name string, pods, namespaces, policies, local int) scale {
	return scale{Name: name, Pods: pods, Namespaces: namespaces, Policies: policies, LocalPods: local,
		localPerNamespace: 6, otherNodes: 19, changes: 40, loadWorkers: 48, benchNode: "node-1",
		probePort: 8080, pairs: 8, friendLabel: "weft-bench-friend", benchPolicyPrefix: "weft-bench-",
		podImage: "registry.k8s.io/pause:3.10", seed: 1}
}

// localNamespaces is how many namespaces hold the local pods.
func (s scale) localNamespaces() int {
	return (s.LocalPods + s.localPerNamespace - 1) / s.localPerNamespace
}

// The addresses: node-1 (the lab's) has 10.41.0.0/16 and its local pods
// take 10.41.0.10 on; API-only node k of 0…18 (node-(k+2)) has the /19
// 10.(33+k/8).(32*(k%8)).0/19 and the address 10.32.0.(100+k+2).
var (
	localBase = netip.MustParseAddr("10.41.0.10")
)

func otherNodeName(k int) string { return clustergen.NodeName(k + 1) }

func otherNodeRange(k int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(33 + k/8), byte(32 * (k % 8)), 0}), 19)
}

func otherNodeAddr(k int) netip.Addr { return netip.AddrFrom4([4]byte{10, 32, 0, byte(100 + k + 2)}) }

// addAddr is a + n for IPv4 a.
func addAddr(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// generate makes the scale's cluster: clustergen.Scale with the local pods
// in a few namespaces, addresses from the nodes' ranges, and an image for
// every container (the API server wants one).
func (s scale) generate() *clustergen.Cluster {
	c := clustergen.Scale(clustergen.ScaleConfig{
		Pods: s.Pods, Namespaces: s.Namespaces, Policies: s.Policies,
		Node: s.benchNode, LocalPods: s.LocalPods, Nodes: s.otherNodes + 1, Seed: s.seed,
		LocalNamespaces: s.localNamespaces(),
		PodAddr: func(i int, node string) netip.Addr {
			if node == s.benchNode {
				return addAddr(localBase, i)
			}
			// Pod i ≥ LocalPods runs on node-(2+i%19); it is the
			// (i/19)-th of that node.
			k := i % s.otherNodes
			return addAddr(otherNodeRange(k).Addr(), 1+i/s.otherNodes)
		},
	})
	hosts := map[string]string{}
	for k := range s.otherNodes {
		hosts[otherNodeName(k)] = otherNodeAddr(k).String()
	}
	for _, p := range c.Pods {
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].Image = s.podImage
		}
		if h, ok := hosts[p.Spec.NodeName]; ok {
			p.Status.HostIP, p.Status.HostIPs = h, []corev1.HostIP{{IP: h}}
			p.Status.PodIP = p.Status.PodIPs[0].IP
		}
	}
	return c
}

// pair is a path between two local pods that the benchmark opens and
// closes: to is isolated and lets from in neither by a generated policy
// nor by its friends policy until from has the friends label.
type pair struct {
	from, to *corev1.Pod
	// friends lets in pods labelled friendLabel=label into to; allow lets
	// from in (created and deleted by the policy phase).
	friends, allow *networkingv1.NetworkPolicy
	label          string
}

func (p pair) String() string {
	return fmt.Sprintf("%s/%s -> %s/%s", p.from.Namespace, p.from.Name, p.to.Namespace, p.to.Name)
}

// plan is what the benchmark probes, chosen with the reference evaluator
// on the generated cluster plus the friends policies.
type plan struct {
	pairs []pair
	// blocked (pairs[0]) and allowed are the cold start's probes: allowed
	// is a path into an isolated local pod that a generated policy opens.
	blocked, allowed pair
	// allowedBy names the generated policies that let allowed in.
	allowedBy []string
}

// localPods are the generated pods on the benchmark's node, in order.
func (s scale) localPods(c *clustergen.Cluster) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.Pods {
		if p.Spec.NodeName == s.benchNode {
			out = append(out, p)
		}
	}
	return out
}

// makePlan picks s.pairs pairs of local pods, each target in a namespace of
// its own, and the cold start's allowed path, and proves with the
// evaluator that each pair is blocked now and opened by its allow policy
// and by its friends label.
func (s scale) makePlan(c *clustergen.Cluster) (*plan, error) {
	local := s.localPods(c)
	if len(local) < 2*s.pairs {
		return nil, fmt.Errorf("%s: %d local pods, the plan needs %d", s.Name, len(local), 2*s.pairs)
	}
	nss := make([]*policy.Namespace, 0, len(c.Namespaces))
	for _, ns := range c.Namespaces {
		nss = append(nss, policy.NamespaceFromAPI(ns))
	}
	pods := make([]*policy.Pod, 0, len(c.Pods))
	index := map[string]int{}
	for i, p := range c.Pods {
		pods = append(pods, policy.PodFromAPI(p))
		index[p.Namespace+"/"+p.Name] = i
	}
	pols := make([]*policy.Policy, 0, len(c.Policies)+s.pairs)
	for _, np := range c.Policies {
		pols = append(pols, policy.PolicyFromAPI(np))
	}
	// Targets: one local pod in each of the first namespaces.
	var targets []*corev1.Pod
	seen := map[string]bool{}
	for _, p := range local {
		if len(targets) < s.pairs && !seen[p.Namespace] {
			seen[p.Namespace] = true
			targets = append(targets, p)
		}
	}
	if len(targets) < s.pairs {
		return nil, fmt.Errorf("%s: local pods in %d namespaces, the plan needs %d", s.Name, len(targets), s.pairs)
	}
	pl := &plan{}
	for j, t := range targets {
		label := fmt.Sprintf("pair-%d", j)
		pl.pairs = append(pl.pairs, pair{to: t, label: label,
			friends: s.benchPolicy(t.Namespace, fmt.Sprintf("friends-%d", j), t.Labels["app"], networkingv1.NetworkPolicyPeer{
				NamespaceSelector: &metav1.LabelSelector{},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{s.friendLabel: label}},
			})})
		pols = append(pols, policy.PolicyFromAPI(pl.pairs[j].friends))
	}
	snap := policy.BuildSnapshot(nss, pods, pols)
	decide := func(snap *policy.Snapshot, from, to *corev1.Pod) policy.Decision {
		e := &policy.Evaluator{Snapshot: snap, Node: s.benchNode}
		return e.Decide(policy.Flow{Src: podAddr(from), Dst: podAddr(to), Protocol: policy.TCP, Port: uint16(s.probePort)})
	}
	isTarget := func(p *corev1.Pod) bool {
		for _, t := range targets {
			if t == p {
				return true
			}
		}
		return false
	}
	used := map[*corev1.Pod]bool{}
	for j := range pl.pairs {
		pr := &pl.pairs[j]
		var why []string
		for _, from := range local {
			if isTarget(from) || used[from] || from.Namespace == pr.to.Namespace {
				continue
			}
			if d := decide(snap, from, pr.to); d.Allowed {
				continue
			}
			pr.from = from
			pr.allow = s.benchPolicy(pr.to.Namespace, fmt.Sprintf("allow-%d", j), pr.to.Labels["app"], networkingv1.NetworkPolicyPeer{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{policy.NamespaceNameLabel: from.Namespace}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": from.Labels["app"]}},
			})
			// Opened by the allow policy?
			withAllow := policy.BuildSnapshot(nss, pods, append(pols[:len(pols):len(pols)], policy.PolicyFromAPI(pr.allow)))
			if d := decide(withAllow, from, pr.to); !d.Allowed {
				why = append(why, fmt.Sprintf("%s: not opened by %s", pr, pr.allow.Name))
				pr.from = nil
				continue
			}
			// Opened by the friends label?
			labelled := from.DeepCopy()
			labelled.Labels[s.friendLabel] = pr.label
			relabelled := append(pods[:0:0], pods...)
			relabelled[index[from.Namespace+"/"+from.Name]] = policy.PodFromAPI(labelled)
			if d := decide(policy.BuildSnapshot(nss, relabelled, pols), labelled, pr.to); !d.Allowed {
				why = append(why, fmt.Sprintf("%s: not opened by the label %s=%s", pr, s.friendLabel, pr.label))
				pr.from = nil
				continue
			}
			used[from] = true
			break
		}
		if pr.from == nil {
			return nil, fmt.Errorf("%s: no local pod is blocked from %s/%s and let in by a new policy or label: %s",
				s.Name, pr.to.Namespace, pr.to.Name, strings.Join(why, "; "))
		}
	}
	pl.blocked = pl.pairs[0]
	// The cold start's allowed path: into an isolated pod, by a generated
	// policy.
	for _, to := range local {
		for _, from := range local {
			if from == to {
				continue
			}
			d := decide(snap, from, to)
			if !d.Allowed || len(d.Ingress.IsolatedBy) == 0 {
				continue
			}
			var by []string
			for _, r := range d.Ingress.AllowedBy {
				if !strings.HasPrefix(r.Policy.Name, s.benchPolicyPrefix) {
					by = append(by, r.Policy.String())
				}
			}
			if len(by) > 0 {
				pl.allowed, pl.allowedBy = pair{from: from, to: to}, by
				return pl, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: no path between local pods is let in by a generated policy: give the local pods more namespaces in common (localPerNamespace)", s.Name)
}

// benchPolicy is a policy of the benchmark's own: it selects app in
// namespace and lets peer in on the probe port.
func (s scale) benchPolicy(namespace, name, app string, peer networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(int32(s.probePort))
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.benchPolicyPrefix + name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{peer},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

func podAddr(p *corev1.Pod) netip.Addr { return netip.MustParseAddr(p.Status.PodIPs[0].IP) }
