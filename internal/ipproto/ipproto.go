// Package ipproto is weft's one table of IP protocols: their numbers, which
// of them carry ports, and the names rules give them. Policy, the ir and
// both backends read it, so they never disagree on whether a protocol has
// ports (a rule's port on a protocol without any would match garbage in the
// kernel and nothing in the evaluator).
package ipproto

import "strconv"

// IP protocol numbers weft names.
const (
	ICMP   uint8 = 1
	TCP    uint8 = 6
	UDP    uint8 = 17
	ICMPv6 uint8 = 58
	SCTP   uint8 = 132
)

// HasPorts reports whether protocol p carries ports: TCP, UDP and SCTP, the
// protocols a NetworkPolicy port can name. Their headers start with the
// source and destination ports, which is where the kernel reads them.
func HasPorts(p uint8) bool { return p == TCP || p == UDP || p == SCTP }

// Name is how both nft and iptables write protocol p in a rule: tcp, udp,
// sctp or icmp, else the number. ICMPv6 has no name both accept alike
// (nft lists "ipv6-icmp", iptables takes "icmpv6"), so it is a number here
// and each backend names it itself.
func Name(p uint8) string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	case ICMP:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}
