package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/internal/watch"
)

// crdResource is where CustomResourceDefinitions live.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ClusterNetworkPolicyCRDName is the name of the ClusterNetworkPolicy CRD.
const ClusterNetworkPolicyCRDName = "clusternetworkpolicies.policy.networking.k8s.io"

// ClusterNetworkPolicyCRD returns the path of the ClusterNetworkPolicy CRD
// (experimental channel) of the sigs.k8s.io/network-policy-api module that
// go.mod pins, as the Go module cache holds it.
func ClusterNetworkPolicyCRD(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/network-policy-api").Output()
	if err != nil {
		return "", fmt.Errorf("find the network-policy-api module (go list -m): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("the network-policy-api module is not downloaded: run go mod download")
	}
	return filepath.Join(dir, "config", "crd", "experimental", "policy.networking.k8s.io_clusternetworkpolicies.yaml"), nil
}

// InstallClusterNetworkPolicyCRD creates the ClusterNetworkPolicy CRD and
// waits until the API server serves the resource.
func (l *Lab) InstallClusterNetworkPolicyCRD(ctx context.Context) error {
	path, err := ClusterNetworkPolicyCRD(ctx)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the ClusterNetworkPolicy CRD: %w", err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(l.RESTConfig())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = dyn.Resource(crdResource).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the ClusterNetworkPolicy CRD: %w", err)
		}
		// One being deleted (its objects are cleaned up first) must go
		// before it can be created again.
		old, gerr := dyn.Resource(crdResource).Get(ctx, ClusterNetworkPolicyCRDName, metav1.GetOptions{})
		if gerr == nil && old.GetDeletionTimestamp() == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the ClusterNetworkPolicy CRD is still being deleted after 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		served, err := watch.ServesClusterPolicies(ctx, l.client)
		if served {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server does not serve ClusterNetworkPolicies 30 s after their CRD was created (last: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DeleteClusterNetworkPolicyCRD deletes the CRD (and so every
// ClusterNetworkPolicy).
func (l *Lab) DeleteClusterNetworkPolicyCRD(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(l.RESTConfig())
	if err != nil {
		return err
	}
	err = dyn.Resource(crdResource).Delete(ctx, ClusterNetworkPolicyCRDName, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ClusterPolicyClient is a client for ClusterNetworkPolicies, as the admin.
func (l *Lab) ClusterPolicyClient() (npaclient.Interface, error) {
	return npaclient.NewForConfig(l.RESTConfig())
}
