package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
)

// serviceAccountTokenTTL is how long the tokens ServiceAccountKubeconfig
// asks for stay valid: longer than any lab runs, since weft reads its
// kubeconfig's token once.
const serviceAccountTokenTTL = 24 * 60 * 60

// ReadManifest decodes a file of YAML or JSON documents (separated by
// "---") into typed objects of client-go's scheme. Empty documents are
// skipped. Errors name the file and the document.
func ReadManifest(path string) ([]runtime.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	reader := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	decoder := scheme.Codecs.UniversalDeserializer()
	var objs []runtime.Object
	for doc := 1; ; doc++ {
		var raw runtime.RawExtension
		if err := reader.Decode(&raw); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("manifest %s: document %d: %w", path, doc, err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 || string(bytes.TrimSpace(raw.Raw)) == "null" {
			continue
		}
		obj, _, err := decoder.Decode(raw.Raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: document %d: %w", path, doc, err)
		}
		objs = append(objs, obj)
	}
}

// ApplyManifest creates the objects of a manifest file (ReadManifest) with
// the admin client, in the file's order; objects that exist are left as they
// are. The lab creates Namespaces, ServiceAccounts and RBAC objects (Roles,
// ClusterRoles and their bindings); other kinds are an error.
func (l *Lab) ApplyManifest(ctx context.Context, path string) error {
	objs, err := ReadManifest(path)
	if err != nil {
		return err
	}
	if err := l.CreateObjects(ctx, objs...); err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	return nil
}

// CreateObjects creates objs (see ApplyManifest for the kinds) in order,
// ignoring those that exist already.
func (l *Lab) CreateObjects(ctx context.Context, objs ...runtime.Object) error {
	for _, obj := range objs {
		err := l.createObject(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", describe(obj), err)
		}
	}
	return nil
}

// DeleteObjects deletes objs in reverse order (bindings before what they
// bind), ignoring those that are gone. It tries them all and returns every
// error. A Namespace is finalized at once, since no namespace controller
// runs in the lab: delete the pods and policies it holds first, or their
// objects stay behind in etcd.
func (l *Lab) DeleteObjects(ctx context.Context, objs ...runtime.Object) error {
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		err := l.deleteObject(ctx, objs[i])
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", describe(objs[i]), err))
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) createObject(ctx context.Context, obj runtime.Object) error {
	create := metav1.CreateOptions{}
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = l.client.CoreV1().Namespaces().Create(ctx, o, create)
	case *corev1.ServiceAccount:
		_, err = l.client.CoreV1().ServiceAccounts(namespaceOf(o.Namespace)).Create(ctx, o, create)
	case *rbacv1.ClusterRole:
		_, err = l.client.RbacV1().ClusterRoles().Create(ctx, o, create)
	case *rbacv1.ClusterRoleBinding:
		_, err = l.client.RbacV1().ClusterRoleBindings().Create(ctx, o, create)
	case *rbacv1.Role:
		_, err = l.client.RbacV1().Roles(namespaceOf(o.Namespace)).Create(ctx, o, create)
	case *rbacv1.RoleBinding:
		_, err = l.client.RbacV1().RoleBindings(namespaceOf(o.Namespace)).Create(ctx, o, create)
	default:
		err = errUnsupportedKind
	}
	return err
}

func (l *Lab) deleteObject(ctx context.Context, obj runtime.Object) error {
	del := metav1.DeleteOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		return l.deleteNamespace(ctx, o.Name)
	case *corev1.ServiceAccount:
		return l.client.CoreV1().ServiceAccounts(namespaceOf(o.Namespace)).Delete(ctx, o.Name, del)
	case *rbacv1.ClusterRole:
		return l.client.RbacV1().ClusterRoles().Delete(ctx, o.Name, del)
	case *rbacv1.ClusterRoleBinding:
		return l.client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, del)
	case *rbacv1.Role:
		return l.client.RbacV1().Roles(namespaceOf(o.Namespace)).Delete(ctx, o.Name, del)
	case *rbacv1.RoleBinding:
		return l.client.RbacV1().RoleBindings(namespaceOf(o.Namespace)).Delete(ctx, o.Name, del)
	default:
		return errUnsupportedKind
	}
}

// deleteNamespace deletes a namespace and finalizes it at once: the lab runs
// no namespace controller, which would first delete what the namespace
// holds and then remove the "kubernetes" finalizer. Without this the
// namespace would stay Terminating for the rest of the lab's life.
func (l *Lab) deleteNamespace(ctx context.Context, name string) error {
	if err := l.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := l.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ns.Spec.Finalizers = nil
		_, err = l.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		return err
	})
}

var errUnsupportedKind = errors.New("the lab creates only Namespaces, ServiceAccounts, Roles, ClusterRoles and their bindings")

// namespaceOf is a manifest object's namespace, "default" when it names none
// (as kubectl does).
func namespaceOf(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

// describe names an object in errors: "ClusterRole weft", "ServiceAccount
// kube-system/weft".
func describe(obj runtime.Object) string {
	kind := fmt.Sprintf("%T", obj)
	if gvks, _, err := scheme.Scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
		kind = gvks[0].Kind
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return kind
	}
	if m.GetNamespace() != "" {
		return kind + " " + m.GetNamespace() + "/" + m.GetName()
	}
	return kind + " " + m.GetName()
}

// ServiceAccountKubeconfig creates namespace and the ServiceAccount name in
// it when they do not exist, gets a token for the ServiceAccount through the
// TokenRequest API (valid 24 hours, bound to the ServiceAccount: deleting it
// revokes the token), and writes a kubeconfig with that token in the lab's
// folder, like Kubeconfig's but authenticating as
// system:serviceaccount:namespace:name. Processes in lab nodes (weft, with
// WeftOptions.Kubeconfig) then have exactly the rights RBAC gives that
// ServiceAccount.
func (l *Lab) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (path string, err error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := l.CreateObjects(ctx, ns, sa); err != nil {
		return "", fmt.Errorf("kubeconfig for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	ttl := int64(serviceAccountTokenTTL)
	tr, err := l.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}},
		metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("kubeconfig for ServiceAccount %s/%s: TokenRequest: %w", namespace, name, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("kubeconfig for ServiceAccount %s/%s: TokenRequest returned no token", namespace, name)
	}
	path = filepath.Join(l.Dir, "kubeconfig-sa-"+namespace+"-"+name)
	if err := os.WriteFile(path, []byte(kubeconfigText(l.cp.url, tr.Status.Token)), 0o600); err != nil {
		return "", fmt.Errorf("kubeconfig for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return path, nil
}
