package compile

import (
	"net/netip"
	"slices"
)

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

// disjoint returns ps without the prefixes another one of ps contains,
// sorted by address (two prefixes either nest or do not meet).
func disjoint(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	for i := range ps {
		ps[i] = ps[i].Masked()
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}
