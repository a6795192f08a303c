package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFolderListsAndDefaults(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `# comment only document
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: x}
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
`)
	write(t, dir, "b.json", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"np","namespace":"x"},"spec":{"podSelector":{}}}`)
	write(t, dir, "notes.txt", "not a manifest")
	objs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Namespaces) != 1 || len(objs.Pods) != 1 || len(objs.Policies) != 1 || len(objs.Ignored) != 1 {
		t.Fatalf("got %d namespaces, %d pods, %d policies, %d ignored; want 1, 1, 1, 1",
			len(objs.Namespaces), len(objs.Pods), len(objs.Policies), len(objs.Ignored))
	}
	if objs.Pods[0].Namespace != "default" {
		t.Errorf("pod without namespace should be in default, got %q", objs.Pods[0].Namespace)
	}
}

func TestLoadErrorsNameFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, text, want string
	}{
		{"nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "document 1: no kind"},
		{"version.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v2\nkind: Pod\nmetadata: {name: p}\n", `document 2: apiVersion "v2" of a Pod`},
		{"unknown-field.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelectr: {}}\n", `document 1: NetworkPolicy: error unmarshaling JSON: while decoding JSON: json: unknown field "podSelectr"`},
		{"noname.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "document 1: metadata.name missing on a Namespace"},
		{"listitem.yaml", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {nodeName: [1]}}\n", "document 1: items[0]: Pod:"},
	}
	for _, tc := range cases {
		p := write(t, dir, tc.name, tc.text)
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to start with the file and contain %q", tc.name, err, tc.want)
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "folder holds no .yaml") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Load(); err == nil {
		t.Error("no paths: want an error")
	}
}

// TestYAML11Booleans: an unquoted YAML 1.1 boolean where the API wants a
// string, or a number whose text would change, is refused with the file,
// the document, the field, the line and the fix; quoted values, block
// scalars, numbers that stay as written (addresses, 123) and real boolean
// fields pass.
func TestYAML11Booleans(t *testing.T) {
	cases := []struct {
		file string
		want string // "" for no error
	}{
		{"namespace-y.yaml", `document 2: metadata.namespace (line 10): the unquoted value y is the boolean true in YAML 1.1 (kubectl reads it so too), not the string "y": quote it: namespace: "y"`},
		{"namespace-name-n.yaml", `document 1: metadata.name (line 4): the unquoted value n is the boolean false`},
		{"label-value-yes.yaml", `metadata.labels[public] (line 8): the unquoted value yes is the boolean true`},
		{"label-key-on.yaml", `metadata.labels[on] (line 6): the unquoted key on is the boolean true in YAML 1.1 (kubectl reads it so too), not the string "on": quote it: "on": ...`},
		{"matchlabels-off.yaml", `spec.podSelector.matchLabels[tracing] (line 7): the unquoted value off is the boolean false`},
		{"matchexpressions-true.yaml", `spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values[1] (line 10): the unquoted value true`},
		{"list-item-no.yaml", `document 1: items[1].metadata.annotations[sidecar] (line 9): the unquoted value No is the boolean false`},
		{"cnp-namespace-label-y.yaml", `spec.subject.namespaces.matchLabels[kubernetes.io/metadata.name] (line 9): the unquoted value Y`},
		{"json-true.json", `metadata.labels[debug] (line 1): the unquoted value true`},
		{"label-version-number.yaml", `metadata.labels[version] (line 7): the unquoted value 1.10 is a number in YAML and would be read as the string "1.1", not "1.10": quote it: version: "1.10"`},
		{"namespace-octal.yaml", `document 2: metadata.namespace (line 10): the unquoted value 0123 is a number in YAML and would be read as the string "83"`},
		{"quoted-ok.yaml", ""},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "yaml11", tc.file)
			objs, err := Load(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(objs.Namespaces) != 1 || objs.Namespaces[0].Name != "y" || len(objs.Pods) != 1 || objs.Pods[0].Namespace != "y" || objs.Pods[0].Name != "n" {
					t.Errorf("quoted names not read as written: %+v", objs)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			var bse *ScalarError
			if !errors.As(err, &bse) {
				t.Errorf("error %v is not a *ScalarError", err)
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to start with the file and contain\n  %s", err, tc.want)
			}
		})
	}
}

// TestIgnoredKindsListed: objects of kinds weft does not read are listed
// with file, document, list item, kind and name.
func TestIgnoredKindsListed(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "mixed.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: shop}}
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: v1, kind: ConfigMap, metadata: {}}
`)
	objs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ig := range objs.Ignored {
		got = append(got, ig.String())
	}
	want := []string{
		p + ": document 1: Deployment shop/web",
		p + ": document 2: items[0]: Service shop/web",
		p + ": document 2: items[2]: ConfigMap (no name)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ignored (-want +got):\n%s", diff)
	}
	if len(objs.Namespaces) != 1 {
		t.Errorf("the Namespace of the List was not read: %d namespaces", len(objs.Namespaces))
	}
}

// TestWhatIf: policies replace or join, namespaces and pods only replace.
func TestWhatIf(t *testing.T) {
	dir := t.TempDir()
	base, err := Load(write(t, dir, "base.yaml", `apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: old, namespace: x}
spec: {podSelector: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Load(write(t, dir, "new.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: old, namespace: x}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: new, namespace: x}
spec: {podSelector: {}}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp}
spec: {tier: Admin, priority: 1, subject: {namespaces: {}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: b}}
`))
	if err != nil {
		t.Fatal(err)
	}
	after, done, err := base.WhatIf(changes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range done {
		got = append(got, c.String())
	}
	want := []string{"Namespace x replaced", "NetworkPolicy x/old replaced", "NetworkPolicy x/new added", "ClusterNetworkPolicy cnp added"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if len(after.Policies) != 2 || after.Policies[0].Spec.PodSelector.MatchLabels["app"] != "web" || len(after.ClusterPolicies) != 1 || after.Namespaces[0].Labels["team"] != "b" {
		t.Errorf("what-if result wrong: %d policies, %d cluster policies, namespace labels %v", len(after.Policies), len(after.ClusterPolicies), after.Namespaces[0].Labels)
	}
	if len(base.Policies) != 1 || base.Policies[0].Spec.PodSelector.MatchLabels != nil || base.Namespaces[0].Labels["team"] != "a" {
		t.Errorf("WhatIf changed the base objects")
	}
	for _, bad := range []struct{ text, want string }{
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: ghost, namespace: x}\n", "pod x/ghost is not in the cluster"},
		{"apiVersion: v1\nkind: Namespace\nmetadata: {name: q}\n", "namespace q is not in the cluster"},
		{"apiVersion: v1\nkind: Node\nmetadata: {name: node-9}\n", "may not hold Nodes"},
	} {
		c, err := Load(write(t, dir, "bad.yaml", bad.text))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := base.WhatIf(c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("WhatIf(%q) error %v, want %q", bad.text, err, bad.want)
		}
	}
}
