package conntrack

import (
	"net/netip"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkCut measures Cut in a private network namespace whose table
// holds IPv4 UDP entries created through ctnetlink.
//
//   - empty: no entries. ns/op is the fixed cost of a Cut: a socket and two
//     dumps, each of which walks the kernel's conntrack hash table (shared
//     by all namespaces, nf_conntrack_buckets long).
//   - keep-all: 10,000 entries; Cut dumps, parses and judges every entry and
//     deletes none: the pass every sync pays when nothing is revoked.
//     ns/entry-dumped is ns/op divided by the entries, fixed cost included.
//   - cut-all: 10,000 entries, all deleted; each iteration refills the table
//     with the timer stopped. ns/entry-deleted is ns/op divided by the
//     entries: the dump plus one delete request and its acknowledgement each.
func BenchmarkCut(b *testing.B) {
	for _, bc := range []struct {
		name, unit string
		entries    int
		keep       bool
	}{
		{"empty", "", 0, true},
		{"keep-all", "ns/entry-dumped", 10_000, true},
		{"cut-all", "ns/entry-deleted", 10_000, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			enterPrivateNamespace(b)
			c := New(nil)
			fill := func() {
				for i := range bc.entries {
					createEntry(b, unix.IPPROTO_UDP,
						netip.AddrFrom4([4]byte{10, 32, 1, byte(1 + i/250)}), uint16(10000+i%250),
						netip.MustParseAddr("10.32.2.2"), 53, netip.MustParseAddr("10.32.2.2"), 53)
				}
			}
			fill()
			for b.Loop() {
				if !bc.keep {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				n, err := c.Cut(func(Flow) bool { return bc.keep })
				if err != nil {
					b.Fatal(err)
				}
				if want := map[bool]int{true: 0, false: bc.entries}[bc.keep]; n != want {
					b.Fatalf("Cut deleted %d entries, want %d", n, want)
				}
			}
			if bc.entries > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.entries), bc.unit)
			}
		})
	}
}

// enterPrivateNamespace moves the benchmark's goroutine onto a thread of its
// own in a new, empty network namespace. netnstest serves tests only, and
// Cut works in the calling thread's namespace, so this is enough. The thread
// is never handed back to the runtime: it and its namespace end with the
// benchmark's goroutine.
func enterPrivateNamespace(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a network namespace (run the benchmarks as root)")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		b.Skipf("cannot create a network namespace: %v", err)
	}
}
