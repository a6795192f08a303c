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
	// Audits are the directions of audited groups that would have dropped
	// the packet but let it pass (egress first), each logged as
	// would-be-dropped. Accepted and Direction say what the ruleset does;
	// WouldDrop what it would do if it audited nothing.
	Audits []AuditHit
}

// AuditHit is a would-be drop of an audited group: the direction, the
// group and the rule ("" for the group's end: no rule accepted).
type AuditHit struct {
	Direction Direction
	Group     string
	Rule      string
}

// WouldDrop reports where the packet is or would be dropped if every
// audited group enforced: the first audit hit (egress is checked before
// ingress, and an enforcing egress would have dropped the packet before
// ingress saw it), else the drop itself. ok is false when the packet
// passes and no audited group would have dropped it.
func (r Result) WouldDrop() (hit AuditHit, unknown, ok bool) {
	if len(r.Audits) > 0 {
		return r.Audits[0], false, true
	}
	if r.Accepted {
		return AuditHit{}, false, false
	}
	return AuditHit{Direction: r.Direction, Group: r.Group, Rule: r.Rule}, r.Unknown, true
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
	var audits []AuditHit
	for _, dir := range [...]Direction{Egress, Ingress} {
		local, peer := p.Src, p.Dst
		if dir == Ingress {
			local, peer = p.Dst, p.Src
		}
		g := t.groups[dir][local]
		if g == nil {
			if t.rs.InUnknownRanges(local) {
				return Result{Direction: dir, Unknown: true, Audits: audits}
			}
			continue
		}
		v, rule := t.evalGroup(g, p, peer)
		switch {
		case self || v == Accept:
		case v == Audit:
			audits = append(audits, AuditHit{Direction: dir, Group: g.Name, Rule: rule})
		default:
			return Result{Direction: dir, Group: g.Name, Rule: rule, Audits: audits}
		}
	}
	return Result{Accepted: true, Audits: audits}
}

// evalGroup returns what group g does with p: Accept, Drop or Audit, and
// the comment of the rule that decided ("" for the group's end).
func (t *Tracer) evalGroup(g *Group, p Packet, peer netip.Addr) (Verdict, string) {
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
			if r.Verdict != Pass {
				return r.Verdict, r.Comment
			}
			// Pass: leave this chain.
			break
		}
	}
	if g.Audit {
		return Audit, ""
	}
	return Drop, ""
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
