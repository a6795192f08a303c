package scenarios_test

import (
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/reach"
	"github.com/weftnet/weft/internal/scenarios"
)

// harness holds one scenario's model, snapshot and compiled rulesets.
type harness struct {
	model     *scenarios.Model
	snap      *policy.Snapshot
	endpoints map[string]scenarios.Endpoint
	whole     *ir.Tracer            // Compile(snap, ""): every pod local
	perNode   map[string]*ir.Tracer // Compile(snap, node)
}

func newHarness(sc *scenarios.Scenario) *harness {
	m := sc.Model()
	h := &harness{
		model:     m,
		snap:      policy.NewSnapshot(m.Namespaces, m.Pods, sc.Policies),
		endpoints: map[string]scenarios.Endpoint{},
		perNode:   map[string]*ir.Tracer{},
	}
	for _, e := range m.Endpoints() {
		h.endpoints[e.Name] = e
	}
	h.whole = ir.NewTracer(compile.Compile(h.snap, ""))
	for _, n := range m.Nodes {
		h.perNode[n.Name] = ir.NewTracer(compile.Compile(h.snap, n.Name))
	}
	return h
}

func (h *harness) nodeIPs(node string) []netip.Addr {
	if n := h.model.Node(node); n != nil {
		return n.IPs
	}
	return nil
}

// sentByNode reports whether src sends from node's root network namespace:
// src is that node, or a host-network pod on it.
func sentByNode(src scenarios.Endpoint, node string) bool {
	return src.Kind != scenarios.PodEndpoint && src.Node == node
}

// packet is how node sees f: from the node itself, to the node itself, or forwarded.
func packet(f policy.Flow, src, dst scenarios.Endpoint, node string) ir.Packet {
	return ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: uint8(f.Protocol), Port: f.Port,
		FromHost: sentByNode(src, node), ToHost: sentByNode(dst, node)}
}

// checker is one way of deciding a flow between two endpoints.
type checker struct {
	name    string
	allowed func(src, dst scenarios.Endpoint, f policy.Flow) bool
}

// checkers are the four ways that must all give the expected matrix.
func (h *harness) checkers() []checker {
	return []checker{
		{"evaluator (every pod local)", func(src, dst scenarios.Endpoint, f policy.Flow) bool {
			// Node addresses are known from the pods' status.hostIPs.
			e := &policy.Evaluator{Snapshot: h.snap}
			return e.Decide(f).Allowed
		}},
		{"ir (every pod local)", func(src, dst scenarios.Endpoint, f policy.Flow) bool {
			// One node runs both ends' checks; it is the destination's node,
			// unless the destination is a node or host-network address.
			node := dst.Node
			if dst.Kind != scenarios.PodEndpoint {
				node = src.Node
			}
			return h.whole.Trace(packet(f, src, dst, node)).Accepted
		}},
		{"evaluator per node", func(src, dst scenarios.Endpoint, f policy.Flow) bool {
			// The source's node checks egress, the destination's node ingress.
			srcView := &policy.Evaluator{Snapshot: h.snap, Node: src.Node, NodeIPs: h.nodeIPs(src.Node)}
			dstView := &policy.Evaluator{Snapshot: h.snap, Node: dst.Node, NodeIPs: h.nodeIPs(dst.Node)}
			return srcView.Decide(f).Egress.Allowed && dstView.Decide(f).Ingress.Allowed
		}},
		{"ir per node", func(src, dst scenarios.Endpoint, f policy.Flow) bool {
			// The packet crosses the source's node and the destination's node
			// (one node when both run there); each must let it through.
			for _, node := range slices.Compact([]string{src.Node, dst.Node}) {
				if !h.perNode[node].Trace(packet(f, src, dst, node)).Accepted {
					return false
				}
			}
			return true
		}},
	}
}

// flow returns the probe's flow from src to dst.
func flow(t *testing.T, src, dst scenarios.Endpoint, k scenarios.ProbeKey) policy.Flow {
	t.Helper()
	proto, err := policy.ParseProtocol(string(k.Protocol))
	if err != nil {
		t.Fatalf("probe %s: %v", k, err)
	}
	s, ok1 := src.IP(k.Family)
	d, ok2 := dst.IP(k.Family)
	if !ok1 || !ok2 {
		t.Fatalf("probe %s: %s or %s has no %s address", k, src.Name, dst.Name, k.Family)
	}
	return policy.Flow{Src: s, Dst: d, Protocol: proto, Port: uint16(k.Port)}
}

// decide fills a matrix of the shape of want with c's verdicts. Cells from
// an endpoint to itself are taken from want when skipSelf is set.
func (h *harness) decide(t *testing.T, c checker, p scenarios.Probe, skipSelf bool) *reach.Matrix {
	t.Helper()
	got := reach.NewMatrix(p.Expect.From, p.Expect.To, false)
	for _, from := range p.Expect.From {
		for _, to := range p.Expect.To {
			if from == to && skipSelf {
				want, _ := p.Expect.Allowed(from, to)
				got.Set(from, to, want)
				continue
			}
			src, dst := h.endpoints[from], h.endpoints[to]
			got.Set(from, to, c.allowed(src, dst, flow(t, src, dst, p.ProbeKey)))
		}
	}
	return got
}

// TestScenarios decides every probe of every scenario four ways — the
// evaluator and the compiled ir, for the whole cluster and node by node — and
// compares each result with the hand-written matrix. A pod's traffic to
// itself is left to TestSelfTraffic.
func TestScenarios(t *testing.T) {
	all := scenarios.All()
	if len(all) < 40 {
		t.Errorf("%d scenarios, want at least 40", len(all))
	}
	for _, sc := range all {
		t.Run(sc.Name, func(t *testing.T) {
			h := newHarness(sc)
			if err := sc.Validate(h.model); err != nil {
				t.Fatal(err)
			}

			var gotErrors []string
			for _, e := range h.snap.Errors() {
				gotErrors = append(gotErrors, e.Policy.String()+": "+e.Field)
			}
			sort.Strings(gotErrors)
			wantErrors := slices.Sorted(slices.Values(sc.Errors))
			if diff := cmp.Diff(wantErrors, gotErrors); diff != "" {
				t.Errorf("policy errors (-want +got):\n%s", diff)
			}

			for _, p := range sc.Probes {
				for _, c := range h.checkers() {
					if d := reach.Diff(p.Expect, h.decide(t, c, p, true)); d != "" {
						t.Errorf("probe %s, %s:\n%s", p.ProbeKey, c.name, d)
					}
				}
			}
		})
	}
}

// TestSelfTraffic checks the cells TestScenarios leaves out: "a pod cannot
// block access to itself" (NetworkPolicy documentation), and its packets to
// itself never leave its network namespace, so the kernel always lets them
// through.
func TestSelfTraffic(t *testing.T) {
	for _, sc := range scenarios.All() {
		t.Run(sc.Name, func(t *testing.T) {
			h := newHarness(sc)
			for _, p := range sc.Probes {
				for _, c := range h.checkers() {
					got := h.decide(t, c, p, false)
					for _, name := range p.Expect.From {
						want, ok := p.Expect.Allowed(name, name)
						if !ok {
							continue
						}
						if g, _ := got.Allowed(name, name); g != want {
							t.Errorf("probe %s, %s: %s -> itself: allowed=%v, want %v", p.ProbeKey, c.name, name, g, want)
						}
					}
				}
			}
		})
	}
}
