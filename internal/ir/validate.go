package ir

import (
	"fmt"
	"net/netip"
)

// Validate reports the first thing in r that contradicts this package's
// documentation, naming the object, so that no backend renders a ruleset
// whose meaning is in doubt. It checks what holds for every backend:
//
//   - sets: a name, defined once, family 4 or 6, a known kind, members that
//     are plain addresses (no zone, no IPv4-mapped IPv6) of the set's
//     family, and a net set's prefixes valid;
//   - chains: a name used once by chains and groups together, a known
//     direction; their rules: family 4 or 6, a peer set that is an address
//     or net set of the rule's family, an endpoint set that is an endpoint
//     set of it, ports only with a protocol and as a range Min..Max with
//     1 <= Min <= Max, a known verdict;
//   - groups: a name used once, a known direction, chains that exist and
//     have the group's direction, members that are plain addresses and in
//     at most one group per direction; an enforcing group reaches no Audit
//     verdict (its pods would be more open than enforced) and an audited
//     one no Drop (they would be more closed than audited), and an audited
//     group needs the log on;
//   - UnknownRanges: valid and plain prefixes;
//   - Log: when enabled, a rate and a burst of at least 1.
//
// Every rule is checked, also those of chains no group runs now: whether a
// ruleset is refused must not depend on which pods run. Limits of one
// backend (name lengths, what its matches can express) are the backend's
// to check, and so is whether prefixes are disjoint (as this package asks
// of net sets and UnknownRanges): nftables' interval sets refuse overlaps,
// ipset's hash:net takes them.
func (r *Ruleset) Validate() error {
	sets := make(map[string]*Set, len(r.Sets))
	for i := range r.Sets {
		s := &r.Sets[i]
		if s.Name == "" {
			return fmt.Errorf("set %d has no name", i)
		}
		if sets[s.Name] != nil {
			return fmt.Errorf("set %s is defined twice in the ruleset", s.Name)
		}
		sets[s.Name] = s
		if err := s.validate(); err != nil {
			return err
		}
	}
	names := make(map[string]bool, len(r.Chains)+len(r.Groups))
	chains := make(map[string]*Chain, len(r.Chains))
	for i := range r.Chains {
		c := &r.Chains[i]
		if c.Name == "" {
			return fmt.Errorf("chain %d (policy %s) has no name", i, c.Policy)
		}
		if names[c.Name] {
			return fmt.Errorf("chain %s is defined twice in the ruleset", c.Name)
		}
		names[c.Name] = true
		chains[c.Name] = c
		if c.Direction != Ingress && c.Direction != Egress {
			return fmt.Errorf("chain %s (policy %s): unknown direction %d", c.Name, c.Policy, c.Direction)
		}
		for j := range c.Rules {
			if err := c.Rules[j].validate(c.Direction, sets); err != nil {
				return fmt.Errorf("chain %s (policy %s) rule %d: %w", c.Name, c.Policy, j, err)
			}
		}
	}
	var members [2]map[netip.Addr]string
	for i := range r.Groups {
		g := &r.Groups[i]
		if g.Name == "" {
			return fmt.Errorf("group %d has no name", i)
		}
		if names[g.Name] {
			return fmt.Errorf("group %s has the name of another chain or group in the ruleset", g.Name)
		}
		names[g.Name] = true
		if g.Direction != Ingress && g.Direction != Egress {
			return fmt.Errorf("group %s: unknown direction %d", g.Name, g.Direction)
		}
		for _, name := range g.Chains {
			c := chains[name]
			if c == nil {
				return fmt.Errorf("group %s refers to chain %s, which the ruleset does not define", g.Name, name)
			}
			if c.Direction != g.Direction {
				return fmt.Errorf("%s group %s refers to chain %s of direction %s", g.Direction, g.Name, name, c.Direction)
			}
			if err := checkAuditVerdicts(g, c); err != nil {
				return err
			}
		}
		if g.Audit && !r.Log.Enabled {
			return fmt.Errorf("group %s is audited but the log is off: an audited drop must be logged; turn the log on or enforce the group", g.Name)
		}
		if members[g.Direction] == nil {
			members[g.Direction] = map[netip.Addr]string{}
		}
		for _, m := range g.Members {
			if !plainAddr(m.Addr) {
				return fmt.Errorf("group %s: member %s has a bad address %q (want a plain IPv4 or IPv6 address)", g.Name, m.Pod, m.Addr)
			}
			if other, dup := members[g.Direction][m.Addr]; dup {
				return fmt.Errorf("address %s is in %s groups %s and %s; a pod address belongs to one group per direction", m.Addr, g.Direction, other, g.Name)
			}
			members[g.Direction][m.Addr] = g.Name
		}
	}
	for _, p := range r.UnknownRanges {
		if !p.IsValid() || !plainAddr(p.Addr()) {
			return fmt.Errorf("unknown ranges: %s is no plain IPv4 or IPv6 prefix", p)
		}
	}
	if l := r.Log; l.Enabled && (l.Rate == 0 || l.Burst == 0) {
		return fmt.Errorf("log: rate %d/s with burst %d logs nothing; want both at least 1", l.Rate, l.Burst)
	}
	return nil
}

// checkAuditVerdicts checks that chain c of group g drops as g's mode says:
// Drop in an enforcing group, Audit in an audited one.
func checkAuditVerdicts(g *Group, c *Chain) error {
	bad, mode := Audit, "enforcing"
	if g.Audit {
		bad, mode = Drop, "audited"
	}
	for j := range c.Rules {
		if c.Rules[j].Verdict == bad {
			return fmt.Errorf("%s group %s refers to chain %s, whose rule %d (%s) has verdict %s; a chain of %s groups must %s", mode, g.Name, c.Name, j, c.Rules[j].Comment, bad, mode, map[bool]string{false: "drop, not audit", true: "audit, not drop"}[g.Audit])
		}
	}
	return nil
}

func (s *Set) validate() error {
	if s.Family != IPv4 && s.Family != IPv6 {
		return fmt.Errorf("set %s: unknown family %d (want 4 or 6)", s.Name, s.Family)
	}
	ofFamily := func(a netip.Addr) bool { return plainAddr(a) && FamilyOf(a) == s.Family }
	badMember := func(what string) error {
		return fmt.Errorf("set %s (IPv%d) holds %s, which is no plain address of its family", s.Name, s.Family, what)
	}
	switch s.Kind {
	case AddrSet:
		for _, a := range s.Addrs {
			if !ofFamily(a) {
				return badMember("address " + a.String())
			}
		}
	case NetSet:
		for _, p := range s.Prefixes {
			if !p.IsValid() {
				return fmt.Errorf("set %s holds an invalid prefix", s.Name)
			}
			if !ofFamily(p.Addr()) {
				return badMember("prefix " + p.String())
			}
		}
	case EndpointSet:
		for _, e := range s.Endpoints {
			if !ofFamily(e.Addr) {
				return badMember("endpoint " + e.String())
			}
		}
	default:
		return fmt.Errorf("set %s: unknown kind %d", s.Name, s.Kind)
	}
	return nil
}

func (r *Rule) validate(dir Direction, sets map[string]*Set) error {
	if r.Family != IPv4 && r.Family != IPv6 {
		return fmt.Errorf("unknown family %d (want 4 or 6)", r.Family)
	}
	if r.PeerSet != "" {
		s := sets[r.PeerSet]
		if s == nil {
			return fmt.Errorf("peer set %s is not in the ruleset: a set of that name is not defined", r.PeerSet)
		}
		if s.Kind == EndpointSet {
			return fmt.Errorf("peer set %s holds endpoint members, which a peer match cannot use", r.PeerSet)
		}
		if s.Family != r.Family {
			return fmt.Errorf("peer set %s is of IPv%d, the rule of IPv%d", r.PeerSet, s.Family, r.Family)
		}
	}
	switch {
	case r.Protocol == 0 && (r.PortMin != 0 || r.PortMax != 0):
		return fmt.Errorf("port range %d-%d without a protocol", r.PortMin, r.PortMax)
	case r.PortMin == 0 && r.PortMax != 0:
		return fmt.Errorf("port range 0-%d: a range must start at 1 or more", r.PortMax)
	case r.PortMin > r.PortMax:
		return fmt.Errorf("port range %d-%d ends before it starts", r.PortMin, r.PortMax)
	}
	if r.EndpointSet != "" {
		s := sets[r.EndpointSet]
		if s == nil {
			return fmt.Errorf("endpoint set %s is not in the ruleset: a set of that name is not defined", r.EndpointSet)
		}
		if s.Kind != EndpointSet {
			return fmt.Errorf("endpoint set %s holds %s members, which an endpoint match cannot use", r.EndpointSet, s.Kind)
		}
		if s.Family != r.Family {
			return fmt.Errorf("endpoint set %s is of IPv%d, the rule of IPv%d", r.EndpointSet, s.Family, r.Family)
		}
	}
	if r.Verdict != Accept && r.Verdict != Drop && r.Verdict != Pass && r.Verdict != Audit {
		return fmt.Errorf("unknown verdict %d", r.Verdict)
	}
	return nil
}

// plainAddr reports whether a is an IPv4 or IPv6 address as the kernel
// compares them: no zone, no IPv4 address mapped into IPv6.
func plainAddr(a netip.Addr) bool { return a.IsValid() && a.Zone() == "" && !a.Is4In6() }
