package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/weftnet/weft/internal/lab"
)

// deployDir holds the manifests `kubectl apply -f deploy/` installs;
// deploy/uninstall the one that takes weft off the nodes.
const deployDir = "../../deploy"

// manifestDoc is one document of a manifest file.
type manifestDoc struct {
	file string
	obj  *unstructured.Unstructured
}

func (d manifestDoc) String() string {
	name := d.obj.GetName()
	if ns := d.obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return filepath.Base(d.file) + ": " + d.obj.GetKind() + " " + name
}

// deployManifests reads every YAML file under deploy/.
func deployManifests(t *testing.T) []manifestDoc {
	t.Helper()
	var docs []manifestDoc
	err := filepath.WalkDir(deployDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if m != nil {
				docs = append(docs, manifestDoc{file: path, obj: &unstructured.Unstructured{Object: m}})
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// weftDaemonSet decodes deploy/weft.yaml's DaemonSet.
func weftDaemonSet(t *testing.T, docs []manifestDoc, name string) *appsv1.DaemonSet {
	t.Helper()
	for _, d := range docs {
		if d.obj.GetKind() == "DaemonSet" && d.obj.GetName() == name {
			var ds appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(d.obj.Object, &ds, true); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			return &ds
		}
	}
	t.Fatalf("no DaemonSet %s in %s", name, deployDir)
	return nil
}

// TestDeployDaemonSet checks what deploy/weft.yaml promises without a
// cluster: host network, NET_ADMIN and NET_RAW only, the xtables lock and
// the CNI socket dir, every node, NODE_NAME, the probes, the ServiceAccount
// of rbac.yaml, resources.
func TestDeployDaemonSet(t *testing.T) {
	docs := deployManifests(t)
	ds := weftDaemonSet(t, docs, "weft")
	spec := ds.Spec.Template.Spec
	if ds.Namespace != "kube-system" || !spec.HostNetwork {
		t.Errorf("DaemonSet in %q, hostNetwork %v; want kube-system, true", ds.Namespace, spec.HostNetwork)
	}
	if sa := readRBAC(t).sa; spec.ServiceAccountName != sa.Name || ds.Namespace != sa.Namespace {
		t.Errorf("runs as ServiceAccount %s/%s, rbac.yaml grants %s/%s", ds.Namespace, spec.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}) {
		t.Errorf("tolerations %v do not tolerate every taint", spec.Tolerations)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 1 {
		t.Fatalf("want one container and one init container, got %d and %d", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil {
		t.Fatalf("weft's securityContext %+v: want privileged: false and capabilities", sc)
	}
	if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "NET_RAW"}, sc.Capabilities.Add); diff != "" {
		t.Errorf("capabilities added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.Capability{"ALL"}, sc.Capabilities.Drop); diff != "" {
		t.Errorf("capabilities dropped (-want +got):\n%s", diff)
	}
	if init := spec.InitContainers[0].SecurityContext; init == nil || init.Capabilities == nil || len(init.Capabilities.Add) > 0 {
		t.Errorf("the install init container adds capabilities: %+v", init)
	}
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom
	}
	if src := env["NODE_NAME"]; src == nil || src.FieldRef == nil || src.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the downward API's spec.nodeName: %+v", src)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range spec.Volumes {
		hostPaths[v.Name] = v.HostPath
	}
	for path, wantType := range map[string]corev1.HostPathType{"/run/xtables.lock": corev1.HostPathFileOrCreate, "/run/weft": corev1.HostPathDirectoryOrCreate} {
		hp := hostPaths[mounts[path]]
		if hp == nil || hp.Path != path || hp.Type == nil || *hp.Type != wantType {
			t.Errorf("%s: want the host's %s mounted (%s), got %+v", path, path, wantType, hp)
		}
	}
	for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.IntValue() != 6781 {
			t.Errorf("probe for %s: %+v", name, p)
		}
	}
	if !slices.Contains(c.Args, "--metrics-addr=:6781") || !slices.Contains(c.Args, "--cni-socket=/run/weft/cni.sock") {
		t.Errorf("weft's args %v: the probes need --metrics-addr=:6781, weft-cni the socket in /run/weft", c.Args)
	}
	if !slices.Contains(spec.InitContainers[0].Command, "--socket=/run/weft/cni.sock") {
		t.Errorf("weft-cni's entry does not name the socket weft serves: %v", spec.InitContainers[0].Command)
	}
	req, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory()
	if req.IsZero() || lim.IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want memory requests and limits and a CPU request", c.Resources)
	}
}

// TestDeployManifests creates every object of deploy/ on the lab's API
// server with server-side dry-run (dryRun=All: admission and validation run,
// nothing is stored), as `kubectl apply --dry-run=server -f deploy/ -R`
// does; each must be accepted. A broken copy of the DaemonSet must be
// refused, so that the check is known to check. The command lines in the
// manifests must use only flags the binaries have.
func TestDeployManifests(t *testing.T) {
	e := needEnv(t)
	ctx := context.Background()
	cfg := e.lab.RESTConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	dryRun := func(obj *unstructured.Unstructured) error {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		res := dyn.Resource(mapping.Resource)
		var ri dynamic.ResourceInterface = res
		if mapping.Scope.Name() == "namespace" {
			ri = res.Namespace(namespaceOr(obj.GetNamespace()))
		}
		_, err = ri.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if apierrors.IsAlreadyExists(err) {
			// Another test's copy is there: check it as an apply would.
			data, merr := obj.MarshalJSON()
			if merr != nil {
				return merr
			}
			_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
				DryRun: []string{metav1.DryRunAll}, FieldManager: "weft-e2e", Force: new(true), FieldValidation: "Strict"})
		}
		return err
	}

	if err := e.lab.EnsureNamespace(ctx, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	docs := deployManifests(t)
	var kinds []string
	for _, d := range docs {
		kinds = append(kinds, d.obj.GetKind())
		if err := dryRun(d.obj); err != nil {
			t.Errorf("%s: the API server refuses it: %v", d, err)
		}
	}
	slices.Sort(kinds)
	if diff := cmp.Diff([]string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "DaemonSet", "ServiceAccount"}, kinds); diff != "" {
		t.Errorf("kinds in %s (-want +got):\n%s", deployDir, diff)
	}

	// The check checks: a misspelt field and a port out of range are
	// refused, each naming what is wrong.
	for _, d := range docs {
		if d.obj.GetKind() != "DaemonSet" || d.obj.GetName() != "weft" {
			continue
		}
		for _, b := range []struct {
			change func(container map[string]any)
			want   string
		}{
			{func(c map[string]any) { c["securityContext"].(map[string]any)["capabilitiez"] = true }, `unknown field "spec.template.spec.containers[0].securityContext.capabilitiez"`},
			{func(c map[string]any) { c["ports"] = []any{map[string]any{"containerPort": int64(70000)}} }, "70000"},
		} {
			broken := d.obj.DeepCopy()
			containers, _, _ := unstructured.NestedSlice(broken.Object, "spec", "template", "spec", "containers")
			b.change(containers[0].(map[string]any))
			if err := unstructured.SetNestedSlice(broken.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				t.Fatal(err)
			}
			if err := dryRun(broken); err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("a broken DaemonSet: %v; want refused with %q", err, b.want)
			}
		}
	}

	// Flags: every flag the manifests give is one the binary takes.
	weftHelp := helpText(t, e.weft, "run", "-h")
	cniHelp := map[string]string{
		"install":   helpText(t, lab.CNIPlugin(e.weft), "install", "-h"),
		"uninstall": helpText(t, lab.CNIPlugin(e.weft), "uninstall", "-h"),
	}
	for _, name := range []string{"weft", "weft-uninstall"} {
		ds := weftDaemonSet(t, docs, name)
		for _, c := range append(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers...) {
			cmdline := append(slices.Clone(c.Command), c.Args...)
			var help string
			switch {
			case strings.HasSuffix(cmdline[0], "/weft") && cmdline[1] == "run":
				help = weftHelp
			case strings.HasSuffix(cmdline[0], "/weft") && cmdline[1] == "cleanup":
				help = helpText(t, e.weft, "cleanup", "-h")
			case strings.HasSuffix(cmdline[0], "/weft-cni"):
				help = cniHelp[cmdline[1]]
			default:
				continue
			}
			for _, a := range cmdline[2:] {
				flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !strings.Contains(help, "-"+flag+" ") && !strings.Contains(help, "-"+flag+"\n") {
					t.Errorf("%s container %s: %s is not a flag of %s %s", name, c.Name, a, filepath.Base(cmdline[0]), cmdline[1])
				}
			}
		}
	}
}

// helpText is what `binary args...` prints (flag usage goes to stderr).
func helpText(t *testing.T, binary string, args ...string) string {
	t.Helper()
	out, _ := exec.Command(binary, args...).CombinedOutput()
	if !strings.Contains(string(out), "-") {
		t.Fatalf("%s %v printed no usage: %s", binary, args, out)
	}
	return string(out)
}

func namespaceOr(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}
