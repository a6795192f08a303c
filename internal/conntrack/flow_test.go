package conntrack

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ct describes one direction of an entry for building ctnetlink messages
// the way the kernel lays them out.
type ct struct {
	src, dst         string
	protocol         uint8
	srcPort, dstPort uint16
	noPorts          bool
}

func tupleAttr(typ int, t ct) *nl.RtAttr {
	outer := nl.NewRtAttr(unix.NLA_F_NESTED|typ, nil)
	src, dst := netip.MustParseAddr(t.src), netip.MustParseAddr(t.dst)
	srcType, dstType := nl.CTA_IP_V4_SRC, nl.CTA_IP_V4_DST
	if src.Is6() {
		srcType, dstType = nl.CTA_IP_V6_SRC, nl.CTA_IP_V6_DST
	}
	ip := outer.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_IP, nil)
	ip.AddRtAttr(srcType, src.AsSlice())
	ip.AddRtAttr(dstType, dst.AsSlice())
	proto := outer.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_TUPLE_PROTO, nil)
	proto.AddRtAttr(nl.CTA_PROTO_NUM, []byte{t.protocol})
	if !t.noPorts {
		proto.AddRtAttr(ctaProtoSrcPort, nl.BEUint16Attr(t.srcPort))
		proto.AddRtAttr(ctaProtoDstPort, nl.BEUint16Attr(t.dstPort))
	}
	return outer
}

func message(fam uint8, attrs ...*nl.RtAttr) []byte {
	b := (&nl.Nfgenmsg{NfgenFamily: fam, Version: nl.NFNETLINK_V0}).Serialize()
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

// kernelEntry lays out an entry as a ctnetlink dump does: both tuples, then
// status, timeout, mark, protocol state, use count, id and zone.
func kernelEntry(fam uint8, orig, reply ct) (msg, key []byte) {
	origAttr := tupleAttr(nl.CTA_TUPLE_ORIG, orig)
	protoinfo := nl.NewRtAttr(unix.NLA_F_NESTED|nl.CTA_PROTOINFO, nil)
	tcp := protoinfo.AddRtAttr(unix.NLA_F_NESTED|nl.CTA_PROTOINFO_TCP, nil)
	tcp.AddRtAttr(nl.CTA_PROTOINFO_TCP_STATE, []byte{3})
	zone := nl.NewRtAttr(nl.CTA_ZONE, nl.BEUint16Attr(7))
	id := nl.NewRtAttr(nl.CTA_ID, nl.BEUint32Attr(0xdeadbeef))
	msg = message(fam,
		origAttr,
		tupleAttr(nl.CTA_TUPLE_REPLY, reply),
		nl.NewRtAttr(nl.CTA_STATUS, nl.BEUint32Attr(0x18e)),
		nl.NewRtAttr(nl.CTA_TIMEOUT, nl.BEUint32Attr(431999)),
		nl.NewRtAttr(nl.CTA_MARK, nl.BEUint32Attr(0)),
		protoinfo,
		nl.NewRtAttr(nl.CTA_USE, nl.BEUint32Attr(1)),
		id,
		zone,
	)
	key = append(append(origAttr.Serialize(), id.Serialize()...), zone.Serialize()...)
	return msg, key
}

func TestFlowFromEntry(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fam         uint8
		orig, reply ct
		want        Flow
	}{{
		name:  "TCP over IPv4 through DNAT: Dst is the backend that replies, not the service address",
		fam:   unix.AF_INET,
		orig:  ct{src: "10.32.1.2", dst: "10.96.0.10", protocol: 6, srcPort: 40000, dstPort: 80},
		reply: ct{src: "10.32.2.2", dst: "10.32.1.2", protocol: 6, srcPort: 8080, dstPort: 40000},
		want:  Flow{Src: netip.MustParseAddr("10.32.1.2"), SrcPort: 40000, Dst: netip.MustParseAddr("10.32.2.2"), DstPort: 8080, Protocol: 6},
	}, {
		name:  "UDP over IPv6 through DNAT and SNAT: Src is the original client, before SNAT",
		fam:   unix.AF_INET6,
		orig:  ct{src: "fd00:1::2", dst: "fd00:96::a", protocol: 17, srcPort: 5353, dstPort: 53},
		reply: ct{src: "fd00:2::2", dst: "fd00:7::1", protocol: 17, srcPort: 1053, dstPort: 61000},
		want:  Flow{Src: netip.MustParseAddr("fd00:1::2"), SrcPort: 5353, Dst: netip.MustParseAddr("fd00:2::2"), DstPort: 1053, Protocol: 17},
	}, {
		name:  "SCTP over IPv4 without NAT keeps its ports",
		fam:   unix.AF_INET,
		orig:  ct{src: "10.32.1.2", dst: "10.32.2.2", protocol: 132, srcPort: 5000, dstPort: 38412},
		reply: ct{src: "10.32.2.2", dst: "10.32.1.2", protocol: 132, srcPort: 38412, dstPort: 5000},
		want:  Flow{Src: netip.MustParseAddr("10.32.1.2"), SrcPort: 5000, Dst: netip.MustParseAddr("10.32.2.2"), DstPort: 38412, Protocol: 132},
	}, {
		name:  "ICMP has no ports and is read but never judged",
		fam:   unix.AF_INET,
		orig:  ct{src: "10.32.1.2", dst: "10.32.2.2", protocol: 1, noPorts: true},
		reply: ct{src: "10.32.2.2", dst: "10.32.1.2", protocol: 1, noPorts: true},
		want:  Flow{Src: netip.MustParseAddr("10.32.1.2"), Dst: netip.MustParseAddr("10.32.2.2"), Protocol: 1},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			msg, wantKey := kernelEntry(tc.fam, tc.orig, tc.reply)
			e, err := parseEntry(msg)
			if err != nil {
				t.Fatal(err)
			}
			if e.flow != tc.want {
				t.Errorf("flow:\n got %+v\nwant %+v", e.flow, tc.want)
			}
			if !bytes.Equal(e.key, wantKey) {
				t.Errorf("delete key must be the original tuple, id and zone as sent:\n got %x\nwant %x", e.key, wantKey)
			}
			if judged(e.flow.Protocol) != (tc.orig.protocol != 1) {
				t.Errorf("judged(%d) = %v", e.flow.Protocol, judged(e.flow.Protocol))
			}
		})
	}
}

func TestParseEntryRefusesWhatItCannotRead(t *testing.T) {
	orig := ct{src: "10.32.1.2", dst: "10.32.2.2", protocol: 6, srcPort: 1, dstPort: 2}
	reply := ct{src: "10.32.2.2", dst: "10.32.1.2", protocol: 6, srcPort: 2, dstPort: 1}
	whole, _ := kernelEntry(unix.AF_INET, orig, reply)
	noPorts := orig
	noPorts.noPorts = true
	for _, tc := range []struct {
		name, want string
		msg        []byte
	}{
		{"shorter than its header", "shorter than its header", whole[:2]},
		{"cut inside an attribute", "claims", whole[:len(whole)-20]},
		{"no original tuple: a delete without one would flush the table", errNoOrigTuple.Error(),
			message(unix.AF_INET, tupleAttr(nl.CTA_TUPLE_REPLY, reply))},
		{"no reply tuple", "no reply tuple", message(unix.AF_INET, tupleAttr(nl.CTA_TUPLE_ORIG, orig))},
		{"TCP without ports", "tcp entry without ports",
			message(unix.AF_INET, tupleAttr(nl.CTA_TUPLE_ORIG, noPorts), tupleAttr(nl.CTA_TUPLE_REPLY, reply))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEntry(tc.msg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestErrorsSayWhatIsMissing(t *testing.T) {
	if err := explain(unix.EPERM, false); !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("EPERM: %v", err)
	}
	for _, errno := range []unix.Errno{unix.EINVAL, unix.EOPNOTSUPP, unix.EPROTONOSUPPORT} {
		if err := explain(errno, true); !errors.Is(err, errUnavailable) || !strings.Contains(err.Error(), "nf_conntrack netlink interface is unavailable") {
			t.Errorf("%v on a dump: %v", errno, err)
		}
	}
	if err := explain(unix.EINVAL, false); errors.Is(err, errUnavailable) {
		t.Errorf("EINVAL on a delete does not mean ctnetlink is missing: %v", err)
	}
}
