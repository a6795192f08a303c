package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/reach"
	"github.com/weftnet/weft/internal/watch"
)

// rbacManifest is weft's ServiceAccount, ClusterRole and binding.
const rbacManifest = "../../deploy/rbac.yaml"

// weftRules is everything deploy/rbac.yaml may grant, as "group/resource
// verb" ("" is the core group). Widening the role means changing this list.
var weftRules = []string{
	"/namespaces list", "/namespaces watch",
	"/nodes list", "/nodes watch",
	"/pods list", "/pods watch",
	"events.k8s.io/events create",
	"networking.k8s.io/networkpolicies list", "networking.k8s.io/networkpolicies watch",
	"policy.networking.k8s.io/clusternetworkpolicies list", "policy.networking.k8s.io/clusternetworkpolicies watch",
}

// rbacObjects are the objects of deploy/rbac.yaml.
type rbacObjects struct {
	all     []runtime.Object
	sa      *corev1.ServiceAccount
	role    *rbacv1.ClusterRole
	binding *rbacv1.ClusterRoleBinding
}

func readRBAC(t testing.TB) rbacObjects {
	t.Helper()
	objs, err := lab.ReadManifest(rbacManifest)
	if err != nil {
		t.Fatal(err)
	}
	r := rbacObjects{all: objs}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			r.sa = o
		case *rbacv1.ClusterRole:
			r.role = o
		case *rbacv1.ClusterRoleBinding:
			r.binding = o
		default:
			t.Errorf("%s holds a %T; it should hold only weft's ServiceAccount, ClusterRole and ClusterRoleBinding", rbacManifest, o)
		}
	}
	if r.sa == nil || r.role == nil || r.binding == nil {
		t.Fatalf("%s lacks the ServiceAccount, the ClusterRole or the ClusterRoleBinding", rbacManifest)
	}
	return r
}

// flatRules lists what rules grant as "group/resource verb", sorted.
func flatRules(t testing.TB, rules []rbacv1.PolicyRule) []string {
	t.Helper()
	var out []string
	for _, r := range rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %v: weft's role has no resourceNames or nonResourceURLs", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+" "+v)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestRBACManifest checks deploy/rbac.yaml without a cluster: the binding
// ties the role to the ServiceAccount, and the role grants exactly
// weftRules (no wildcards, nothing more).
func TestRBACManifest(t *testing.T) {
	r := readRBAC(t)
	if r.sa.Namespace != "kube-system" || r.sa.Name != "weft" {
		t.Errorf("ServiceAccount is %s/%s, want kube-system/weft", r.sa.Namespace, r.sa.Name)
	}
	if r.role.Name != "weft" || r.binding.Name != "weft" {
		t.Errorf("ClusterRole %q and ClusterRoleBinding %q should both be named weft", r.role.Name, r.binding.Name)
	}
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.role.Name}
	if diff := cmp.Diff(wantRef, r.binding.RoleRef); diff != "" {
		t.Errorf("ClusterRoleBinding roleRef (-want +got):\n%s", diff)
	}
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: r.sa.Namespace, Name: r.sa.Name}}
	if diff := cmp.Diff(wantSubjects, r.binding.Subjects); diff != "" {
		t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(weftRules, flatRules(t, r.role.Rules)); diff != "" {
		t.Errorf("ClusterRole weft grants (-want +got):\n%s", diff)
	}
}

// TestRBACServiceAccount runs weft as system:serviceaccount:kube-system:weft
// with deploy/rbac.yaml's role: it must enforce policy with these rights,
// the role must refuse what weft does not need, and a role lacking one verb
// weft needs must keep weft from becoming ready, with a log that says why.
func TestRBACServiceAccount(t *testing.T) {
	e := needEnv(t)
	l := e.lab
	ctx := context.Background()
	r := readRBAC(t)
	if err := l.CreateObjects(ctx, r.all...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.DeleteObjects(context.Background(), r.all...); err != nil {
			t.Error(err)
		}
	})
	kubeconfig := saKubeconfig(t, l, r.sa.Namespace, r.sa.Name)

	t.Run("authorization", func(t *testing.T) {
		for _, rule := range weftRules {
			group, resource, verb := splitRule(rule)
			expectAccess(t, l, r.sa, authorizationv1.ResourceAttributes{Group: group, Resource: resource, Verb: verb}, true)
		}
		for _, a := range []authorizationv1.ResourceAttributes{
			{Resource: "secrets", Verb: "list"},
			{Resource: "secrets", Verb: "get", Namespace: "kube-system"},
			{Resource: "configmaps", Verb: "list"},
			{Resource: "serviceaccounts", Subresource: "token", Verb: "create", Namespace: "kube-system", Name: "weft"},
			{Resource: "pods", Verb: "create"},
			{Resource: "pods", Verb: "delete"},
			{Resource: "pods", Verb: "patch"},
			{Resource: "pods", Subresource: "status", Verb: "update"},
			{Resource: "pods", Subresource: "exec", Verb: "create"},
			{Resource: "nodes", Verb: "update"},
			{Resource: "nodes", Subresource: "status", Verb: "patch"},
			{Resource: "namespaces", Verb: "delete"},
			{Resource: "pods", Verb: "get", Namespace: "default"},
			{Resource: "nodes", Verb: "get"},
			{Group: "networking.k8s.io", Resource: "networkpolicies", Verb: "get", Namespace: "default"},
			{Resource: "events", Verb: "list"},
			{Resource: "events", Verb: "delete"},
			{Resource: "events", Verb: "create", Namespace: "default"},
			{Group: "events.k8s.io", Resource: "events", Verb: "patch", Namespace: "default"},
			{Group: "events.k8s.io", Resource: "events", Verb: "list"},
			{Group: "networking.k8s.io", Resource: "networkpolicies", Verb: "create"},
			{Group: "networking.k8s.io", Resource: "networkpolicies", Verb: "update"},
			{Group: "networking.k8s.io", Resource: "networkpolicies", Verb: "patch"},
			{Group: "networking.k8s.io", Resource: "networkpolicies", Verb: "delete"},
			{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verb: "escalate"},
			{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", Verb: "create"},
			{Group: "", Resource: "users", Verb: "impersonate"},
		} {
			expectAccess(t, l, r.sa, a, false)
		}
	})

	t.Run("identity", func(t *testing.T) {
		c := kubeconfigClient(t, l, kubeconfig)
		review, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("who am I with %s: %v", kubeconfig, err)
		}
		if got, want := review.Status.UserInfo.Username, saUser(r.sa); got != want {
			t.Errorf("the kubeconfig authenticates as %q, want %q", got, want)
		}
		if _, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			t.Errorf("list pods as %s: %v", saUser(r.sa), err)
		}
		if _, err := c.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list secrets as %s: got %v, want forbidden", saUser(r.sa), err)
		}
	})

	t.Run("enforces", func(t *testing.T) {
		testRBACEnforces(t, e, kubeconfig)
	})

	t.Run("missing-verb", func(t *testing.T) {
		for _, c := range []struct {
			group, resource, verb string
			staysUnready          bool
		}{
			{"networking.k8s.io", "networkpolicies", "list", true},
			// Without watch, client-go first tries a watch list and then
			// falls back to a plain list, which this role allows: weft
			// syncs and applies a ruleset, but it cannot see changes, so
			// it says not ready (the refused watch is the reason).
			{"networking.k8s.io", "networkpolicies", "watch", true},
			// Without create on Events weft enforces all the same; it logs
			// the refusal when it reports a policy it cannot understand.
			{"events.k8s.io", "events", "create", false},
		} {
			t.Run(c.resource+"-"+c.verb, func(t *testing.T) {
				if c.resource == "events" {
					brokenPolicyFor(t, e, l.Nodes[0])
				}
				testRBACMissingVerb(t, e, r.role, c.group, c.resource, c.verb, c.staysUnready)
			})
		}
	})
}

// brokenPolicyFor creates, until the test ends, a ClusterNetworkPolicy weft
// cannot fully understand, whose Event weft on node writes at once (it is
// the first writer); it installs the CRD when it is not, and removes it
// again then.
func brokenPolicyFor(t *testing.T, e *env, node *lab.Node) {
	t.Helper()
	ctx := context.Background()
	served, err := watch.ServesClusterPolicies(ctx, e.lab.Client())
	if err != nil {
		t.Fatal(err)
	}
	if !served {
		if err := e.lab.InstallClusterNetworkPolicyCRD(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.lab.DeleteClusterNetworkPolicyCRD(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	cl, err := e.lab.ClusterPolicyClient()
	if err != nil {
		t.Fatal(err)
	}
	p := domainNamesCNP(cnpWrittenBy(e.lab, node, "rbac-events"))
	if _, err := cl.PolicyV1alpha2().ClusterNetworkPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := cl.PolicyV1alpha2().ClusterNetworkPolicies().Delete(context.Background(), p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
}

// testRBACEnforces runs weft on node-1 with kubeconfig and checks that a
// default-deny ingress policy blocks a pod's neighbour but not its node.
func testRBACEnforces(t *testing.T, e *env, kubeconfig string) {
	l := e.lab
	ctx := context.Background()
	node := l.Nodes[0]
	const ns = "rbac-e2e"
	if err := l.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.DeleteObjects(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Error(err)
		}
	})
	var pods []*lab.Pod
	for _, name := range []string{"server", "client"} {
		p, err := l.AddPod(ctx, lab.PodSpec{Namespace: ns, Name: name, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
		t.Cleanup(func() {
			if err := l.DeletePod(context.Background(), p); err != nil {
				t.Error(err)
			}
		})
	}
	server, client := pods[0], pods[1]

	w := startWeftAs(t, e, node, kubeconfig, ":6791")
	ctx30, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := l.WaitWeftReady(ctx30, node, w)
	cancel()
	if err != nil {
		if exited, _ := w.Exited(); exited && strings.Contains(w.Log(), "unavailable") {
			t.Skipf("weft reports the nftables backend unavailable on this machine:\n%s", tailLines(w.Log(), 10))
		}
		t.Fatalf("weft as a ServiceAccount: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("weft (%s), last lines:\n%s", w.LogPath, tailLines(w.Log(), 30))
		}
	})

	from := []lab.Endpoint{client, node}
	to := []lab.Endpoint{server}
	names := []string{client.ID(), node.ID()}
	open := reach.NewMatrix(names, []string{server.ID()}, true)
	expectReach(t, l, from, to, open)

	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-deny-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if _, err := l.Client().NetworkingV1().NetworkPolicies(ns).Create(ctx, deny, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := l.Client().NetworkingV1().NetworkPolicies(ns).Delete(context.Background(), deny.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
	// The node's own traffic to its pods stays allowed (kubelet probes).
	isolated := reach.NewMatrix(names, []string{server.ID()}, true)
	isolated.Set(client.ID(), server.ID(), false)
	expectReach(t, l, from, to, isolated)
}

// testRBACMissingVerb runs weft as a ServiceAccount whose role is base
// without verb on group/resource, and expects weft to log a line that names
// the resource, the refusal and the ServiceAccount, and, when staysUnready,
// to keep running without becoming ready.
func testRBACMissingVerb(t *testing.T, e *env, base *rbacv1.ClusterRole, group, resource, verb string, staysUnready bool) {
	l := e.lab
	ctx := context.Background()
	node := l.Nodes[0]
	name := "weft-rbac-e2e-no-" + verb
	role := base.DeepCopy()
	role.Name = name
	removed := false
	for i, rule := range role.Rules {
		if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) {
			if len(rule.APIGroups) != 1 || len(rule.Resources) != 1 {
				t.Fatalf("rule %v grants more than %s/%s: cannot take %s away from it alone", rule, group, resource, verb)
			}
			n := len(rule.Verbs)
			role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == verb })
			removed = removed || len(role.Rules[i].Verbs) < n
		}
	}
	if !removed {
		t.Fatalf("ClusterRole %s does not grant %s on %s/%s", base.Name, verb, group, resource)
	}
	// A rule left without verbs is no rule (the API refuses it).
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool { return len(r.Verbs) == 0 })
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	}
	objs := []runtime.Object{role, sa, binding}
	if err := l.CreateObjects(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.DeleteObjects(context.Background(), objs...); err != nil {
			t.Error(err)
		}
	})
	expectAccess(t, l, sa, authorizationv1.ResourceAttributes{Group: group, Resource: resource, Verb: verb}, false)
	kubeconfig := saKubeconfig(t, l, sa.Namespace, sa.Name)

	w := startWeftAs(t, e, node, kubeconfig, ":6792")
	// weft logs each failed list or watch with the resource and the API
	// server's words: "... networkpolicies.networking.k8s.io is forbidden:
	// User "system:serviceaccount:kube-system:..." cannot watch resource ...".
	want := []string{resource, "forbidden", saUser(sa)}
	deadline := time.Now().Add(waitFor)
	for !slices.ContainsFunc(strings.Split(w.Log(), "\n"), func(line string) bool { return containsAll(line, want) }) {
		if exited, err := w.Exited(); exited {
			t.Fatalf("weft exited (%v) before it logged a line with %q; weft should wait for the API server. Its log:\n%s", err, want, tailLines(w.Log(), 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft logged no line with %q within %s. Its log:\n%s", want, waitFor, tailLines(w.Log(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !staysUnready {
		// It enforces all the same.
		ctx10, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := l.WaitWeftReady(ctx10, node, w); err != nil {
			t.Errorf("weft without %s on %s: %v. Its log:\n%s", verb, resource, err, tailLines(w.Log(), 30))
		}
		return
	}
	// Give weft the time it would need to become ready with all its rights
	// (well under a second in this lab).
	ctx5, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := l.WaitWeftReady(ctx5, node, w)
	cancel()
	if err == nil {
		t.Fatalf("weft without %s on %s became ready. Its log:\n%s", verb, resource, tailLines(w.Log(), 30))
	}
	if exited, exitErr := w.Exited(); exited {
		t.Errorf("weft exited (%v); it should keep waiting for the API server, unready. Its log:\n%s", exitErr, tailLines(w.Log(), 30))
	}
}

// startWeftAs runs weft (nftables) on node with kubeconfig; on cleanup weft
// stops and `weft cleanup` removes its rules.
func startWeftAs(t *testing.T, e *env, node *lab.Node, kubeconfig, metricsAddr string) *lab.Process {
	t.Helper()
	const backend = "nftables"
	w, err := e.lab.StartWeft(context.Background(), node, lab.WeftOptions{
		Binary: e.weft, Backend: backend, Kubeconfig: kubeconfig, MetricsAddr: metricsAddr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// An early exit is reported by the test that waited for weft.
		_ = e.lab.StopWeft(w)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.lab.WeftCleanup(ctx, node, e.weft, backend); err != nil {
			t.Error(err)
		}
	})
	return w
}

// saKubeconfig writes a kubeconfig for a ServiceAccount; cleanup removes it.
func saKubeconfig(t *testing.T, l *lab.Lab, namespace, name string) string {
	t.Helper()
	path, err := l.ServiceAccountKubeconfig(context.Background(), namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// kubeconfigClient is a client from a kubeconfig the lab wrote, connecting
// from inside the lab as the lab's own client does.
func kubeconfigClient(t *testing.T, l *lab.Lab, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dial = l.RESTConfig().Dial
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func saUser(sa *corev1.ServiceAccount) string {
	return "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
}

func splitRule(rule string) (group, resource, verb string) {
	gr, verb, _ := strings.Cut(rule, " ")
	group, resource, _ = strings.Cut(gr, "/")
	return group, resource, verb
}

// expectAccess asks the API server's authorizer (SubjectAccessReview, as
// `kubectl auth can-i --as` does) whether sa may do a, and checks the answer.
func expectAccess(t *testing.T, l *lab.Lab, sa *corev1.ServiceAccount, a authorizationv1.ResourceAttributes, allowed bool) {
	t.Helper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &a,
		User:               saUser(sa),
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
	}}
	got, err := l.Client().AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	if got.Status.Allowed != allowed {
		t.Errorf("%s may %s %s: %v, want %v (%s)", saUser(sa), a.Verb, describeResource(a), got.Status.Allowed, allowed, got.Status.Reason)
	}
}

func describeResource(a authorizationv1.ResourceAttributes) string {
	s := a.Resource
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Namespace != "" {
		s += " in " + a.Namespace
	}
	return s
}

// expectReach waits until probing TCP/80 from → to gives want.
func expectReach(t *testing.T, l *lab.Lab, from, to []lab.Endpoint, want *lab.Matrix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := l.WaitMatrix(ctx, from, to, lab.TCP80, want); err != nil {
		t.Error(err)
	}
}
