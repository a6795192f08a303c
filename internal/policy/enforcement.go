package policy

import (
	"fmt"
	"slices"
	"strings"
)

// EnforcementAnnotation on a namespace says whether weft enforces or only
// audits the policies of its pods: "audit" or "enforce". It overrides the
// node's default (weft run --mode) in both ways.
const EnforcementAnnotation = "weft.dev/enforcement"

// Enforcement says what weft does with the new connections that policy
// blocks for a pod.
type Enforcement uint8

// Enforce drops them. Audit logs and counts them as would-be-blocked and
// lets them pass; everything else (what policy allows, unknown addresses)
// is as under Enforce.
const (
	Enforce Enforcement = iota
	Audit
)

func (e Enforcement) String() string {
	if e == Audit {
		return "audit"
	}
	return "enforce"
}

// ParseEnforcement reads "enforce" or "audit".
func ParseEnforcement(s string) (Enforcement, error) {
	switch s {
	case "enforce":
		return Enforce, nil
	case "audit":
		return Audit, nil
	}
	return Enforce, fmt.Errorf("%q: want enforce or audit", s)
}

// EnforcementOf returns how the pods of namespace ns are enforced on a node
// whose default is def: as the namespace's EnforcementAnnotation says, or
// def without one. An annotation weft cannot read enforces (an error is
// never more open than what was asked) and is reported by
// EnforcementErrors.
func (s *Snapshot) EnforcementOf(ns string, def Enforcement) Enforcement {
	n := s.Namespaces[ns]
	if n == nil {
		return def
	}
	v, ok := n.Annotations[EnforcementAnnotation]
	if !ok {
		return def
	}
	e, err := ParseEnforcement(strings.TrimSpace(v))
	if err != nil {
		return Enforce
	}
	return e
}

// EnforcementErrors returns, sorted by namespace, one error per namespace
// whose EnforcementAnnotation weft cannot read.
func (s *Snapshot) EnforcementErrors() []error {
	var names []string
	for name, n := range s.Namespaces {
		if v, ok := n.Annotations[EnforcementAnnotation]; ok {
			if _, err := ParseEnforcement(strings.TrimSpace(v)); err != nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	out := make([]error, 0, len(names))
	for _, name := range names {
		_, err := ParseEnforcement(strings.TrimSpace(s.Namespaces[name].Annotations[EnforcementAnnotation]))
		out = append(out, fmt.Errorf("namespace %s: annotation %s %w; its pods are enforced until it is fixed", name, EnforcementAnnotation, err))
	}
	return out
}
