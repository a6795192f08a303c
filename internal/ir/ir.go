package ir

import (
	"fmt"
	"net/netip"
)

// Family is an IP family: 4 or 6.
type Family uint8

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// FamilyOf returns the family of addr.
func FamilyOf(addr netip.Addr) Family {
	if addr.Is4() {
		return IPv4
	}
	return IPv6
}

// Direction says which end of a packet a group is about.
type Direction uint8

// Ingress groups hold destination addresses, Egress groups source addresses.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Verdict is what a matching rule does.
type Verdict uint8

// Accept ends evaluation of the direction and lets the packet pass it. Drop
// ends it and drops the packet. Pass leaves the current chain for the group's
// next one (reserved for ClusterNetworkPolicy; NetworkPolicy uses Accept).
// Audit is the Drop of an audited group's chain: it ends the direction,
// logs the packet as one enforcing would have dropped (LogAction Audited)
// and lets it pass (see the package doc, "Audit").
const (
	Accept Verdict = iota
	Drop
	Pass
	Audit
)

func (v Verdict) String() string {
	switch v {
	case Drop:
		return "drop"
	case Pass:
		return "pass"
	case Audit:
		return "audit"
	}
	return "accept"
}

// SetKind says what a set holds.
type SetKind uint8

// AddrSet holds single addresses (pod IPs); NetSet holds disjoint prefixes
// (ipBlocks, exceptions already removed); EndpointSet holds (address,
// protocol, port) triples (named ports resolved on each pod).
const (
	AddrSet SetKind = iota
	NetSet
	EndpointSet
)

func (k SetKind) String() string {
	switch k {
	case NetSet:
		return "net"
	case EndpointSet:
		return "endpoint"
	}
	return "addr"
}

// Endpoint is a member of an EndpointSet.
type Endpoint struct {
	Addr     netip.Addr
	Protocol uint8
	Port     uint16
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s,%d:%d", e.Addr, e.Protocol, e.Port)
}

// Set is a named set of one family and kind. Exactly one member slice is used,
// sorted and without duplicates.
type Set struct {
	// Name is stable (derived by hashing what the set stands for), unique, at
	// most 31 characters, and usable as an ipset or nftables set name.
	Name      string
	Family    Family
	Kind      SetKind
	Comment   string
	Addrs     []netip.Addr
	Prefixes  []netip.Prefix
	Endpoints []Endpoint
}

// Len returns the number of members.
func (s *Set) Len() int { return len(s.Addrs) + len(s.Prefixes) + len(s.Endpoints) }

// Rule matches packets of one family. Every non-zero field must match.
type Rule struct {
	Family Family
	// PeerSet names the AddrSet or NetSet that the peer address must be in:
	// the source for Ingress, the destination for Egress. "" matches any peer.
	PeerSet string
	// Protocol 0 matches every protocol (and then no port fields are set).
	Protocol uint8
	// PortMin..PortMax is the destination port range; 0 means any port.
	PortMin, PortMax uint16
	// EndpointSet names an EndpointSet that (destination, protocol, destination
	// port) must be in: a named port.
	EndpointSet string
	Verdict     Verdict
	// Comment says which policy rule this came from, e.g. "x/allow ingress[0]".
	Comment string
}

// Chain is an ordered list of rules, usually one policy's rules for one direction.
type Chain struct {
	// Name is stable, unique and at most 28 characters.
	Name string
	// Policy is "namespace/name" of the policy the chain implements.
	Policy    string
	Direction Direction
	Rules     []Rule
}

// Member is a local pod address in a group.
type Member struct {
	Addr netip.Addr
	Pod  string // "namespace/name"
}

// Group dispatches the addresses of isolated local pods to their chains.
type Group struct {
	// Name is stable, unique and at most 28 characters.
	Name      string
	Direction Direction
	// Chains are tried in order; see the package doc.
	Chains []string
	// Policies are the "namespace/name" of the policies that isolate the members.
	Policies []string
	Members  []Member
	// Audit says the members are audited in this direction: what no chain
	// accepts is logged as would-be-dropped (LogAction Audited) and passes
	// instead of being dropped, and the chains the group reaches hold
	// Audit verdicts where an enforcing group's hold Drop.
	Audit bool
}

// Ruleset is the whole desired state of one node.
type Ruleset struct {
	Node   string
	Sets   []Set   // sorted by Name
	Chains []Chain // sorted by Name
	Groups []Group // sorted by Name
	// UnknownRanges are disjoint prefixes, sorted, of both families: the
	// node's pod ranges without the node's own addresses. A packet whose
	// local address (source for Egress, destination for Ingress) is in one
	// of them but in no group of that direction is dropped there: an address
	// of a pod weft does not know (yet), or one released by its pod. Empty
	// when weft cannot tell pod addresses (no pod ranges) or is told to let
	// unknown addresses pass.
	UnknownRanges []netip.Prefix
	// Log says which drops (and accepts) the kernel also sends to NFLOG.
	Log Log
}

// InUnknownRanges reports whether addr is in one of rs.UnknownRanges.
func (r *Ruleset) InUnknownRanges(addr netip.Addr) bool {
	for _, p := range r.UnknownRanges {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Set returns the set named name, or nil.
func (r *Ruleset) Set(name string) *Set {
	for i := range r.Sets {
		if r.Sets[i].Name == name {
			return &r.Sets[i]
		}
	}
	return nil
}
