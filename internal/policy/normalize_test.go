package policy_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/scenarios"
)

// The bad-input tests run on the standard scenario model (namespaces x, y, z
// with pods a, b, c; see internal/scenarios) with one policy, x/bad, that
// weft cannot fully understand.

// probe is a connection from one model pod to another, tried over IPv4 and IPv6.
type probe struct {
	from, to string
	proto    corev1.Protocol
	port     uint16
}

func tcp(from, to string, port uint16) probe { return probe{from, to, corev1.ProtocolTCP, port} }
func udp(from, to string, port uint16) probe { return probe{from, to, corev1.ProtocolUDP, port} }

type badCase struct {
	name   string
	policy *networkingv1.NetworkPolicy
	// fields are the exact paths of the errors, in order.
	fields []string
	// broken lists, per direction, the indexes of the rules that must be
	// marked Broken; every other rule must not be.
	broken map[policy.Direction][]int
	// isolates: the directions x/a must be isolated for by x/bad.
	isolates []policy.Direction
	blocked  []probe
	allowed  []probe
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func exprs(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

func intPort(n int32) *intstr.IntOrString  { v := intstr.FromInt32(n); return &v }
func strPort(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
func i32(n int32) *int32                   { return &n }

var (
	// zcPeer is a valid peer that only the broken rule names: if any part of
	// a broken rule were kept, z/c would get through.
	zcPeer = networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "z"), PodSelector: sel("pod", "c")}
	// ybPeer is the peer of the good rule that must keep working.
	ybPeer = networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y"), PodSelector: sel("pod", "b")}
	tcp80  = networkingv1.NetworkPolicyPort{Protocol: proto(corev1.ProtocolTCP), Port: intPort(80)}
)

func badPolicy(spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "bad"}, Spec: spec}
}

// ingressPeerCase: x/a accepts rule 0 {from: [z/c, broken]} and rule 1 {from: [y/b]}.
func ingressPeerCase(name string, broken networkingv1.NetworkPolicyPeer, field string) badCase {
	return badCase{
		name: name,
		policy: badPolicy(networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{zcPeer, broken}},
				{From: []networkingv1.NetworkPolicyPeer{ybPeer}},
			},
		}),
		fields:   []string{"spec.ingress[0].from[1]" + field},
		broken:   map[policy.Direction][]int{policy.Ingress: {0}},
		isolates: []policy.Direction{policy.Ingress},
		blocked:  []probe{tcp("z/c", "x/a", 80), udp("z/c", "x/a", 81), tcp("x/c", "x/a", 80), tcp("x/b", "x/a", 81)},
		allowed:  []probe{tcp("y/b", "x/a", 80), udp("y/b", "x/a", 81), tcp("z/c", "x/b", 80), tcp("x/a", "z/c", 80)},
	}
}

// ingressPortCase: x/a accepts rule 0 {ports: [TCP 80, broken]} and rule 1 {from: [y/b]}.
func ingressPortCase(name string, broken networkingv1.NetworkPolicyPort, field string) badCase {
	return badCase{
		name: name,
		policy: badPolicy(networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{tcp80, broken}},
				{From: []networkingv1.NetworkPolicyPeer{ybPeer}},
			},
		}),
		fields:   []string{"spec.ingress[0].ports[1]" + field},
		broken:   map[policy.Direction][]int{policy.Ingress: {0}},
		isolates: []policy.Direction{policy.Ingress},
		blocked:  []probe{tcp("z/c", "x/a", 80), tcp("z/c", "x/a", 81), udp("x/b", "x/a", 80), udp("y/a", "x/a", 81)},
		allowed:  []probe{tcp("y/b", "x/a", 80), udp("y/b", "x/a", 81), tcp("z/c", "x/b", 80)},
	}
}

// egressPeerCase: x/a may send by rule 0 {to: [z/c, broken]} and rule 1 {to: [y/b]}.
func egressPeerCase(name string, broken networkingv1.NetworkPolicyPeer, field string) badCase {
	return badCase{
		name: name,
		policy: badPolicy(networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "a"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{zcPeer, broken}},
				{To: []networkingv1.NetworkPolicyPeer{ybPeer}},
			},
		}),
		fields:   []string{"spec.egress[0].to[1]" + field},
		broken:   map[policy.Direction][]int{policy.Egress: {0}},
		isolates: []policy.Direction{policy.Egress},
		blocked:  []probe{tcp("x/a", "z/c", 80), udp("x/a", "z/c", 81), tcp("x/a", "x/c", 80)},
		allowed:  []probe{tcp("x/a", "y/b", 80), tcp("x/b", "z/c", 80), tcp("z/c", "x/a", 80)},
	}
}

// egressPortCase: x/a may send by rule 0 {ports: [TCP 80, broken]} and rule 1 {to: [y/b]}.
func egressPortCase(name string, broken networkingv1.NetworkPolicyPort, field string) badCase {
	return badCase{
		name: name,
		policy: badPolicy(networkingv1.NetworkPolicySpec{
			PodSelector: *sel("pod", "a"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: []networkingv1.NetworkPolicyPort{tcp80, broken}},
				{To: []networkingv1.NetworkPolicyPeer{ybPeer}},
			},
		}),
		fields:   []string{"spec.egress[0].ports[1]" + field},
		broken:   map[policy.Direction][]int{policy.Egress: {0}},
		isolates: []policy.Direction{policy.Egress},
		blocked:  []probe{tcp("x/a", "z/c", 80), udp("x/a", "x/c", 81)},
		allowed:  []probe{tcp("x/a", "y/b", 80), udp("x/a", "y/b", 81), tcp("x/b", "z/c", 80)},
	}
}

func cidr(c string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: c, Except: except}}
}

func badCases() []badCase {
	cases := []badCase{
		// ipBlock
		ingressPeerCase("unparseable cidr", cidr("10.32.0.0/33"), ".ipBlock.cidr"),
		ingressPeerCase("cidr without prefix length", cidr("10.32.3.3"), ".ipBlock.cidr"),
		ingressPeerCase("cidr of garbage", cidr("not-a-cidr"), ".ipBlock.cidr"),
		ingressPeerCase("empty cidr", cidr(""), ".ipBlock.cidr"),
		ingressPeerCase("unparseable except", cidr("10.32.0.0/16", "10.32.1.0/24", "bogus"), ".ipBlock.except[1]"),
		ingressPeerCase("except outside its cidr", cidr("10.32.0.0/16", "10.33.0.0/24"), ".ipBlock.except[0]"),
		ingressPeerCase("except wider than its cidr", cidr("10.32.3.0/24", "10.32.0.0/16"), ".ipBlock.except[0]"),
		ingressPeerCase("except of the other family", cidr("10.32.0.0/16", "fd00::/64"), ".ipBlock.except[0]"),
		ingressPeerCase("ipv6 except outside its cidr", cidr("fd00::/64", "fd01::/64"), ".ipBlock.except[0]"),
		egressPeerCase("egress unparseable cidr", cidr("10.32.0.0/33"), ".ipBlock.cidr"),
		egressPeerCase("egress except outside its cidr", cidr("fd00::3:0/112", "fd00::2:0/120"), ".ipBlock.except[0]"),
		// selectors
		ingressPeerCase("unknown operator in podSelector",
			networkingv1.NetworkPolicyPeer{PodSelector: exprs("pod", "Matches", "c")}, ".podSelector"),
		ingressPeerCase("unknown operator in namespaceSelector",
			networkingv1.NetworkPolicyPeer{NamespaceSelector: exprs("ns", "Near", "z")}, ".namespaceSelector"),
		ingressPeerCase("In without values",
			networkingv1.NetworkPolicyPeer{PodSelector: exprs("pod", metav1.LabelSelectorOpIn)}, ".podSelector"),
		ingressPeerCase("Exists with values",
			networkingv1.NetworkPolicyPeer{NamespaceSelector: exprs("ns", metav1.LabelSelectorOpExists, "z")}, ".namespaceSelector"),
		ingressPeerCase("invalid label value",
			networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "z"), PodSelector: sel("pod", "not a value!")}, ".podSelector"),
		egressPeerCase("egress unknown operator",
			networkingv1.NetworkPolicyPeer{NamespaceSelector: exprs("ns", "Sideways", "z")}, ".namespaceSelector"),
		// peers
		ingressPeerCase("ipBlock with podSelector",
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.32.0.0/16"}, PodSelector: sel("pod", "c")}, ""),
		ingressPeerCase("ipBlock with namespaceSelector",
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.32.0.0/16"}, NamespaceSelector: &metav1.LabelSelector{}}, ""),
		ingressPeerCase("empty peer", networkingv1.NetworkPolicyPeer{}, ""),
		egressPeerCase("egress empty peer", networkingv1.NetworkPolicyPeer{}, ""),
		// ports
		ingressPortCase("unknown protocol", networkingv1.NetworkPolicyPort{Protocol: proto("ICMP"), Port: intPort(80)}, ".protocol"),
		ingressPortCase("unknown protocol without port", networkingv1.NetworkPolicyPort{Protocol: proto("GRE")}, ".protocol"),
		ingressPortCase("port 0", networkingv1.NetworkPolicyPort{Port: intPort(0)}, ".port"),
		ingressPortCase("port 65536", networkingv1.NetworkPolicyPort{Port: intPort(65536)}, ".port"),
		ingressPortCase("negative port", networkingv1.NetworkPolicyPort{Protocol: proto(corev1.ProtocolUDP), Port: intPort(-80)}, ".port"),
		ingressPortCase("endPort below port", networkingv1.NetworkPolicyPort{Port: intPort(81), EndPort: i32(80)}, ".endPort"),
		ingressPortCase("endPort above 65535", networkingv1.NetworkPolicyPort{Port: intPort(80), EndPort: i32(65536)}, ".endPort"),
		ingressPortCase("endPort with named port", networkingv1.NetworkPolicyPort{Port: strPort("serve-80-tcp"), EndPort: i32(81)}, ".endPort"),
		ingressPortCase("endPort without port", networkingv1.NetworkPolicyPort{Protocol: proto(corev1.ProtocolUDP), EndPort: i32(81)}, ".endPort"),
		ingressPortCase("port name with upper case", networkingv1.NetworkPolicyPort{Port: strPort("Serve-80-tcp")}, ".port"),
		ingressPortCase("port name with double hyphen", networkingv1.NetworkPolicyPort{Port: strPort("serve--80")}, ".port"),
		ingressPortCase("port name with leading hyphen", networkingv1.NetworkPolicyPort{Port: strPort("-serve")}, ".port"),
		ingressPortCase("port name without a letter", networkingv1.NetworkPolicyPort{Port: strPort("8080")}, ".port"),
		ingressPortCase("port name of 16 characters", networkingv1.NetworkPolicyPort{Port: strPort("serve-80-tcp-abc")}, ".port"),
		ingressPortCase("empty port name", networkingv1.NetworkPolicyPort{Port: strPort("")}, ".port"),
		ingressPortCase("port of unknown type", networkingv1.NetworkPolicyPort{Port: &intstr.IntOrString{Type: 7, IntVal: 80}}, ".port"),
		egressPortCase("egress unknown protocol", networkingv1.NetworkPolicyPort{Protocol: proto("icmpv6"), Port: intPort(80)}, ".protocol"),
		egressPortCase("egress endPort below port", networkingv1.NetworkPolicyPort{Port: intPort(81), EndPort: i32(79)}, ".endPort"),
	}

	// Policy-level problems.
	cases = append(cases,
		badCase{
			name: "unknown policyType",
			policy: badPolicy(networkingv1.NetworkPolicySpec{
				PodSelector: *sel("pod", "a"),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, "Sideways"},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{ybPeer}}},
			}),
			fields: []string{"spec.policyTypes[1]"},
			// Not knowing which direction was meant, weft isolates both; the
			// ingress rule still works and no egress rule allows anything.
			isolates: []policy.Direction{policy.Ingress, policy.Egress},
			blocked:  []probe{tcp("z/c", "x/a", 80), tcp("x/a", "z/c", 80), tcp("x/a", "y/b", 80)},
			allowed:  []probe{tcp("y/b", "x/a", 80), tcp("x/b", "z/c", 80), tcp("z/c", "x/b", 80)},
		},
		badCase{
			name: "unknown operator in spec.podSelector",
			policy: badPolicy(networkingv1.NetworkPolicySpec{
				PodSelector: *exprs("pod", "Resembles", "a"),
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{ybPeer}}},
			}),
			fields: []string{"spec.podSelector"},
			// Which pods are meant is unknown: every pod of x is isolated in
			// both directions and nothing is allowed, not even the valid rule.
			isolates: []policy.Direction{policy.Ingress, policy.Egress},
			blocked: []probe{tcp("y/b", "x/a", 80), tcp("z/c", "x/b", 80), tcp("x/b", "z/c", 80),
				tcp("x/c", "x/a", 81), udp("x/a", "y/b", 80)},
			allowed: []probe{tcp("y/a", "y/b", 80), udp("z/c", "y/c", 81)},
		},
		badCase{
			name: "invalid label value in spec.podSelector",
			policy: badPolicy(networkingv1.NetworkPolicySpec{
				PodSelector: *sel("pod", "a a"),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			}),
			fields:   []string{"spec.podSelector"},
			isolates: []policy.Direction{policy.Ingress, policy.Egress},
			blocked:  []probe{tcp("y/b", "x/a", 80), tcp("z/c", "x/c", 80), tcp("x/b", "y/a", 80)},
			allowed:  []probe{tcp("y/a", "z/b", 80)},
		},
		badCase{
			name: "several broken rules",
			policy: badPolicy(networkingv1.NetworkPolicySpec{
				PodSelector: *sel("pod", "a"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{From: []networkingv1.NetworkPolicyPeer{cidr("10.32.0.0/33")}, Ports: []networkingv1.NetworkPolicyPort{{Port: intPort(0)}}},
					{From: []networkingv1.NetworkPolicyPeer{ybPeer}},
					{Ports: []networkingv1.NetworkPolicyPort{tcp80, {Protocol: proto("ICMP")}}},
				},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{To: []networkingv1.NetworkPolicyPeer{{}}},
					{To: []networkingv1.NetworkPolicyPeer{zcPeer}},
				},
			}),
			fields: []string{
				"spec.ingress[0].from[0].ipBlock.cidr",
				"spec.ingress[0].ports[0].port",
				"spec.ingress[2].ports[1].protocol",
				"spec.egress[0].to[0]",
			},
			broken:   map[policy.Direction][]int{policy.Ingress: {0, 2}, policy.Egress: {0}},
			isolates: []policy.Direction{policy.Ingress, policy.Egress},
			blocked:  []probe{tcp("z/c", "x/a", 80), tcp("x/b", "x/a", 80), tcp("x/a", "y/b", 80), tcp("x/a", "x/b", 80)},
			allowed:  []probe{tcp("y/b", "x/a", 80), tcp("x/a", "z/c", 80), tcp("x/a", "z/c", 81)},
		},
	)
	return cases
}

func TestBadInput(t *testing.T) {
	model := scenarios.NewModel()
	endpoints := map[string]scenarios.Endpoint{}
	for _, e := range model.Endpoints() {
		endpoints[e.Name] = e
	}
	ref := policy.PolicyRef{Namespace: "x", Name: "bad"}

	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			var (
				pol  *policy.Policy
				snap *policy.Snapshot
				rs   *ir.Ruleset
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				pol = policy.PolicyFromAPI(tc.policy)
				snap = policy.NewSnapshot(model.Namespaces, model.Pods, []*networkingv1.NetworkPolicy{tc.policy})
				rs = compile.Compile(snap, "")
			}()

			// The errors name the policy and the exact field.
			var fields []string
			for _, e := range pol.Errors {
				fields = append(fields, e.Field)
				if e.Policy != ref {
					t.Errorf("error %q names policy %v, want %v", e.Field, e.Policy, ref)
				}
				if msg := e.Error(); !strings.Contains(msg, "x/bad") || !strings.Contains(msg, e.Field) || e.Msg == "" {
					t.Errorf("error text %q does not name the policy and the field, or says nothing", msg)
				}
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("error fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(pol.Errors, snap.Errors()); diff != "" {
				t.Errorf("snapshot errors differ from the policy's (-policy +snapshot):\n%s", diff)
			}

			// The policy still selects x/a and isolates it.
			xa := snap.Pod("x", "a")
			if !pol.Selects(xa) {
				t.Errorf("the broken policy no longer selects x/a")
			}
			for _, dir := range tc.isolates {
				if !pol.Isolates[dir] {
					t.Errorf("the broken policy does not isolate %s", dir)
				}
			}
			for dir, rules := range pol.Rules {
				for i, r := range rules {
					want := false
					for _, b := range tc.broken[policy.Direction(dir)] {
						want = want || b == i
					}
					if r.Broken != want {
						t.Errorf("%s rule %d: Broken = %v, want %v", policy.Direction(dir), i, r.Broken, want)
					}
					if r.Broken && (r.AllPeers || r.AllPorts || len(r.Peers) > 0 || len(r.Ports) > 0) {
						t.Errorf("%s rule %d is broken but still matches something: %+v", policy.Direction(dir), i, r)
					}
				}
			}

			// Flows: the evaluator and the compiled ruleset agree with the test.
			ev := &policy.Evaluator{Snapshot: snap}
			tr := ir.NewTracer(rs)
			check := func(p probe, want bool) {
				t.Helper()
				pr, err := policy.ParseProtocol(string(p.proto))
				if err != nil {
					t.Fatal(err)
				}
				for _, fam := range []scenarios.Family{scenarios.IPv4, scenarios.IPv6} {
					src, _ := endpoints[p.from].IP(fam)
					dst, _ := endpoints[p.to].IP(fam)
					f := policy.Flow{Src: src, Dst: dst, Protocol: pr, Port: p.port}
					if got := ev.Decide(f).Allowed; got != want {
						t.Errorf("evaluator: %s %s -> %s %s/%d: allowed=%v, want %v", fam, p.from, p.to, p.proto, p.port, got, want)
					}
					pkt := ir.Packet{Src: src, Dst: dst, Protocol: uint8(pr), Port: p.port}
					if got := tr.Trace(pkt).Accepted; got != want {
						t.Errorf("ir: %s %s -> %s %s/%d: accepted=%v, want %v", fam, p.from, p.to, p.proto, p.port, got, want)
					}
				}
			}
			for _, p := range tc.blocked {
				check(p, false)
			}
			for _, p := range tc.allowed {
				check(p, true)
			}
		})
	}
}

// TestValidInputHasNoErrors guards against the opposite mistake: valid
// corners of the API must not be reported or closed.
func TestValidInputHasNoErrors(t *testing.T) {
	for name, spec := range map[string]networkingv1.NetworkPolicySpec{
		"port names": {Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Port: strPort("http")}, {Port: strPort("serve-80-tcp")}, {Port: strPort("a1")}, {Port: strPort("abcdefghijklmno")},
			{Protocol: proto(corev1.ProtocolSCTP), Port: strPort("x")},
		}}}},
		"port bounds": {Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Port: intPort(1)}, {Port: intPort(65535)}, {Port: intPort(1), EndPort: i32(65535)}, {Port: intPort(80), EndPort: i32(80)},
		}}}},
		"ipBlocks": {Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			cidr("0.0.0.0/0", "10.0.0.0/8", "10.32.0.0/12"), cidr("::/0", "fd00::/8"), cidr("10.32.1.1/32"), cidr("fd00::1:1/128"),
		}}}},
		"selectors": {PodSelector: *exprs("pod", metav1.LabelSelectorOpDoesNotExist), Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: exprs("ns", metav1.LabelSelectorOpNotIn, "x", "y")},
			{PodSelector: exprs("pod", metav1.LabelSelectorOpExists)},
			{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{}},
		}}}},
		"policy types": {PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}},
	} {
		t.Run(name, func(t *testing.T) {
			p := policy.PolicyFromAPI(badPolicy(spec))
			if len(p.Errors) > 0 {
				t.Errorf("errors for a valid policy: %v", p.Errors)
			}
			for dir, rules := range p.Rules {
				for i, r := range rules {
					if r.Broken {
						t.Errorf("%s rule %d marked broken", policy.Direction(dir), i)
					}
				}
			}
		})
	}
}
