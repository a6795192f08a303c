package manifest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	sigsyaml "sigs.k8s.io/yaml"
)

// The YAML decoder Kubernetes tools use (sigs.k8s.io/yaml, and kubectl)
// follows YAML 1.1, where an unquoted y, n, yes, no, on, off, true or false
// is a boolean. Where the API wants a string, weft's decoder then writes it
// back as "true" or "false": `namespace: y` silently becomes namespace
// "true", `tier: on` label value "true". Numbers suffer the same way
// (`version: 1.10` becomes "1.1"). checkScalars finds such values before
// decoding, by walking the YAML node tree beside the Go type of the
// object, and asks for quotes.

// kindTypes are the Go types of the kinds weft reads.
var kindTypes = map[string]reflect.Type{
	"Namespace":            reflect.TypeFor[corev1.Namespace](),
	"Pod":                  reflect.TypeFor[corev1.Pod](),
	"Node":                 reflect.TypeFor[corev1.Node](),
	"NetworkPolicy":        reflect.TypeFor[networkingv1.NetworkPolicy](),
	"ClusterNetworkPolicy": reflect.TypeFor[npav1alpha2.ClusterNetworkPolicy](),
}

// yaml11Bools are the plain scalars YAML 1.1 reads as booleans.
var yaml11Bools = map[string]bool{}

func init() {
	for _, w := range []string{"y", "yes", "true", "on"} {
		for _, v := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
			yaml11Bools[v] = true
		}
	}
	for _, w := range []string{"n", "no", "false", "off"} {
		for _, v := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
			yaml11Bools[v] = false
		}
	}
}

// ScalarError is an unquoted YAML scalar where the object's type wants a
// string and YAML reads something else: a YAML 1.1 boolean (always wrong:
// weft would read "true" or "false", kubectl refuses it), or a number whose
// text changes on the way (1.10 becomes "1.1", 0123 becomes "83").
type ScalarError struct {
	Field string // e.g. metadata.labels[tier]
	Value string // as written
	Line  int    // in the file
	Key   bool   // the value is a map key (a label name), not a value
	// Name is the mapping key the value belongs to ("" for a key or a list
	// item), for the example of the fix.
	Name string
	// Number is set for a number; ReadAs is the string it becomes.
	Number bool
	ReadAs string
}

func (e *ScalarError) Error() string {
	what := "value"
	if e.Key {
		what = "key"
	}
	fix := fmt.Sprintf("%q", e.Value)
	switch {
	case e.Key:
		fix += ": ..."
	case e.Name != "":
		fix = e.Name + ": " + fix
	}
	if e.Number {
		return fmt.Sprintf("%s (line %d): the unquoted %s %s is a number in YAML and would be read as the string %q, not %q: quote it: %s",
			e.Field, e.Line, what, e.Value, e.ReadAs, e.Value, fix)
	}
	return fmt.Sprintf("%s (line %d): the unquoted %s %s is the boolean %t in YAML 1.1 (kubectl reads it so too), not the string %q: quote it: %s",
		e.Field, e.Line, what, e.Value, yaml11Bools[e.Value], e.Value, fix)
}

// checkScalars reports the first unquoted YAML 1.1 boolean in a string field
// of the document raw (a Namespace, Pod, Node, NetworkPolicy,
// ClusterNetworkPolicy or a List of them), which starts at line firstLine of
// its file. Documents it cannot parse are left to the decoder's errors.
func checkScalars(raw []byte, firstLine int) error {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil || doc.Kind != yamlv3.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	w := &scalarWalk{lineOffset: firstLine - 1}
	root := doc.Content[0]
	kind := scalarOf(root, "kind")
	if t, ok := kindTypes[kind]; ok {
		w.walk(root, t, "", "")
		return w.result()
	}
	if !strings.HasSuffix(kind, "List") {
		return nil
	}
	items := valueOf(root, "items")
	if items == nil || items.Kind != yamlv3.SequenceNode {
		return nil
	}
	for i, it := range items.Content {
		k := scalarOf(it, "kind")
		if k == "" {
			k = strings.TrimSuffix(kind, "List")
		}
		if t, ok := kindTypes[k]; ok {
			w.walk(it, t, fmt.Sprintf("items[%d].", i), "")
			if w.err != nil {
				return w.result()
			}
		}
	}
	return nil
}

// valueOf returns the value of key in mapping n, or nil.
func valueOf(n *yamlv3.Node, key string) *yamlv3.Node {
	if n.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarOf(n *yamlv3.Node, key string) string {
	if v := valueOf(n, key); v != nil && v.Kind == yamlv3.ScalarNode {
		return v.Value
	}
	return ""
}

type scalarWalk struct {
	lineOffset int
	err        *ScalarError
}

// result is the error found, or a nil error (not a nil *ScalarError).
func (w *scalarWalk) result() error {
	if w.err == nil {
		return nil
	}
	return w.err
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// walk checks node n, which decodes into a value of type t at field path.
// name is the mapping key whose value n is ("" in a list).
func (w *scalarWalk) walk(n *yamlv3.Node, t reflect.Type, path, name string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if w.err != nil || n.Kind == yamlv3.AliasNode {
		return
	}
	// Types that decode themselves (IntOrString, Time, Quantity) take
	// numbers and strings alike; leave them to their decoders.
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.String:
		w.scalar(n, strings.TrimSuffix(path, "."), name, false)
	case reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			return
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if ft, ok := fields[k.Value]; ok {
				w.walk(v, ft, path+k.Value+".", k.Value)
			}
		}
	case reflect.Map:
		if n.Kind != yamlv3.MappingNode {
			return
		}
		base := strings.TrimSuffix(path, ".")
		for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := fmt.Sprintf("%s[%s]", base, k.Value)
			if t.Key().Kind() == reflect.String {
				w.scalar(k, field, "", true)
			}
			if w.err == nil {
				w.walk(v, t.Elem(), field+".", k.Value)
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yamlv3.SequenceNode || t.Elem().Kind() == reflect.Uint8 {
			return
		}
		base := strings.TrimSuffix(path, ".")
		for i, v := range n.Content {
			w.walk(v, t.Elem(), fmt.Sprintf("%s[%d].", base, i), "")
			if w.err != nil {
				return
			}
		}
	}
}

// scalar flags n when it is a plain (unquoted) YAML 1.1 boolean.
func (w *scalarWalk) scalar(n *yamlv3.Node, field, name string, key bool) {
	if n.Kind != yamlv3.ScalarNode || n.Style&(yamlv3.SingleQuotedStyle|yamlv3.DoubleQuotedStyle|yamlv3.LiteralStyle|yamlv3.FoldedStyle) != 0 {
		return
	}
	if _, isBool := yaml11Bools[n.Value]; isBool {
		w.err = &ScalarError{Field: field, Value: n.Value, Line: n.Line + w.lineOffset, Key: key, Name: name}
		return
	}
	if readAs, changed := numberText(n.Value); changed {
		w.err = &ScalarError{Field: field, Value: n.Value, Line: n.Line + w.lineOffset, Key: key, Name: name, Number: true, ReadAs: readAs}
	}
}

// numberText returns the string weft's decoder (sigs.k8s.io/yaml) makes of
// the plain scalar v in a string field, and whether it differs from v: YAML
// 1.1 numbers are written back in Go's form (1.10 → "1.1", 0123 → "83",
// 1e3 → "1000", 0x1F → "31"). Only scalars that start like a number are
// decoded.
func numberText(v string) (string, bool) {
	if v == "" || !strings.ContainsAny(v[:1], "0123456789+-.") {
		return v, false
	}
	var s struct {
		V string `json:"v"`
	}
	if err := sigsyaml.Unmarshal([]byte("v: "+v), &s); err != nil {
		return v, false
	}
	return s.V, s.V != v
}

// jsonFields maps the JSON names of t's fields (embedded inline structs
// included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(","+opts+",", ",inline,")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
