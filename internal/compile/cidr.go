package compile

import "net/netip"

// subtract returns disjoint prefixes covering p minus every except, sorted.
func subtract(p netip.Prefix, excepts []netip.Prefix) []netip.Prefix {
	overlapping := false
	for _, e := range excepts {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return nil // p lies entirely inside an exception
		}
		if p.Overlaps(e) {
			overlapping = true
		}
	}
	if !overlapping {
		return []netip.Prefix{p}
	}
	lo, hi := halves(p)
	return append(subtract(lo, excepts), subtract(hi, excepts)...)
}

// halves splits p into its two sub-prefixes one bit longer.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits()
	a := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	i := off + bits
	a[i/8] |= 0x80 >> (i % 8)
	hiAddr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		hiAddr = hiAddr.Unmap()
	}
	return netip.PrefixFrom(p.Addr(), bits+1), netip.PrefixFrom(hiAddr, bits+1)
}
