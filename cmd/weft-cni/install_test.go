package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// flannelConflist is a typical primary network's conflist, with keys weft-cni
// does not know (at the top and in the plugins) and an order of keys that is
// not alphabetical.
const flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "1.0.0",
  "disableCheck": false,
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ],
  "x-vendor-extension": {"keep": ["me", 1, null]}
}
`

// toolDirs is a node's CNI dirs in a temp dir, with a fake weft-cni binary
// to install.
type toolDirs struct {
	bin, conf, source string
}

func newToolDirs(t *testing.T) toolDirs {
	t.Helper()
	root := t.TempDir()
	d := toolDirs{bin: filepath.Join(root, "bin"), conf: filepath.Join(root, "net.d"), source: filepath.Join(root, "weft-cni-image")}
	for _, dir := range []string{d.bin, d.conf} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.source, []byte("#!/bin/sh\n# weft-cni v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d toolDirs) write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(d.conf, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs the tool as the DaemonSet's init container would.
func (d toolDirs) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	all := append([]string{args[0], "--bin-dir", d.bin, "--conf-dir", d.conf}, args[1:]...)
	if args[0] == "install" {
		all = append(all, "--source", d.source)
	}
	var out, errOut bytes.Buffer
	code = runTool(all, &out, &errOut)
	t.Logf("weft-cni %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(all, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	return v
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dirNames lists a dir, to see that no temporary file is left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestInstallChainsAndIsIdempotent(t *testing.T) {
	d := newToolDirs(t)
	path := d.write(t, "10-flannel.conflist", flannelConflist)
	// A later file the runtime does not use stays untouched.
	other := d.write(t, "20-other.conflist", `{"name":"other","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`)

	code, out, _ := d.run(t, "install", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("install exited %d", code)
	}
	if !strings.Contains(out, "chained weft-cni into "+path) || !strings.Contains(out, "installed "+filepath.Join(d.bin, "weft-cni")) {
		t.Errorf("install's report does not say what it did:\n%s", out)
	}
	want := decodeJSON(t, []byte(flannelConflist))
	want["plugins"] = append(want["plugins"].([]any), map[string]any{"type": "weft-cni", "timeout": "20s"})
	first := readFile(t, path)
	if diff := cmp.Diff(want, decodeJSON(t, first)); diff != "" {
		t.Errorf("conflist after install (-want +got):\n%s", diff)
	}
	// The keys keep their order: only the plugins changed.
	if i, j := bytes.Index(first, []byte(`"name"`)), bytes.Index(first, []byte(`"cniVersion"`)); i < 0 || j < 0 || i > j {
		t.Errorf("key order changed:\n%s", first)
	}
	if got := string(readFile(t, other)); !strings.Contains(got, `"bridge"`) || strings.Contains(got, "weft-cni") {
		t.Errorf("%s was changed: %s", other, got)
	}
	bin := filepath.Join(d.bin, "weft-cni")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 || string(readFile(t, bin)) != string(readFile(t, d.source)) {
		t.Errorf("binary not installed as an executable copy of the source: %v %v", fi, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("conflist mode changed: %v %v", fi, err)
	}

	// Again: nothing changes, not even the file's identity.
	before, _ := os.Stat(path)
	code, out, _ = d.run(t, "install", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("second install exited %d", code)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || !bytes.Equal(first, readFile(t, path)) {
		t.Error("a second install rewrote the conflist")
	}
	if !strings.Contains(out, "already chains weft-cni") || !strings.Contains(out, "is up to date") {
		t.Errorf("second install's report:\n%s", out)
	}

	// New options replace the entry in place; there is never a second one.
	if code, _, _ = d.run(t, "install", "--fail-open"); code != 0 {
		t.Fatalf("install --fail-open exited %d", code)
	}
	plugins := decodeJSON(t, readFile(t, path))["plugins"].([]any)
	if diff := cmp.Diff(map[string]any{"type": "weft-cni", "failOpen": true}, plugins[len(plugins)-1]); diff != "" || len(plugins) != 3 {
		t.Errorf("entry after a changed install (%d plugins) (-want +got):\n%s", len(plugins), diff)
	}
	if diff := cmp.Diff([]string{"10-flannel.conflist", "20-other.conflist"}, dirNames(t, d.conf)); diff != "" {
		t.Errorf("conf dir (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"weft-cni"}, dirNames(t, d.bin)); diff != "" {
		t.Errorf("bin dir (-want +got):\n%s", diff)
	}
}

func TestInstallKeepsAnEntryWhereItIs(t *testing.T) {
	d := newToolDirs(t)
	path := d.write(t, "10-net.conflist", `{"cniVersion":"0.4.0","name":"net","plugins":[`+
		`{"type":"bridge"},{"type":"weft-cni","timeout":"5s"},{"type":"bandwidth"},{"type":"weft-cni"}]}`)
	if code, _, _ := d.run(t, "install"); code != 0 {
		t.Fatalf("install exited %d", code)
	}
	got := decodeJSON(t, readFile(t, path))["plugins"]
	want := []any{map[string]any{"type": "bridge"}, map[string]any{"type": "weft-cni"}, map[string]any{"type": "bandwidth"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plugins (-want +got):\n%s", diff)
	}
}

func TestUninstall(t *testing.T) {
	d := newToolDirs(t)
	path := d.write(t, "10-flannel.conflist", flannelConflist)
	if code, _, _ := d.run(t, "install"); code != 0 {
		t.Fatalf("install exited %d", code)
	}
	// An entry left in another conflist (the first file changed since) goes too.
	other := d.write(t, "05-new.conflist", `{"name":"new","cniVersion":"1.0.0","plugins":[{"type":"ptp"},{"type":"weft-cni"}]}`)

	code, out, _ := d.run(t, "uninstall")
	if code != 0 {
		t.Fatalf("uninstall exited %d", code)
	}
	if diff := cmp.Diff(decodeJSON(t, []byte(flannelConflist)), decodeJSON(t, readFile(t, path))); diff != "" {
		t.Errorf("conflist after uninstall (-want the original +got):\n%s", diff)
	}
	if got := decodeJSON(t, readFile(t, other))["plugins"]; !cmp.Equal(got, []any{map[string]any{"type": "ptp"}}) {
		t.Errorf("%s plugins after uninstall: %v", other, got)
	}
	if _, err := os.Stat(filepath.Join(d.bin, "weft-cni")); !os.IsNotExist(err) {
		t.Errorf("binary still there after uninstall: %v", err)
	}
	if !strings.Contains(out, "removed weft-cni from "+path) || !strings.Contains(out, "removed "+filepath.Join(d.bin, "weft-cni")) {
		t.Errorf("uninstall's report:\n%s", out)
	}

	// Again: nothing to do, and that is fine.
	before := readFile(t, path)
	if code, _, _ = d.run(t, "uninstall"); code != 0 {
		t.Fatalf("second uninstall exited %d", code)
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Error("a second uninstall rewrote the conflist")
	}
}

func TestUninstallLeavesAMalformedConflistAndTheBinary(t *testing.T) {
	d := newToolDirs(t)
	good := d.write(t, "10-net.conflist", `{"name":"net","cniVersion":"1.0.0","plugins":[{"type":"ptp"},{"type":"weft-cni"}]}`)
	const broken = `{"name":"x","cniVersion":"1.0.0","plugins":[{"type":"weft-cni"},` // truncated
	bad := d.write(t, "20-broken.conflist", broken)
	bin := filepath.Join(d.bin, "weft-cni")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := d.run(t, "uninstall")
	if code != 2 {
		t.Errorf("uninstall exited %d, want 2 (bad input)", code)
	}
	if !strings.Contains(stderr, bad) || !strings.Contains(stderr, "left in place") {
		t.Errorf("stderr does not name the broken file and the binary left: %s", stderr)
	}
	if string(readFile(t, bad)) != broken {
		t.Error("the malformed conflist was changed")
	}
	if strings.Contains(string(readFile(t, good)), "weft-cni") {
		t.Error("the good conflist still chains weft-cni")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Errorf("binary removed although a conflist may still name it: %v", err)
	}
}

func TestInstallRefuses(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"truncated JSON", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}`}, nil, 2, "10-a.conflist is not a valid CNI conflist"},
		{"not an object", map[string]string{"10-a.conflist": `[1,2]`}, nil, 2, "not a JSON object"},
		{"no plugins", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","type":"bridge"}`}, nil, 2, `no "plugins"`},
		{"plugins not an array", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":{}}`}, nil, 2, `"plugins" is not an array`},
		{"plugin without type", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[{"ipam":{}}]}`}, nil, 2, `plugins[0] has no "type"`},
		{"plugin not an object", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":["bridge"]}`}, nil, 2, "plugins[0] is not an object"},
		{"duplicate key", map[string]string{"10-a.conflist": `{"name":"a","name":"b","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, nil, 2, `key "name" twice`},
		{"trailing data", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]} {}`}, nil, 2, "more after the object"},
		{"no version", map[string]string{"10-a.conflist": `{"name":"a","plugins":[{"type":"bridge"}]}`}, nil, 2, `no string "cniVersion"`},
		{"old version", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"0.2.0","plugins":[{"type":"bridge"}]}`}, nil, 2, `cniVersion "0.2.0"`},
		{"nothing to follow", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[]}`}, nil, 2, "no plugin that gives pods their addresses"},
		{"first file is a .conf", map[string]string{"05-a.conf": `{"name":"a","cniVersion":"1.0.0","type":"bridge"}`, "10-b.conflist": `{"name":"b","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, nil, 2, "05-a.conf (the first CNI config"},
		{"no config yet", map[string]string{"README": "not a config"}, nil, 1, "no CNI config in"},
		{"bad timeout", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, []string{"--timeout", "soon"}, 2, `"timeout" must be a duration`},
		{"relative socket", map[string]string{"10-a.conflist": `{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, []string{"--socket", "cni.sock"}, 2, `"socket" must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newToolDirs(t)
			for name, content := range tt.files {
				d.write(t, name, content)
			}
			code, _, stderr := d.run(t, append([]string{"install"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("install exited %d with %q; want %d with %q", code, stderr, tt.wantCode, tt.wantErr)
			}
			for name, content := range tt.files {
				if got := string(readFile(t, filepath.Join(d.conf, name))); got != content {
					t.Errorf("%s was changed:\n%s", name, got)
				}
			}
			if names := dirNames(t, d.bin); len(names) != 0 {
				t.Errorf("bin dir after a refused install: %v", names)
			}
			if len(dirNames(t, d.conf)) != len(tt.files) {
				t.Errorf("conf dir after a refused install: %v", dirNames(t, d.conf))
			}
		})
	}
}

func TestToolUsage(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"install", "extra"}, {"uninstall", "--bin-dir", "relative"}, {"install", "--no-such-flag"}} {
		var out, errOut bytes.Buffer
		if code := runTool(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("weft-cni %v: exit %d, stderr %q; want 2 with a message", args, code, errOut.String())
		}
	}
}

// TestWriteAtomicLeavesNoTemporary checks that a failed write (here: a
// directory where the file should go) leaves neither the target changed nor
// a temporary file behind.
func TestWriteAtomicLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "10-a.conflist")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(target, []byte("{}"), 0o644); err == nil {
		t.Fatal("writeAtomic over a directory succeeded")
	}
	if diff := cmp.Diff([]string{"10-a.conflist"}, dirNames(t, dir)); diff != "" {
		t.Errorf("dir after a failed write (-want +got):\n%s", diff)
	}
	if err := writeAtomic(filepath.Join(dir, "b.conflist"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10-a.conflist", "b.conflist"}, dirNames(t, dir)); diff != "" {
		t.Errorf("dir after a write (-want +got):\n%s", diff)
	}
}
