package legacy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/weftnet/weft/internal/policy"
)

const defaultDeny = `{"ingress":{"isolation":"DefaultDeny"}}`

func TestParseIsolation(t *testing.T) {
	for value, want := range map[string]Isolation{
		defaultDeny: DefaultDeny,
		` { "ingress" : { "isolation" : "DefaultDeny" } } `: DefaultDeny,
		`{"ingress":{"isolation":"None"}}`:                  NoIsolation,
		`{}`:                                                NoIsolation,
		`{"egress":{"isolation":"DefaultDeny"}}`:            NoIsolation,
		`DefaultDeny`:                                       Unreadable,
		`{"ingress":"DefaultDeny"}`:                         Unreadable,
	} {
		if got := ParseIsolation(value); got != want {
			t.Errorf("ParseIsolation(%s) = %d, want %d", value, got, want)
		}
	}
}

// TestDefaultDenyPolicy checks that the printed policy is a NetworkPolicy
// that kubectl would take and that isolates every pod of the namespace for
// ingress, allowing nothing.
func TestDefaultDenyPolicy(t *testing.T) {
	text := DefaultDenyPolicy("legacy-ns", "default-deny-ingress")
	if strings.Contains(text, "\n") {
		t.Errorf("not one line: %q", text)
	}
	want := `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"default-deny-ingress","namespace":"legacy-ns"},"spec":{"podSelector":{},"policyTypes":["Ingress"]}}`
	if text != want {
		t.Errorf("DefaultDenyPolicy:\n got %s\nwant %s", text, want)
	}
	// kubectl reads it as JSON (it starts with "{"); it is YAML too.
	var np networkingv1.NetworkPolicy
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&np); err != nil {
		t.Fatalf("%s is not a NetworkPolicy: %v", text, err)
	}
	var fromYAML networkingv1.NetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(text), &fromYAML); err != nil || fromYAML.Name != np.Name {
		t.Fatalf("%s is not a NetworkPolicy as YAML: %v", text, err)
	}
	if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" || np.Namespace != "legacy-ns" || np.Name != "default-deny-ingress" {
		t.Errorf("object: %+v", np.TypeMeta)
	}
	p := policy.PolicyFromAPI(&np)
	if len(p.Errors) > 0 || !p.Isolates[policy.Ingress] || p.Isolates[policy.Egress] || !p.PodSelector.Empty() || len(p.Rules[policy.Ingress]) != 0 {
		t.Errorf("policy %+v: want every pod isolated for ingress only, no rules", p)
	}
	// Every pod of the namespace, and only those.
	ip := []netip.Addr{netip.MustParseAddr("10.32.0.7")}
	if !p.Selects(&policy.Pod{Namespace: "legacy-ns", Name: "a", Labels: labels.Set{"any": "thing"}, IPs: ip}) ||
		p.Selects(&policy.Pod{Namespace: "other", Name: "a", IPs: ip}) {
		t.Error("does not select exactly the namespace's pods")
	}
}

func namespace(name, annotation string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if annotation != "" {
		ns.Annotations = map[string]string{policy.LegacyIsolationAnnotation: annotation}
	}
	return ns
}

type logLine struct {
	Msg              string `json:"msg"`
	Namespace        string `json:"namespace"`
	Value            string `json:"value"`
	EquivalentPolicy string `json:"equivalentPolicy"`
}

func lines(t *testing.T, buf *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatal(err)
		}
		out = append(out, ll)
	}
	buf.Reset()
	return out
}

func TestWarnerOncePerNamespace(t *testing.T) {
	var buf bytes.Buffer
	w := NewWarner(slog.New(slog.NewJSONHandler(&buf, nil)))
	taken := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "default-deny-ingress"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}}
	isolated := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "all-from-c"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
	snap := policy.NewSnapshot([]*corev1.Namespace{
		namespace("a", defaultDeny), namespace("b", defaultDeny), namespace("c", defaultDeny),
		namespace("d", `{"ingress":{"isolation":"None"}}`), namespace("e", "yes"), namespace("plain", ""),
	}, nil, []*networkingv1.NetworkPolicy{taken, isolated})

	w.Check(snap)
	got := lines(t, &buf)
	if len(got) != 5 {
		t.Fatalf("%d lines, want one per annotated namespace (5): %+v", len(got), got)
	}
	byNS := map[string]logLine{}
	for _, l := range got {
		byNS[l.Namespace] = l
	}
	if want := DefaultDenyPolicy("a", "default-deny-ingress"); byNS["a"].EquivalentPolicy != want || byNS["a"].Value != defaultDeny {
		t.Errorf("namespace a: %+v; want the policy %s", byNS["a"], want)
	}
	if want := DefaultDenyPolicy("b", "legacy-default-deny-ingress"); byNS["b"].EquivalentPolicy != want {
		t.Errorf("namespace b (name taken): %q, want %q", byNS["b"].EquivalentPolicy, want)
	}
	if l := byNS["c"]; l.EquivalentPolicy != "" || !strings.Contains(l.Msg, "all-from-c already isolates") {
		t.Errorf("namespace c, already isolated: %+v", l)
	}
	if l := byNS["d"]; l.EquivalentPolicy != "" || !strings.Contains(l.Msg, "isolated nothing") {
		t.Errorf("namespace d, not DefaultDeny: %+v", l)
	}
	if l := byNS["e"]; !strings.Contains(l.Msg, "no API version read") {
		t.Errorf("namespace e, unreadable: %+v", l)
	}

	// Once: the same snapshot again says nothing.
	w.Check(snap)
	if got := lines(t, &buf); len(got) != 0 {
		t.Errorf("second check logged again: %+v", got)
	}
	// A changed value is said again; a removed annotation is forgotten, so
	// that it is said again when it comes back.
	snap2 := policy.NewSnapshot([]*corev1.Namespace{namespace("a", `{}`), namespace("b", ""), namespace("c", defaultDeny)}, nil, []*networkingv1.NetworkPolicy{taken, isolated})
	w.Check(snap2)
	if got := lines(t, &buf); len(got) != 1 || got[0].Namespace != "a" {
		t.Errorf("after a's value changed and b's annotation went: %+v, want one line about a", got)
	}
	w.Check(snap)
	if got := lines(t, &buf); len(got) != 4 {
		t.Errorf("after a, b, d and e came back: %+v, want four lines", got)
	}
}
