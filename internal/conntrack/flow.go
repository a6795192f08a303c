package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Flow is a tracked connection as weft's forward-path filter saw its first
// packet.
//
// The filter runs after destination NAT and before source NAT, so a Flow is
// not simply the entry's original tuple:
//
//   - Src and SrcPort are the original direction's source: the client as it
//     sent the packet.
//   - Dst and DstPort are the reply direction's source: the real destination
//     after DNAT (a Service's backend pod, not its cluster IP), which is what
//     answers.
//
// Without NAT both readings agree.
type Flow struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
}

// Protocols whose entries Cut may delete: TCP, UDP and SCTP, the ones
// NetworkPolicy speaks of. Entries of any other protocol are never judged.
const (
	protoTCP  = unix.IPPROTO_TCP
	protoUDP  = unix.IPPROTO_UDP
	protoSCTP = unix.IPPROTO_SCTP
)

func judged(protocol uint8) bool {
	return protocol == protoTCP || protocol == protoUDP || protocol == protoSCTP
}

func protocolName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	}
	return fmt.Sprintf("protocol %d", p)
}

// ctnetlink attribute numbers (linux/netfilter/nfnetlink_conntrack.h) that
// the nl package does not name.
const (
	ctaProtoSrcPort = 2 // CTA_PROTO_SRC_PORT, inside CTA_TUPLE_PROTO
	ctaProtoDstPort = 3 // CTA_PROTO_DST_PORT
)

// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from an
// attribute's type.
const nlaTypeMask = 0x3fff

// entry is one conntrack entry of a dump, reduced to what Cut needs.
type entry struct {
	flow Flow
	// key holds the entry's CTA_TUPLE_ORIG, CTA_ZONE and CTA_ID attributes as
	// the kernel sent them. A delete request carrying them removes this
	// entry: the tuple and zone find it, and the id makes the kernel refuse
	// (ENOENT) when a new connection has since taken the same tuple. (The id
	// derives from the entry's address, so a new entry that reuses the old
	// one's memory at once passes for it; deleting it costs that connection
	// no more than being judged again on its next packet, and its NAT
	// binding.)
	key []byte
}

var errNoOrigTuple = errors.New("no original tuple")

// parseEntry reads one ctnetlink message of a dump: the nfgenmsg header,
// then the entry's attributes. It returns an error for a message it cannot
// read whole. Ports stay zero for protocols without ports (ICMP).
func parseEntry(msg []byte) (entry, error) {
	if len(msg) < nl.SizeofNfgenmsg {
		return entry{}, fmt.Errorf("message of %d bytes is shorter than its header", len(msg))
	}
	var (
		e           entry
		orig, reply tuple
		haveReply   bool
	)
	err := forEachAttr(msg[nl.SizeofNfgenmsg:], func(typ uint16, value, raw []byte) error {
		switch typ {
		case nl.CTA_TUPLE_ORIG:
			t, err := parseTuple(value)
			if err != nil {
				return fmt.Errorf("original tuple: %w", err)
			}
			orig = t
			e.key = appendAttr(e.key, raw)
		case nl.CTA_TUPLE_REPLY:
			t, err := parseTuple(value)
			if err != nil {
				return fmt.Errorf("reply tuple: %w", err)
			}
			reply, haveReply = t, true
		case nl.CTA_ZONE, nl.CTA_ID:
			e.key = appendAttr(e.key, raw)
		}
		return nil
	})
	switch {
	case err != nil:
		return entry{}, err
	case !orig.src.IsValid():
		// Also guards the delete: a request without a tuple flushes the
		// whole table.
		return entry{}, errNoOrigTuple
	case !haveReply:
		return entry{}, errors.New("no reply tuple")
	}
	e.flow, err = flowOf(orig, reply)
	return e, err
}

// tuple is one direction of an entry: CTA_TUPLE_ORIG or CTA_TUPLE_REPLY.
type tuple struct {
	src, dst         netip.Addr
	protocol         uint8
	srcPort, dstPort uint16
	hasPorts         bool
}

func parseTuple(b []byte) (tuple, error) {
	var t tuple
	var ports int
	err := forEachAttr(b, func(typ uint16, value, _ []byte) error {
		switch typ {
		case nl.CTA_TUPLE_IP:
			return forEachAttr(value, func(typ uint16, value, _ []byte) error {
				addr, ok := netip.AddrFromSlice(value)
				if !ok {
					return fmt.Errorf("address of %d bytes", len(value))
				}
				switch typ {
				case nl.CTA_IP_V4_SRC, nl.CTA_IP_V6_SRC:
					t.src = addr
				case nl.CTA_IP_V4_DST, nl.CTA_IP_V6_DST:
					t.dst = addr
				}
				return nil
			})
		case nl.CTA_TUPLE_PROTO:
			return forEachAttr(value, func(typ uint16, value, _ []byte) error {
				switch typ {
				case nl.CTA_PROTO_NUM:
					if len(value) < 1 {
						return errors.New("empty protocol number")
					}
					t.protocol = value[0]
				case ctaProtoSrcPort, ctaProtoDstPort:
					if len(value) < 2 {
						return fmt.Errorf("port of %d bytes", len(value))
					}
					port := binary.BigEndian.Uint16(value)
					if typ == ctaProtoSrcPort {
						t.srcPort = port
					} else {
						t.dstPort = port
					}
					ports++
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return tuple{}, err
	}
	if !t.src.IsValid() || !t.dst.IsValid() {
		return tuple{}, errors.New("missing address")
	}
	t.hasPorts = ports == 2
	return t, nil
}

// flowOf builds the Flow the forward-path filter saw: see Flow.
func flowOf(orig, reply tuple) (Flow, error) {
	if judged(orig.protocol) && (!orig.hasPorts || !reply.hasPorts) {
		return Flow{}, fmt.Errorf("%s entry without ports", protocolName(orig.protocol))
	}
	return Flow{
		Src:      orig.src,
		SrcPort:  orig.srcPort,
		Dst:      reply.src,
		DstPort:  reply.srcPort,
		Protocol: orig.protocol,
	}, nil
}

// forEachAttr calls fn with each netlink attribute of b: its type without
// flags, its value, and the attribute whole as it stands in b.
func forEachAttr(b []byte, fn func(typ uint16, value, raw []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofNlAttr {
			return fmt.Errorf("%d trailing bytes after the last attribute", len(b))
		}
		length := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if length < unix.SizeofNlAttr || length > len(b) {
			return fmt.Errorf("attribute %d claims %d bytes of %d", typ, length, len(b))
		}
		if err := fn(typ, b[unix.SizeofNlAttr:length], b[:length]); err != nil {
			return err
		}
		b = b[min(align4(length), len(b)):]
	}
	return nil
}

// appendAttr appends a whole attribute to a request body, padded as netlink
// requires.
func appendAttr(body, attr []byte) []byte {
	body = append(body, attr...)
	for range align4(len(attr)) - len(attr) {
		body = append(body, 0)
	}
	return body
}

func align4(n int) int { return (n + 3) &^ 3 }
