package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	npav1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/yaml"
)

// Objects are what the manifests hold.
type Objects struct {
	Namespaces []*corev1.Namespace
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy
	// ClusterPolicies are ClusterNetworkPolicies (policy.networking.k8s.io/v1alpha2).
	ClusterPolicies []*npav1alpha2.ClusterNetworkPolicy
	// Nodes give node addresses and pod ranges; optional.
	Nodes []*corev1.Node
	// Ignored are objects of other kinds (Services, Deployments...): weft
	// does not read them, and says so.
	Ignored []Ignored
}

// Ignored is an object of a kind weft does not read.
type Ignored struct {
	File     string
	Document int
	Item     int // index in a List's items; -1 when the document is the object
	Kind     string
	Name     string // namespace/name or name, as written
}

func (i Ignored) String() string {
	where := fmt.Sprintf("%s: document %d", i.File, i.Document)
	if i.Item >= 0 {
		where += fmt.Sprintf(": items[%d]", i.Item)
	}
	name := i.Name
	if name == "" {
		name = "(no name)"
	}
	return fmt.Sprintf("%s: %s %s", where, i.Kind, name)
}

// Error is a problem with one document of one file.
type Error struct {
	File     string
	Document int // 1-based; 0 when the whole file is at fault
	Err      error
}

func (e *Error) Error() string {
	if e.Document == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: document %d: %v", e.File, e.Document, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads every path: a file, or a folder whose *.yaml, *.yml and *.json
// files are read in name order (not recursively). Objects without a
// namespace get "default".
func Load(paths ...string) (*Objects, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifest files given")
	}
	objs := &Objects{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, &Error{File: p, Err: err}
		}
		files := []string{p}
		if st.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, &Error{File: p, Err: err}
			}
			files = files[:0]
			for _, e := range entries {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".yaml", ".yml", ".json":
					if !e.IsDir() {
						files = append(files, filepath.Join(p, e.Name()))
					}
				}
			}
			sort.Strings(files)
			if len(files) == 0 {
				return nil, &Error{File: p, Err: errors.New("folder holds no .yaml, .yml or .json files")}
			}
		}
		for _, f := range files {
			if err := objs.loadFile(f); err != nil {
				return nil, err
			}
		}
	}
	return objs, nil
}

func (o *Objects) loadFile(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return &Error{File: name, Err: err}
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	pos := 0 // where the previous document ended in data
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &Error{File: name, Document: doc, Err: err}
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			doc--
			continue
		}
		line := 1
		if i := bytes.Index(data[pos:], raw); i >= 0 {
			line += bytes.Count(data[:pos+i], []byte("\n"))
			pos += i + len(raw)
		}
		if err := checkScalars(raw, line); err != nil {
			return &Error{File: name, Document: doc, Err: err}
		}
		if err := o.add(raw, source{file: name, doc: doc, item: -1}); err != nil {
			return &Error{File: name, Document: doc, Err: err}
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("---")) {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"metadata"`
}

// source is where a document came from, for Ignored.
type source struct {
	file      string
	doc, item int
}

func (o *Objects) add(raw []byte, src source) error {
	var tm typeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("not valid YAML: %v", err)
	}
	strict := func(into any) error {
		if err := yaml.UnmarshalStrict(raw, into); err != nil {
			return fmt.Errorf("%s: %v", tm.Kind, err)
		}
		return nil
	}
	switch tm.Kind {
	case "":
		return errors.New("no kind: want a Namespace, Pod, Node, NetworkPolicy, ClusterNetworkPolicy or List")
	case "List", "NamespaceList", "PodList", "NodeList", "NetworkPolicyList", "ClusterNetworkPolicyList":
		var list struct {
			Items []map[string]any `json:"items"`
		}
		if err := yaml.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("%s: %v", tm.Kind, err)
		}
		item := strings.TrimSuffix(tm.Kind, "List")
		for i, it := range list.Items {
			if item != "" && it["kind"] == nil {
				it["kind"] = item
			}
			b, err := yaml.Marshal(it)
			if err == nil {
				err = o.add(b, source{file: src.file, doc: src.doc, item: i})
			}
			if err != nil {
				return fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return nil
	case "Namespace":
		if tm.APIVersion != "v1" {
			return fmt.Errorf("apiVersion %q of a Namespace: want v1", tm.APIVersion)
		}
		ns := &corev1.Namespace{}
		if err := strict(ns); err != nil {
			return err
		}
		if ns.Name == "" {
			return errors.New("metadata.name missing on a Namespace")
		}
		o.Namespaces = append(o.Namespaces, ns)
	case "Pod":
		if tm.APIVersion != "v1" {
			return fmt.Errorf("apiVersion %q of a Pod: want v1", tm.APIVersion)
		}
		p := &corev1.Pod{}
		if err := strict(p); err != nil {
			return err
		}
		if p.Name == "" {
			return errors.New("metadata.name missing on a Pod")
		}
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		o.Pods = append(o.Pods, p)
	case "NetworkPolicy":
		if tm.APIVersion != "networking.k8s.io/v1" {
			return fmt.Errorf("apiVersion %q of a NetworkPolicy: want networking.k8s.io/v1", tm.APIVersion)
		}
		np := &networkingv1.NetworkPolicy{}
		if err := strict(np); err != nil {
			return err
		}
		if np.Name == "" {
			return errors.New("metadata.name missing on a NetworkPolicy")
		}
		if np.Namespace == "" {
			np.Namespace = "default"
		}
		o.Policies = append(o.Policies, np)
	case "ClusterNetworkPolicy":
		if want := npav1alpha2.GroupVersion.String(); tm.APIVersion != want {
			return fmt.Errorf("apiVersion %q of a ClusterNetworkPolicy: want %s", tm.APIVersion, want)
		}
		c := &npav1alpha2.ClusterNetworkPolicy{}
		if err := strict(c); err != nil {
			return err
		}
		if c.Name == "" {
			return errors.New("metadata.name missing on a ClusterNetworkPolicy")
		}
		o.ClusterPolicies = append(o.ClusterPolicies, c)
	case "Node":
		if tm.APIVersion != "v1" {
			return fmt.Errorf("apiVersion %q of a Node: want v1", tm.APIVersion)
		}
		n := &corev1.Node{}
		if err := strict(n); err != nil {
			return err
		}
		if n.Name == "" {
			return errors.New("metadata.name missing on a Node")
		}
		o.Nodes = append(o.Nodes, n)
	default:
		name := tm.Metadata.Name
		if tm.Metadata.Namespace != "" {
			name = tm.Metadata.Namespace + "/" + name
		}
		o.Ignored = append(o.Ignored, Ignored{File: src.file, Document: src.doc, Item: src.item, Kind: tm.Kind, Name: name})
	}
	return nil
}
