package scenarios

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weftnet/weft/internal/reach"
)

// Scenario is a set of policies on the standard model (possibly changed by
// Setup) and the reachability the NetworkPolicy specification demands for it.
type Scenario struct {
	// Name is unique, short and usable as a test name.
	Name string
	// Description says what the scenario checks and why the matrices are
	// what they are.
	Description string
	// Setup, if set, changes the standard model before the policies apply
	// (extra labels, pods, named-port numbers, a host-network pod...).
	Setup func(*Model)
	// Policies to apply.
	Policies []*networkingv1.NetworkPolicy
	// Errors lists the problems weft must report for the policies, as
	// "namespace/name: field path" (for example
	// "x/bad: spec.ingress[0].from[0].ipBlock.cidr"); empty for valid policies.
	// The matrices of such a scenario show that a policy weft cannot
	// understand still isolates what it selects and opens nothing.
	Errors []string
	// Probes are the connections to try, each with its expected matrix.
	Probes []Probe
}

// Model returns a fresh standard model with the scenario's changes applied.
func (s *Scenario) Model() *Model {
	m := NewModel()
	if s.Setup != nil {
		s.Setup(m)
	}
	return m
}

// Validate checks that every matrix of the scenario lists as a source and as
// a destination every pod of m that has an address of the probe's family, and
// names only endpoints of m that have one.
func (s *Scenario) Validate(m *Model) error {
	if len(s.Probes) == 0 {
		return fmt.Errorf("scenario %s: no probes", s.Name)
	}
	for _, p := range s.Probes {
		for _, pod := range m.PodNames() {
			e, _ := m.Endpoint(pod)
			if _, ok := e.IP(p.Family); !ok {
				continue // a single-stack pod of the other family
			}
			if !slices.Contains(p.Expect.From, pod) || !slices.Contains(p.Expect.To, pod) {
				return fmt.Errorf("scenario %s, probe %s: the matrix must list pod %s as a row and as a column", s.Name, p.ProbeKey, pod)
			}
		}
		for _, name := range slices.Concat(p.Expect.From, p.Expect.To) {
			e, ok := m.Endpoint(name)
			if !ok {
				return fmt.Errorf("scenario %s, probe %s: the model has no endpoint %s", s.Name, p.ProbeKey, name)
			}
			if _, ok := e.IP(p.Family); !ok {
				return fmt.Errorf("scenario %s, probe %s: %s has no %s address", s.Name, p.ProbeKey, name, p.Family)
			}
		}
	}
	return nil
}

// ProbeKey is what a probe sends: the first packet of a new connection with
// this protocol and destination port, between the endpoints' addresses of
// this family.
type ProbeKey struct {
	Protocol corev1.Protocol
	Port     int32
	Family   Family
}

func (k ProbeKey) String() string {
	return fmt.Sprintf("%s/%d %s", k.Protocol, k.Port, k.Family)
}

// Probe is a probe and the matrix it must give. The matrix lists every pod of
// the scenario's model that has an address of the probe's family as a source
// and as a destination, and may list nodes.
type Probe struct {
	ProbeKey
	Expect *reach.Matrix
}

// All returns every scenario, freshly built (callers may change them).
func All() []*Scenario {
	var out []*Scenario
	for _, group := range [][]*Scenario{
		basicScenarios(),
		selectorScenarios(),
		portScenarios(),
		ipBlockScenarios(),
		nodeScenarios(),
		badInputScenarios(),
	} {
		out = append(out, group...)
	}
	return out
}

// ByName returns the scenario called name, or nil.
func ByName(name string) *Scenario {
	for _, s := range All() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Probe keys used by the catalogue.
var (
	tcp80   = ProbeKey{corev1.ProtocolTCP, 80, IPv4}
	tcp81   = ProbeKey{corev1.ProtocolTCP, 81, IPv4}
	udp80   = ProbeKey{corev1.ProtocolUDP, 80, IPv4}
	udp81   = ProbeKey{corev1.ProtocolUDP, 81, IPv4}
	sctp80  = ProbeKey{corev1.ProtocolSCTP, 80, IPv4}
	sctp81  = ProbeKey{corev1.ProtocolSCTP, 81, IPv4}
	tcp80v6 = ProbeKey{corev1.ProtocolTCP, 80, IPv6}
	tcp81v6 = ProbeKey{corev1.ProtocolTCP, 81, IPv6}
	udp80v6 = ProbeKey{corev1.ProtocolUDP, 80, IPv6}
	udp81v6 = ProbeKey{corev1.ProtocolUDP, 81, IPv6}
)

// expect pairs one hand-written matrix with the probes that must give it.
func expect(matrix string, keys ...ProbeKey) []Probe {
	m := reach.MustParseMatrix(matrix)
	out := make([]Probe, len(keys))
	for i, k := range keys {
		out[i] = Probe{ProbeKey: k, Expect: m.Clone()}
	}
	return out
}

// probes concatenates probe lists.
func probes(lists ...[]Probe) []Probe {
	var out []Probe
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
