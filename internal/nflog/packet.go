package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Packet is one logged packet: why the kernel logged it and its headers.
type Packet struct {
	// At is when the kernel logged it (or when weft received it, if the
	// kernel gave no time stamp).
	At        time.Time
	Action    ir.LogAction
	Direction ir.Direction
	Src, Dst  netip.Addr
	Protocol  policy.Protocol
	// SrcPort and DstPort are set for TCP, UDP and SCTP.
	SrcPort, DstPort uint16
	// ICMPType and ICMPCode are set for ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
}

// errShort is returned for a packet cut before its headers end.
var errShort = errors.New("packet too short")

// ParsePacket reads the IPv4 or IPv6 header of b and the ports or ICMP type
// after it. IPv6 extension headers are skipped; a fragment other than the
// first has no transport header, so its ports stay 0.
func ParsePacket(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 1 {
		return p, errShort
	}
	var proto uint8
	var rest []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, errShort
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return p, fmt.Errorf("IPv4 header length %d: %w", ihl, errShort)
		}
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		proto = b[9]
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 { // not the first fragment
			p.Protocol = policy.Protocol(proto)
			return p, nil
		}
		rest = b[ihl:]
	case 6:
		if len(b) < 40 {
			return p, errShort
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		proto = b[6]
		rest = b[40:]
		for {
			switch proto {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return p, errShort
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n {
					return p, errShort
				}
				proto, rest = rest[0], rest[n:]
				continue
			case 44: // fragment
				if len(rest) < 8 {
					return p, errShort
				}
				first := binary.BigEndian.Uint16(rest[2:4])&0xfff8 == 0
				proto, rest = rest[0], rest[8:]
				if !first {
					p.Protocol = policy.Protocol(proto)
					return p, nil
				}
				continue
			}
			break
		}
	default:
		return p, fmt.Errorf("IP version %d", b[0]>>4)
	}
	p.Protocol = policy.Protocol(proto)
	switch p.Protocol {
	case policy.TCP, policy.UDP, policy.SCTP:
		if len(rest) < 4 {
			return p, fmt.Errorf("%s header: %w", p.Protocol, errShort)
		}
		p.SrcPort = binary.BigEndian.Uint16(rest[0:2])
		p.DstPort = binary.BigEndian.Uint16(rest[2:4])
	case policy.ICMP, policy.ICMPv6:
		if len(rest) < 2 {
			return p, fmt.Errorf("%s header: %w", p.Protocol, errShort)
		}
		p.ICMPType, p.ICMPCode = rest[0], rest[1]
	}
	return p, nil
}
