package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/events"
	"github.com/weftnet/weft/internal/lab"
)

// domainNamesCNP is a ClusterNetworkPolicy the API server accepts and weft
// cannot fully understand (it cannot match domain names).
func domainNamesCNP(name string) *npa.ClusterNetworkPolicy {
	p := cnpOf(name, npa.AdminTier, 10, subjectPod("y", "a"))
	p.Spec.Egress = []npa.ClusterNetworkPolicyEgressRule{{Action: cnpDeny,
		To: []npa.ClusterNetworkPolicyEgressPeer{{DomainNames: []npa.DomainName{"example.com"}}}}}
	return p
}

// cnpWrittenBy returns a name from prefix-0, prefix-1, ... whose first
// Event writer is node, by the ranking every weft computes.
func cnpWrittenBy(l *lab.Lab, node *lab.Node, prefix string) string {
	var nodes []string
	for _, n := range l.Nodes {
		nodes = append(nodes, n.Name)
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if events.WriterRank(nodes, node.Name, "clusternetworkpolicy//"+name, 2) == 0 {
			return name
		}
	}
}

// policyEvents lists the Events regarding the object with uid in namespace.
func policyEvents(t *testing.T, l *lab.Lab, namespace, uid string) []eventsv1.Event {
	t.Helper()
	list, err := l.Client().EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list Events: %v", err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if string(ev.Regarding.UID) == uid {
			out = append(out, ev)
		}
	}
	return out
}

// storyPolicyEvent: a ClusterNetworkPolicy weft cannot fully understand
// gets one Warning Event on the real API server, with both wefts running,
// written by the node the ranking chose; kubectl finds it by the policy.
func storyPolicyEvent(t *testing.T, c *cluster) {
	c.ensureCNPCRD(t)
	defer c.deleteAllCNPs(t)
	ctx := context.Background()
	// The writer is node-2 here, to see that it is not simply the first node.
	writer := c.lab.Nodes[len(c.lab.Nodes)-1]
	name := cnpWrittenBy(c.lab, writer, "events-"+c.backend)
	created := time.Now()
	c.createCNP(t, domainNamesCNP(name))
	p, err := c.cnpClient(t).PolicyV1alpha2().ClusterNetworkPolicies().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := string(p.UID)
	var evs []eventsv1.Event
	for deadline := time.Now().Add(waitFor); ; time.Sleep(100 * time.Millisecond) {
		if evs = policyEvents(t, c.lab, metav1.NamespaceDefault, uid); len(evs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Event regarding ClusterNetworkPolicy %s within %v", name, waitFor)
		}
	}
	t.Logf("policy created → Event on the API server: %v", time.Since(created).Round(time.Millisecond))
	// Both wefts have seen the problem (each logs it) before the count.
	for i, w := range c.wefts {
		for deadline := time.Now().Add(waitFor); !strings.Contains(w.Log(), "clusterNetworkPolicy="+name+" field=spec.egress[0].to[0].domainNames"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("weft on %s did not log the problem:\n%s", c.lab.Nodes[i].Name, tailLines(w.Log(), 20))
			}
		}
	}
	time.Sleep(time.Second)
	evs = policyEvents(t, c.lab, metav1.NamespaceDefault, uid)
	if len(evs) != 1 {
		t.Fatalf("%d Events regarding %s, want 1: %+v", len(evs), name, evs)
	}
	ev := evs[0]
	t.Logf("Event %s/%s: %s %s regarding %s %s from %s: %s", ev.Namespace, ev.Name, ev.Type, ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.ReportingInstance, ev.Note)
	want := corev1.ObjectReference{Kind: "ClusterNetworkPolicy", APIVersion: "policy.networking.k8s.io/v1alpha2", Name: name, UID: p.UID}
	if ev.Regarding != want || ev.Type != corev1.EventTypeWarning || ev.Reason != events.Reason ||
		ev.ReportingInstance != "weft-"+writer.Name || !strings.Contains(ev.Note, "spec.egress[0].to[0].domainNames") || !strings.Contains(ev.Note, "fails closed") {
		t.Errorf("Event %s/%s: regarding %+v, type %s, reason %s, from %s, note %q", ev.Namespace, ev.Name, ev.Regarding, ev.Type, ev.Reason, ev.ReportingInstance, ev.Note)
	}
	// As `kubectl describe clusternetworkpolicy` looks for it (core/v1).
	core, err := c.lab.Client().CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "ClusterNetworkPolicy"),
		fields.OneTermEqualSelector("involvedObject.name", name),
		fields.OneTermEqualSelector("involvedObject.uid", uid)).String()})
	if err != nil || len(core.Items) != 1 || core.Items[0].Message != ev.Note {
		t.Errorf("core/v1 Events for %s: %v, %+v", name, err, core)
	}
	for i, w := range c.wefts {
		posted := slices.ContainsFunc(strings.Split(w.Log(), "\n"), func(line string) bool {
			return containsAll(line, []string{"posted an Event", "ClusterNetworkPolicy " + name})
		})
		if wrote := c.lab.Nodes[i] == writer; posted != wrote {
			t.Errorf("weft on %s posted an Event: %v, want %v", c.lab.Nodes[i].Name, posted, wrote)
		}
	}
}
