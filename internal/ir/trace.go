package ir

import (
	"net/netip"
	"slices"
)

// Packet is the first packet of a connection as the node sees it.
type Packet struct {
	Src, Dst netip.Addr
	Protocol uint8
	Port     uint16
	// FromHost is set for packets the node itself sends, ToHost for packets
	// to the node itself.
	FromHost, ToHost bool
}

// Result is the outcome of a trace.
type Result struct {
	Accepted bool
	// Direction that dropped the packet (valid when !Accepted).
	Direction Direction
	// Group that decided the dropping direction, and the rule that accepted or
	// dropped it ("" when no rule matched).
	Group string
	Rule  string
	// Unknown: dropped because the local address is in UnknownRanges and in
	// no group of the direction.
	Unknown bool
}

// Tracer interprets a Ruleset packet by packet. Build it once per Ruleset.
type Tracer struct {
	rs     *Ruleset
	sets   map[string]*Set
	chains map[string]*Chain
	groups [2]map[netip.Addr]*Group
}

// NewTracer indexes rs for tracing.
func NewTracer(rs *Ruleset) *Tracer {
	t := &Tracer{rs: rs, sets: map[string]*Set{}, chains: map[string]*Chain{}}
	t.groups[Ingress] = map[netip.Addr]*Group{}
	t.groups[Egress] = map[netip.Addr]*Group{}
	for i := range rs.Sets {
		t.sets[rs.Sets[i].Name] = &rs.Sets[i]
	}
	for i := range rs.Chains {
		t.chains[rs.Chains[i].Name] = &rs.Chains[i]
	}
	for i := range rs.Groups {
		g := &rs.Groups[i]
		for _, m := range g.Members {
			t.groups[g.Direction][m.Addr] = g
		}
	}
	return t
}

// Trace returns what the ruleset does with p.
func (t *Tracer) Trace(p Packet) Result {
	// The node's own traffic with its pods never crosses the forward path.
	if p.FromHost || p.ToHost {
		return Result{Accepted: true}
	}
	// A pod's traffic to itself (hairpinned by a service) passes its groups;
	// an unknown address is dropped even then.
	self := p.Src == p.Dst
	if g := t.groups[Egress][p.Src]; g != nil {
		if ok, rule := t.evalGroup(g, p, p.Dst); !ok && !self {
			return Result{Direction: Egress, Group: g.Name, Rule: rule}
		}
	} else if t.rs.InUnknownRanges(p.Src) {
		return Result{Direction: Egress, Unknown: true}
	}
	if g := t.groups[Ingress][p.Dst]; g != nil {
		if ok, rule := t.evalGroup(g, p, p.Src); !ok && !self {
			return Result{Direction: Ingress, Group: g.Name, Rule: rule}
		}
	} else if t.rs.InUnknownRanges(p.Dst) {
		return Result{Direction: Ingress, Unknown: true}
	}
	return Result{Accepted: true}
}

func (t *Tracer) evalGroup(g *Group, p Packet, peer netip.Addr) (bool, string) {
	for _, name := range g.Chains {
		c := t.chains[name]
		if c == nil {
			continue
		}
		for i := range c.Rules {
			r := &c.Rules[i]
			if !t.matches(r, p, peer) {
				continue
			}
			switch r.Verdict {
			case Accept:
				return true, r.Comment
			case Drop:
				return false, r.Comment
			}
			// Pass: leave this chain.
			break
		}
	}
	return false, ""
}

func (t *Tracer) matches(r *Rule, p Packet, peer netip.Addr) bool {
	if r.Family != FamilyOf(p.Dst) {
		return false
	}
	if r.PeerSet != "" && !t.inSet(r.PeerSet, peer) {
		return false
	}
	if r.Protocol != 0 && r.Protocol != p.Protocol {
		return false
	}
	if r.PortMin != 0 && (p.Port < r.PortMin || p.Port > r.PortMax) {
		return false
	}
	if r.EndpointSet != "" {
		s := t.sets[r.EndpointSet]
		if s == nil {
			return false
		}
		_, found := slices.BinarySearchFunc(s.Endpoints, Endpoint{Addr: p.Dst, Protocol: p.Protocol, Port: p.Port}, CompareEndpoints)
		if !found {
			return false
		}
	}
	return true
}

func (t *Tracer) inSet(name string, addr netip.Addr) bool {
	s := t.sets[name]
	if s == nil {
		return false
	}
	switch s.Kind {
	case AddrSet:
		_, found := slices.BinarySearchFunc(s.Addrs, addr, netip.Addr.Compare)
		return found
	case NetSet:
		for _, p := range s.Prefixes {
			if p.Contains(addr) {
				return true
			}
		}
	}
	return false
}

// CompareEndpoints orders endpoints by address, protocol, port.
func CompareEndpoints(a, b Endpoint) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Protocol != b.Protocol {
		return int(a.Protocol) - int(b.Protocol)
	}
	return int(a.Port) - int(b.Port)
}
