package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/weftnet/weft/internal/lab"
)

// ClusterNetworkPolicy stories. The cases are modelled on the conformance
// suite of sigs.k8s.io/network-policy-api (its standard ingress, egress,
// port range, priority, same-priority, pass and baseline cases), on the
// lab's model instead of the suite's houses: namespaces x, y, z (label ns)
// for gryffindor, slytherin, hufflepuff; pods a and b on node-1, c on
// node-2; TCP and UDP on ports 80 and 81 (this kernel has no SCTP).

func (c *cluster) cnpClient(t testing.TB) npaclient.Interface {
	t.Helper()
	cl, err := c.lab.ClusterPolicyClient()
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// ensureCNPCRD installs the ClusterNetworkPolicy CRD if it is not, and waits
// until weft on every node says it enforces them.
func (c *cluster) ensureCNPCRD(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := c.lab.InstallClusterNetworkPolicyCRD(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitLogs(t, "ClusterNetworkPolicies are served")
}

// waitLogs waits up to waitFor until every weft's log, since it started,
// holds text (the last time it says one of the two things about the CRD).
func (c *cluster) waitLogs(t testing.TB, text string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for i, w := range c.wefts {
		for {
			log := w.Log()
			present := strings.LastIndex(log, "ClusterNetworkPolicies are served")
			absent := strings.LastIndex(log, "ClusterNetworkPolicy CRD (policy.networking.k8s.io/v1alpha2) is not installed")
			if (strings.Contains(text, "are served") && present > absent) || (!strings.Contains(text, "are served") && absent > present) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("weft on %s did not say %q within %v:\n%s", c.lab.Nodes[i].Name, text, waitFor, tailLines(log, 20))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (c *cluster) createCNP(t testing.TB, p *npa.ClusterNetworkPolicy) {
	t.Helper()
	if _, err := c.cnpClient(t).PolicyV1alpha2().ClusterNetworkPolicies().Create(context.Background(), p.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterNetworkPolicy %s: %v", p.Name, err)
	}
}

func (c *cluster) updateCNP(t testing.TB, name string, change func(*npa.ClusterNetworkPolicy)) {
	t.Helper()
	ctx := context.Background()
	cl := c.cnpClient(t).PolicyV1alpha2().ClusterNetworkPolicies()
	p, err := cl.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(p)
	if _, err := cl.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update ClusterNetworkPolicy %s: %v", name, err)
	}
}

func (c *cluster) deleteCNP(t testing.TB, name string) {
	t.Helper()
	if err := c.cnpClient(t).PolicyV1alpha2().ClusterNetworkPolicies().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete ClusterNetworkPolicy %s: %v", name, err)
	}
}

// deleteAllCNPs removes every ClusterNetworkPolicy (none when the CRD is
// not installed).
func (c *cluster) deleteAllCNPs(t testing.TB) {
	t.Helper()
	cl := c.cnpClient(t).PolicyV1alpha2().ClusterNetworkPolicies()
	list, err := cl.List(context.Background(), metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Fatalf("list ClusterNetworkPolicies: %v", err)
	}
	for _, p := range list.Items {
		c.deleteCNP(t, p.Name)
	}
}

// CNP builders.

func cnpOf(name string, tier npa.Tier, prio int32, subject npa.ClusterNetworkPolicySubject) *npa.ClusterNetworkPolicy {
	return &npa.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: npa.ClusterNetworkPolicySpec{Tier: tier, Priority: prio, Subject: subject}}
}

func subjectNS(ns string) npa.ClusterNetworkPolicySubject {
	return npa.ClusterNetworkPolicySubject{Namespaces: sel("ns", ns)}
}

func subjectPod(ns, pod string) npa.ClusterNetworkPolicySubject {
	return npa.ClusterNetworkPolicySubject{Pods: &npa.NamespacedPod{NamespaceSelector: *sel("ns", ns), PodSelector: *sel("pod", pod)}}
}

func inRule(action npa.ClusterNetworkPolicyRuleAction, fromNS string, protos ...npa.ClusterNetworkPolicyProtocol) npa.ClusterNetworkPolicyIngressRule {
	return npa.ClusterNetworkPolicyIngressRule{Action: action, From: []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("ns", fromNS)}}, Protocols: protos}
}

func tcpOn(port int32) npa.ClusterNetworkPolicyProtocol {
	return npa.ClusterNetworkPolicyProtocol{TCP: &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npa.Port{Number: port}}}
}

func udpOn(port int32) npa.ClusterNetworkPolicyProtocol {
	return npa.ClusterNetworkPolicyProtocol{UDP: &npa.ClusterNetworkPolicyProtocolUDP{DestinationPort: &npa.Port{Number: port}}}
}

const (
	cnpAccept = npa.ClusterNetworkPolicyRuleActionAccept
	cnpDeny   = npa.ClusterNetworkPolicyRuleActionDeny
	cnpPass   = npa.ClusterNetworkPolicyRuleActionPass
)

// storyCNPCRDAppears: weft runs without the ClusterNetworkPolicy CRD and
// says so; the CRD is installed while it runs and weft enforces an Admin
// Deny without a restart; the CRD is removed and weft goes back to
// NetworkPolicy alone.
func storyCNPCRDAppears(t *testing.T, c *cluster) {
	ctx := context.Background()
	if err := c.lab.DeleteClusterNetworkPolicyCRD(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitLogs(t, "is not installed")
	started := time.Now()
	c.ensureCNPCRD(t)
	t.Logf("CRD installed → weft on both nodes watching ClusterNetworkPolicies: %v (it looks every 10 s)", time.Since(started).Round(100*time.Millisecond))
	p := cnpOf("deny-y-into-x", npa.AdminTier, 10, subjectNS("x"))
	p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y")}
	c.createCNP(t, p)
	c.expectText(t, `
     x/a x/c y/a
y/a   X   X   .
y/c   X   X   .
z/a   .   .   .
`, tcp80)
	if err := c.lab.DeleteClusterNetworkPolicyCRD(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitLogs(t, "is not installed")
	c.expectText(t, `
     x/a x/c
y/a   .   .
`, tcp80)
}

// storyCNPConformance runs the conformance-style cases, each from no policy
// and back.
func storyCNPConformance(t *testing.T, c *cluster) {
	c.ensureCNPCRD(t)
	defer c.deleteAllCNPs(t)
	type check struct {
		target lab.Target
		matrix string
	}
	cases := []struct {
		name   string
		nps    func() []*networkingv1.NetworkPolicy
		cnps   func() []*npa.ClusterNetworkPolicy
		checks []check
	}{
		{"admin-ingress-tcp: Deny beats a NetworkPolicy allow, Accept beats its isolation",
			func() []*networkingv1.NetworkPolicy { return []*networkingv1.NetworkPolicy{denyAll("x")} },
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("gryffindor-ingress-tcp", npa.AdminTier, 10, subjectNS("x"))
				p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y", tcpOn(80)), inRule(cnpAccept, "z", tcpOn(80))}
				return []*npa.ClusterNetworkPolicy{p}
			},
			[]check{{tcp80, `
     x/a x/c
y/a   X   X
y/c   X   X
z/a   .   .
z/c   .   .
`}, {tcp81, `
     x/a x/c
y/a   X   X
z/a   X   X
`}}},
		{"admin-ingress-udp and pass: Pass defers to NetworkPolicy, then Baseline",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				a := cnpOf("gryffindor-ingress-udp", npa.AdminTier, 10, subjectNS("x"))
				a.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y", udpOn(80)), inRule(cnpPass, "z", udpOn(80))}
				b := cnpOf("baseline-no-z", npa.BaselineTier, 10, subjectNS("x"))
				b.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "z")}
				return []*npa.ClusterNetworkPolicy{a, b}
			},
			[]check{{udp80, `
     x/a x/c y/a
y/a   X   X   .
z/a   X   X   .
z/c   X   X   .
`}, {tcp80, `
     x/a x/c
y/a   .   .
z/a   X   X
`}}},
		{"egress to a network and a port range",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("slytherin-egress", npa.AdminTier, 10, subjectPod("y", "a"))
				p.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{{Action: cnpDeny,
					To:        []npa.ClusterNetworkPolicyEgressPeer{{Networks: []npa.CIDR{npa.CIDR(c.pods["x/c"].IPv4.String() + "/32")}}},
					Protocols: []npa.ClusterNetworkPolicyProtocol{{TCP: &npa.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npa.Port{Range: &npa.PortRange{Start: 79, End: 80}}}}}}}
				return []*npa.ClusterNetworkPolicy{p}
			},
			[]check{{tcp80, `
     x/a x/c
y/a   .   X
y/b   .   .
`}, {tcp81, `
     x/c
y/a   .
`}}},
		{"priority: the lower value decides",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				acc := cnpOf("accept-at-5", npa.AdminTier, 5, subjectNS("x"))
				acc.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpAccept, "y")}
				den := cnpOf("deny-at-50", npa.AdminTier, 50, subjectNS("x"))
				den.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y"), inRule(cnpDeny, "z")}
				return []*npa.ClusterNetworkPolicy{acc, den}
			},
			[]check{{tcp80, `
     x/a x/c
y/a   .   .
z/a   X   X
`}}},
		{"same priority: weft orders by name",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				den := cnpOf("a-deny", npa.AdminTier, 7, subjectNS("x"))
				den.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y")}
				acc := cnpOf("b-accept", npa.AdminTier, 7, subjectNS("x"))
				acc.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpAccept, "y")}
				return []*npa.ClusterNetworkPolicy{acc, den}
			},
			[]check{{tcp80, `
     x/a x/c
y/a   X   X
`}}},
		{"baseline applies only where no NetworkPolicy isolates",
			func() []*networkingv1.NetworkPolicy {
				return []*networkingv1.NetworkPolicy{netpol("z", "allow-x-into-a", networkingv1.NetworkPolicySpec{
					PodSelector: *sel("pod", "a"),
					Ingress:     fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "x")}),
				})}
			},
			func() []*npa.ClusterNetworkPolicy {
				b := cnpOf("baseline-isolate-z", npa.BaselineTier, 1, subjectNS("z"))
				b.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "x"), inRule(cnpDeny, "y")}
				return []*npa.ClusterNetworkPolicy{b}
			},
			[]check{{tcp80, `
     z/a z/b z/c
x/a   .   X   X
y/a   X   X   X
z/b   X   .   .
`}}},
		{"a named port",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("no-y-on-serve-81-tcp", npa.AdminTier, 10, subjectNS("x"))
				p.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{{Action: cnpDeny,
					From:      []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("ns", "y")}},
					Protocols: []npa.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "serve-81-tcp"}}}}
				return []*npa.ClusterNetworkPolicy{p}
			},
			[]check{{tcp81, `
     x/a x/c
y/a   X   X
z/a   .   .
`}, {tcp80, `
     x/a
y/a   .
`}}},
		{"domain names: weft cannot match names, so the Deny rule denies all it might cover",
			nil,
			func() []*npa.ClusterNetworkPolicy {
				p := cnpOf("no-example-com", npa.AdminTier, 10, subjectPod("y", "a"))
				p.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{{Action: cnpDeny,
					To: []npa.ClusterNetworkPolicyEgressPeer{{DomainNames: []npa.DomainName{"example.com"}}}}}
				return []*npa.ClusterNetworkPolicy{p}
			},
			[]check{{tcp80, `
     x/a x/c
y/a   X   X
y/b   .   .
`}}},
	}
	for _, tc := range cases {
		t.Run(strings.SplitN(tc.name, ":", 2)[0], func(t *testing.T) {
			c.deleteAllPolicies(t)
			c.deleteAllCNPs(t)
			c.expectOpen(t)
			if tc.nps != nil {
				for _, p := range tc.nps() {
					c.create(t, p)
				}
			}
			for _, p := range tc.cnps() {
				c.createCNP(t, p)
			}
			for _, ch := range tc.checks {
				c.expectText(t, ch.matrix, ch.target)
			}
		})
	}
	// The unsupported field was named in weft's log, with the policy.
	for i, w := range c.wefts {
		if !strings.Contains(w.Log(), `clusterNetworkPolicy=no-example-com field=spec.egress[0].to[0].domainNames`) {
			t.Errorf("weft on %s did not name the domainNames rule it cannot enforce:\n%s", c.lab.Nodes[i].Name, tailLines(w.Log(), 20))
		}
	}
	c.deleteAllPolicies(t)
	c.deleteAllCNPs(t)
}

// storyCNPChanges: changes of cluster policies converge — a priority
// changed, a rule inserted before another, a policy deleted.
func storyCNPChanges(t *testing.T, c *cluster) {
	c.ensureCNPCRD(t)
	defer c.deleteAllCNPs(t)
	acc := cnpOf("accept-y", npa.AdminTier, 10, subjectNS("x"))
	acc.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpAccept, "y")}
	den := cnpOf("deny-y", npa.AdminTier, 20, subjectNS("x"))
	den.Spec.Ingress = []npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y")}
	c.create(t, denyAll("x"))
	c.createCNP(t, acc)
	c.createCNP(t, den)
	open, closed := `
     x/a x/c
y/a   .   .
y/c   .   .
`, `
     x/a x/c
y/a   X   X
y/c   X   X
`
	c.expectText(t, open, tcp80) // accept-y comes first
	c.updateCNP(t, "deny-y", func(p *npa.ClusterNetworkPolicy) { p.Spec.Priority = 5 })
	c.expectText(t, closed, tcp80) // now deny-y does
	c.updateCNP(t, "deny-y", func(p *npa.ClusterNetworkPolicy) { p.Spec.Priority = 20 })
	c.expectText(t, open, tcp80)
	c.updateCNP(t, "accept-y", func(p *npa.ClusterNetworkPolicy) {
		p.Spec.Ingress = append([]npa.ClusterNetworkPolicyIngressRule{inRule(cnpDeny, "y", tcpOn(80))}, p.Spec.Ingress...)
	})
	c.expectText(t, closed, tcp80) // the inserted rule comes first
	c.expectText(t, open, tcp81)
	c.deleteCNP(t, "accept-y")
	c.expectText(t, closed, tcp81) // deny-y decides now
	c.deleteCNP(t, "deny-y")
	c.expectText(t, closed, tcp81) // x's deny-all does
	// Equal priorities are warned about, naming both.
	c.createCNP(t, acc)
	tie := cnpOf("accept-y-too", npa.AdminTier, 10, subjectNS("x"))
	tie.Spec.Ingress = acc.Spec.Ingress
	c.createCNP(t, tie)
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(c.wefts[0].Log(), `first=accept-y second=accept-y-too`) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the equal priorities:\n%s", tailLines(c.wefts[0].Log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
