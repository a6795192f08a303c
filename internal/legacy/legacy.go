package legacy

import (
	"encoding/json"
	"log/slog"
	"slices"

	"github.com/weftnet/weft/internal/policy"
)

// Isolation is what an annotation's value asked for.
type Isolation int

// The values the annotation took, as weave-npc read them.
const (
	// Unreadable: not the JSON the beta API defined.
	Unreadable Isolation = iota
	// NoIsolation: readable, but not DefaultDeny (the beta API's
	// default: pods accept everything).
	NoIsolation
	// DefaultDeny: pods of the namespace accept only what policies allow.
	DefaultDeny
)

// ParseIsolation reads the annotation's value.
func ParseIsolation(value string) Isolation {
	var v struct {
		Ingress *struct {
			Isolation string `json:"isolation"`
		} `json:"ingress"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return Unreadable
	}
	if v.Ingress != nil && v.Ingress.Isolation == "DefaultDeny" {
		return DefaultDeny
	}
	return NoIsolation
}

// DefaultDenyPolicy is the networking.k8s.io/v1 NetworkPolicy named name
// that isolates every pod of namespace for ingress and allows nothing, as
// DefaultDeny did (other policies of the namespace still allow what they
// allow). It is JSON on one line, for a log line: JSON is YAML too, and
// `kubectl apply -f -` takes it as it is (kubectl reads a document that
// starts with "{" as JSON, so one-line YAML in flow style would not do).
func DefaultDenyPolicy(namespace, name string) string {
	// Maps marshal with sorted keys, which is the usual order here too.
	out, err := json.Marshal(map[string]any{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "NetworkPolicy",
		"metadata":   map[string]string{"namespace": namespace, "name": name},
		"spec":       map[string]any{"podSelector": map[string]any{}, "policyTypes": []string{"Ingress"}},
	})
	if err != nil {
		panic(err) // strings, maps and slices always marshal
	}
	return string(out)
}

// Warner warns once per namespace (and value) about the annotation.
type Warner struct {
	log  *slog.Logger
	said map[string]string // namespace → the value warned about
}

// NewWarner returns a Warner that logs to log.
func NewWarner(log *slog.Logger) *Warner {
	return &Warner{log: log, said: map[string]string{}}
}

// Check warns about each namespace of snap with the annotation that it was
// not warned about with this value; a namespace that loses the annotation
// is forgotten.
func (w *Warner) Check(snap *policy.Snapshot) {
	names := make([]string, 0, len(snap.Namespaces))
	for name, ns := range snap.Namespaces {
		if ns.Annotations[policy.LegacyIsolationAnnotation] != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for name := range w.said {
		if ns := snap.Namespaces[name]; ns == nil || ns.Annotations[policy.LegacyIsolationAnnotation] == "" {
			delete(w.said, name)
		}
	}
	for _, name := range names {
		value := snap.Namespaces[name].Annotations[policy.LegacyIsolationAnnotation]
		if w.said[name] == value {
			continue
		}
		w.said[name] = value
		w.warn(snap, name, value)
	}
}

func (w *Warner) warn(snap *policy.Snapshot, namespace, value string) {
	attrs := []any{"namespace", namespace, "annotation", policy.LegacyIsolationAnnotation, "value", value}
	switch ParseIsolation(value) {
	case Unreadable:
		w.log.Warn("namespace has the pre-v1 isolation annotation with a value no API version read; weft ignores it, as Kubernetes does: remove it, and isolate pods with a NetworkPolicy", attrs...)
	case NoIsolation:
		w.log.Warn("namespace has the pre-v1 isolation annotation without DefaultDeny, which isolated nothing; weft ignores it, as Kubernetes does: remove it", attrs...)
	default:
		if by := isolatingAll(snap, namespace); by != "" {
			w.log.Warn("namespace has the pre-v1 DefaultDeny annotation, which weft does not enforce (Kubernetes dropped it with networking.k8s.io/v1); policy "+by+" already isolates all its pods for ingress: remove the annotation", attrs...)
			return
		}
		name := "default-deny-ingress"
		if slices.ContainsFunc(snap.PoliciesIn(namespace), func(p *policy.Policy) bool { return p.Name == name }) {
			name = "legacy-default-deny-ingress"
		}
		w.log.Warn("namespace has the pre-v1 DefaultDeny annotation, which weft does not enforce (Kubernetes dropped it with networking.k8s.io/v1): its pods accept any connection no policy isolates them from. The v1 policy that does the same is given as equivalentPolicy: apply it with kubectl apply -f -, then remove the annotation",
			append(attrs, "equivalentPolicy", DefaultDenyPolicy(namespace, name))...)
	}
}

// isolatingAll names a policy of namespace that isolates every pod of it
// for ingress ("" if none).
func isolatingAll(snap *policy.Snapshot, namespace string) string {
	for _, p := range snap.PoliciesIn(namespace) {
		if p.Isolates[policy.Ingress] && p.PodSelector.Empty() {
			return p.Name
		}
	}
	return ""
}
