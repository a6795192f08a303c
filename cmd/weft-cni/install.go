package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// pluginType is weft-cni's "type" in a conflist: the runtime runs the binary
// of that name from its CNI bin dir.
const pluginType = "weft-cni"

// confExtensions are the files a container runtime reads from its CNI conf
// dir (libcni's ConfFiles as containerd and CRI-O call it); it uses the
// first by name.
var confExtensions = []string{".conf", ".conflist", ".json"}

// installOptions say where to install weft-cni and what its entry holds.
type installOptions struct {
	// BinDir is the host's CNI bin dir (mounted into the installing
	// container), ConfDir its CNI conf dir.
	BinDir, ConfDir string
	// Source is the weft-cni binary to copy into BinDir.
	Source string
	// Entry is weft-cni's entry in the conflist's plugins.
	Entry map[string]any
}

// installResult says what install or uninstall changed.
type installResult struct {
	// Binary is the installed (or removed) binary's path; BinaryChanged says
	// whether it was written (or removed).
	Binary        string
	BinaryChanged bool
	// Conflists are the conflists looked at; Changed those rewritten.
	Conflists []string
	Changed   []string
}

// inputError is bad input: a malformed conflist or a conf dir the runtime
// would not use with weft-cni. weft-cni exits 2 for it.
type inputError struct{ error }

func (e inputError) Unwrap() error { return e.error }

// install copies the binary into BinDir and puts Entry at the end of the
// plugins of the conflist the runtime uses (the first CNI config file in
// ConfDir by name), or updates weft-cni's entry where it already is. It
// writes nothing that is already as wanted, and every file it writes is
// replaced atomically (a new file renamed over the old), so the runtime
// never reads half a file. The binary goes first: the entry never names a
// binary that is not there.
func install(o installOptions) (installResult, error) {
	var res installResult
	conflist, err := runtimeConflist(o.ConfDir)
	if err != nil {
		return res, err
	}
	data, mode, err := readConf(conflist)
	if err != nil {
		return res, err
	}
	doc, err := parseConflist(conflist, data)
	if err != nil {
		return res, err
	}
	if err := checkChainable(conflist, doc); err != nil {
		return res, err
	}
	res.Binary = filepath.Join(o.BinDir, pluginType)
	res.BinaryChanged, err = installBinary(o.Source, res.Binary)
	if err != nil {
		return res, err
	}
	res.Conflists = []string{conflist}
	entry, err := json.Marshal(o.Entry)
	if err != nil {
		return res, fmt.Errorf("encode weft-cni's conflist entry: %w", err)
	}
	if !doc.setEntry(entry) {
		return res, nil
	}
	if err := writeAtomic(conflist, doc.encode(), mode); err != nil {
		return res, err
	}
	res.Changed = append(res.Changed, conflist)
	return res, nil
}

// uninstall removes weft-cni's entries from every conflist of ConfDir (not
// only the first: the first may have changed since install), then the
// binary from BinDir. A malformed conflist is left alone and reported;
// the others are still cleaned, and the binary stays while any conflist
// may still name it.
func uninstall(o installOptions) (installResult, error) {
	var res installResult
	files, err := confFiles(o.ConfDir)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, f := range files {
		if filepath.Ext(f) != ".conflist" {
			continue
		}
		res.Conflists = append(res.Conflists, f)
		data, mode, err := readConf(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		doc, err := parseConflist(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !doc.removeEntries() {
			continue
		}
		if err := writeAtomic(f, doc.encode(), mode); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Changed = append(res.Changed, f)
	}
	res.Binary = filepath.Join(o.BinDir, pluginType)
	if len(errs) > 0 {
		return res, errors.Join(append(errs, fmt.Errorf("%s left in place: a conflist weft-cni could not clean may still name it", res.Binary))...)
	}
	switch err := os.Remove(res.Binary); {
	case err == nil:
		res.BinaryChanged = true
	case !errors.Is(err, fs.ErrNotExist):
		return res, fmt.Errorf("remove %s: %w", res.Binary, err)
	}
	return res, nil
}

// confFiles lists the CNI config files of dir in the order the runtime
// reads them (by name).
func confFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CNI conf dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			if slices.Contains(confExtensions, filepath.Ext(e.Name())) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// runtimeConflist is the config file the runtime uses, which must be a
// conflist for weft-cni to be chained into it.
func runtimeConflist(dir string) (string, error) {
	files, err := confFiles(dir)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no CNI config in %s yet (no %s file): the cluster's network plugin writes it when it starts; weft-cni install runs again when the pod restarts", dir, strings.Join(confExtensions, ", "))
	}
	if filepath.Ext(files[0]) != ".conflist" {
		return "", inputError{fmt.Errorf("the container runtime uses %s (the first CNI config in %s by name), a single-plugin config that cannot chain weft-cni: make it a .conflist (its plugin as the one element of \"plugins\")", files[0], dir)}
	}
	return files[0], nil
}

func readConf(path string) ([]byte, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("CNI config: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("CNI config: %w", err)
	}
	return data, fi.Mode().Perm(), nil
}

// conflist is a decoded conflist that keeps every key, their order and every
// value other than "plugins" exactly as they were.
type conflist struct {
	keys    []string
	values  map[string]json.RawMessage
	plugins []json.RawMessage
}

// parseConflist decodes a conflist; its errors name the file and what is
// wrong, and say to fix the file.
func parseConflist(path string, data []byte) (*conflist, error) {
	bad := func(format string, args ...any) error {
		return inputError{fmt.Errorf("%s is not a valid CNI conflist (%s); weft-cni leaves it untouched: fix it, or give the network plugin's own config back", path, fmt.Sprintf(format, args...))}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, bad("not a JSON object")
	}
	c := &conflist{values: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("%v", err)
		}
		key := tok.(string) // object keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, bad("value of %q: %v", key, err)
		}
		if _, dup := c.values[key]; dup {
			return nil, bad("key %q twice", key)
		}
		c.keys = append(c.keys, key)
		c.values[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("more after the object")
	}
	raw, ok := c.values["plugins"]
	if !ok {
		return nil, bad(`no "plugins"`)
	}
	if err := json.Unmarshal(raw, &c.plugins); err != nil || c.plugins == nil {
		return nil, bad(`"plugins" is not an array`)
	}
	for i, p := range c.plugins {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(p, &head); err != nil {
			return nil, bad("plugins[%d] is not an object with a string \"type\"", i)
		}
		if head.Type == "" {
			return nil, bad("plugins[%d] has no \"type\"", i)
		}
	}
	var name, version string
	if json.Unmarshal(c.values["name"], &name) != nil || name == "" {
		return nil, bad(`no string "name"`)
	}
	if json.Unmarshal(c.values["cniVersion"], &version) != nil || version == "" {
		return nil, bad(`no string "cniVersion"`)
	}
	return c, nil
}

// checkChainable refuses a conflist whose version weft-cni cannot read
// results of, or with no plugin before weft-cni to give pods addresses.
func checkChainable(path string, c *conflist) error {
	var version string
	_ = json.Unmarshal(c.values["cniVersion"], &version)
	if !slices.Contains(supportedVersions.SupportedVersions(), version) {
		return inputError{fmt.Errorf("%s has cniVersion %q; weft-cni reads %s: the network plugin's config is too old for a chained plugin", path, version, strings.Join(supportedVersions.SupportedVersions(), ", "))}
	}
	if len(c.plugins) == 0 || (len(c.plugins) == 1 && pluginTypeOf(c.plugins[0]) == pluginType) {
		return inputError{fmt.Errorf("%s has no plugin that gives pods their addresses for weft-cni to follow", path)}
	}
	return nil
}

func pluginTypeOf(p json.RawMessage) string {
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(p, &head)
	return head.Type
}

// setEntry makes entry weft-cni's one entry: in place of the first existing
// one (where whoever put it there chose to), else at the end. It reports
// whether the conflist changed.
func (c *conflist) setEntry(entry json.RawMessage) bool {
	i := slices.IndexFunc(c.plugins, func(p json.RawMessage) bool { return pluginTypeOf(p) == pluginType })
	if i < 0 {
		c.plugins = append(c.plugins, entry)
		return true
	}
	changed := !sameJSON(c.plugins[i], entry)
	c.plugins[i] = entry
	// Another weft-cni entry would run the plugin twice.
	rest := slices.DeleteFunc(slices.Clone(c.plugins[i+1:]), func(p json.RawMessage) bool { return pluginTypeOf(p) == pluginType })
	if len(rest) != len(c.plugins[i+1:]) {
		changed = true
	}
	c.plugins = append(c.plugins[:i+1], rest...)
	return changed
}

// removeEntries removes every weft-cni entry and reports whether there was one.
func (c *conflist) removeEntries() bool {
	n := len(c.plugins)
	c.plugins = slices.DeleteFunc(c.plugins, func(p json.RawMessage) bool { return pluginTypeOf(p) == pluginType })
	return len(c.plugins) != n
}

// encode writes the conflist back, keys in their order, indented.
func (c *conflist) encode() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range c.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		if k == "plugins" {
			b.WriteByte('[')
			for j, p := range c.plugins {
				if j > 0 {
					b.WriteByte(',')
				}
				b.Write(p)
			}
			b.WriteByte(']')
			continue
		}
		b.Write(c.values[k])
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		// Every part was valid JSON when read.
		panic(fmt.Sprintf("re-encode conflist: %v", err))
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

// installBinary copies src to dst (mode 0755) unless dst has the same
// content already, and reports whether it wrote.
func installBinary(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read the weft-cni binary to install: %w", err)
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := writeAtomic(dst, data, 0o755); err != nil {
		return false, err
	}
	return true, nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, synced, then renamed over path. Its name starts with a dot and
// has no CNI config extension, so a runtime listing the dir meanwhile never
// reads it; a running binary being replaced keeps its old inode.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".weft-tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// runTool runs `weft-cni install` or `weft-cni uninstall` and returns the
// exit status: 0 done, 1 failed, 2 bad usage or input.
func runTool(args []string, stdout, stderr io.Writer) int {
	name := args[0]
	fset := flag.NewFlagSet("weft-cni "+name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	o := installOptions{}
	fset.StringVar(&o.BinDir, "bin-dir", "/opt/cni/bin", "the node's CNI bin dir (where the runtime finds plugins)")
	fset.StringVar(&o.ConfDir, "conf-dir", "/etc/cni/net.d", "the node's CNI conf dir")
	var socket, timeout string
	var failOpen bool
	if name == "install" {
		fset.StringVar(&o.Source, "source", "", "the weft-cni binary to copy (default: this one)")
		fset.StringVar(&socket, "socket", "", "the entry's \"socket\": weft's CNI socket (default in the plugin: /run/weft/cni.sock)")
		fset.StringVar(&timeout, "timeout", "", "the entry's \"timeout\": how long ADD waits for weft (default in the plugin: 10s)")
		fset.BoolVar(&failOpen, "fail-open", false, "the entry's \"failOpen\": start pods when weft cannot confirm their isolation")
	}
	switch name {
	case "install", "uninstall":
	default:
		fmt.Fprintf(stderr, "weft-cni: unknown command %q: run by a container runtime it takes no arguments; `weft-cni install` and `weft-cni uninstall` put it on a node and take it off\n", name)
		return 2
	}
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "weft-cni %s: unexpected argument %q\n", name, fset.Arg(0))
		return 2
	}
	if !filepath.IsAbs(o.BinDir) || !filepath.IsAbs(o.ConfDir) {
		fmt.Fprintf(stderr, "weft-cni %s: --bin-dir %q and --conf-dir %q must be absolute paths\n", name, o.BinDir, o.ConfDir)
		return 2
	}
	var res installResult
	var err error
	if name == "install" {
		o.Entry = map[string]any{"type": pluginType}
		if socket != "" {
			o.Entry["socket"] = socket
		}
		if timeout != "" {
			o.Entry["timeout"] = timeout
		}
		if failOpen {
			o.Entry["failOpen"] = true
		}
		// The entry must be one the plugin accepts at ADD.
		check := map[string]any{"cniVersion": "1.0.0", "name": "check"}
		for k, v := range o.Entry {
			check[k] = v
		}
		data, _ := json.Marshal(check)
		if _, cerr := parseConfig(data); cerr != nil {
			msg := strings.Replace(cerr.Msg, "invalid weft-cni network config: field ", "", 1)
			fmt.Fprintf(stderr, "weft-cni install: %s\n", msg)
			return 2
		}
		if o.Source == "" {
			if o.Source, err = os.Executable(); err != nil {
				fmt.Fprintf(stderr, "weft-cni install: find this binary: %v (give --source)\n", err)
				return 1
			}
		}
		res, err = install(o)
	} else {
		res, err = uninstall(o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "weft-cni %s: %v\n", name, err)
		if errors.As(err, new(inputError)) {
			return 2
		}
		return 1
	}
	report(stdout, name, res)
	return 0
}

// report says what install or uninstall did, one line each.
func report(w io.Writer, name string, res installResult) {
	switch {
	case name == "install" && res.BinaryChanged:
		fmt.Fprintf(w, "installed %s\n", res.Binary)
	case name == "install":
		fmt.Fprintf(w, "%s is up to date\n", res.Binary)
	case res.BinaryChanged:
		fmt.Fprintf(w, "removed %s\n", res.Binary)
	}
	for _, f := range res.Conflists {
		switch {
		case slices.Contains(res.Changed, f) && name == "install":
			fmt.Fprintf(w, "chained weft-cni into %s\n", f)
		case slices.Contains(res.Changed, f):
			fmt.Fprintf(w, "removed weft-cni from %s\n", f)
		case name == "install":
			fmt.Fprintf(w, "%s already chains weft-cni\n", f)
		}
	}
}
