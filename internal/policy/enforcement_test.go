package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEnforcementOf(t *testing.T) {
	ns := func(name, value string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if value != "-" {
			n.Annotations = map[string]string{EnforcementAnnotation: value}
		}
		return n
	}
	s := NewSnapshot([]*corev1.Namespace{ns("plain", "-"), ns("audited", "audit"), ns("enforced", " enforce "), ns("typo", "Audit")}, nil, nil)
	for _, tc := range []struct {
		ns        string
		def, want Enforcement
	}{
		{"plain", Enforce, Enforce}, {"plain", Audit, Audit},
		{"audited", Enforce, Audit}, {"audited", Audit, Audit},
		{"enforced", Enforce, Enforce}, {"enforced", Audit, Enforce},
		// Unreadable: enforced, whatever the node's default.
		{"typo", Enforce, Enforce}, {"typo", Audit, Enforce},
		// Known only from its pods (or not at all): the default.
		{"missing", Audit, Audit},
	} {
		if got := s.EnforcementOf(tc.ns, tc.def); got != tc.want {
			t.Errorf("namespace %s, default %s: %s, want %s", tc.ns, tc.def, got, tc.want)
		}
	}
	errs := s.EnforcementErrors()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `namespace typo: annotation weft.dev/enforcement "Audit": want enforce or audit; its pods are enforced`) {
		t.Errorf("errors %v, want one naming namespace typo, its value and the fix", errs)
	}
}
