package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if len(objs.Namespaces) != 1 || len(objs.Pods) != 1 || len(objs.Policies) != 1 || objs.Ignored != 1 {
		t.Fatalf("got %d namespaces, %d pods, %d policies, %d ignored; want 1, 1, 1, 1",
			len(objs.Namespaces), len(objs.Pods), len(objs.Policies), objs.Ignored)
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
