package watch

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/weftnet/weft/internal/manifest"
	"github.com/weftnet/weft/internal/policy"
)

// List reads the cluster once, with plain list calls, for commands that
// answer a question and exit (weft explain and weft matrix against a live
// cluster): Namespaces, Pods, Nodes, NetworkPolicies, and
// ClusterNetworkPolicies when the API server serves them (cnp may be nil:
// none are read). Errors name the resource and, when the API server
// refuses, the verb to grant.
func List(ctx context.Context, client kubernetes.Interface, cnp npaclient.Interface) (*manifest.Objects, error) {
	objs := &manifest.Objects{}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, listError("namespaces", err)
	}
	for i := range nss.Items {
		objs.Namespaces = append(objs.Namespaces, &nss.Items[i])
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, listError("pods", err)
	}
	for i := range pods.Items {
		objs.Pods = append(objs.Pods, &pods.Items[i])
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, listError("nodes", err)
	}
	for i := range nodes.Items {
		objs.Nodes = append(objs.Nodes, &nodes.Items[i])
	}
	nps, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, listError("networkpolicies", err)
	}
	for i := range nps.Items {
		objs.Policies = append(objs.Policies, &nps.Items[i])
	}
	if cnp == nil {
		return objs, nil
	}
	served, err := ServesClusterPolicies(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("ask the API server whether it serves %s: %w", cnpGroupVersion, err)
	}
	if !served {
		return objs, nil
	}
	cnps, err := cnp.PolicyV1alpha2().ClusterNetworkPolicies().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, listError(cnpResource, err)
	}
	for i := range cnps.Items {
		objs.ClusterPolicies = append(objs.ClusterPolicies, &cnps.Items[i])
	}
	return objs, nil
}

func listError(resource string, err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("list %s: the API server refuses (%w): this account needs the list verb on %s (see deploy/rbac.yaml)", resource, err, resource)
	}
	return fmt.Errorf("list %s: %w", resource, err)
}

// NewSnapshot builds the snapshot of objs as the watcher builds its own:
// the same conversions, node addresses and pod ranges from the Nodes, and
// ClusterNetworkPolicies in their tiers. The objects are not modified.
func NewSnapshot(objs *manifest.Objects) *policy.Snapshot {
	return buildSnapshot(convert(objs.Namespaces, policy.NamespaceFromAPI), convert(objs.Pods, policy.PodFromAPI), convert(objs.Nodes, policy.NodeFromAPI),
		convert(objs.Policies, policy.PolicyFromAPI), convert(objs.ClusterPolicies, policy.ClusterPolicyFromAPI), cniView{})
}

func convert[O, T any](objs []O, conv func(O) T) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, conv(o))
	}
	return out
}
