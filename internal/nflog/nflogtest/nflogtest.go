// Package nflogtest reads an NFLOG group in tests, as plainly as possible
// (not with weft's own reader, which it checks): each message's prefix, the
// addresses of the copied packet's IP header and how many bytes were copied.
package nflogtest

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	gonflog "github.com/florianl/go-nflog/v2"
)

// Message is one message of the group.
type Message struct {
	Prefix   string
	Src, Dst netip.Addr
	Length   int // bytes of the packet copied
}

// Listener collects the messages of a group.
type Listener struct {
	mu  sync.Mutex
	got []Message
}

// Listen reads group in the calling thread's network namespace until the
// test ends.
func Listen(t testing.TB, group uint16) *Listener {
	t.Helper()
	nf, err := gonflog.Open(&gonflog.Config{Group: group, Copymode: gonflog.CopyPacket, Bufsize: 0xffff})
	if err != nil {
		t.Fatalf("open NFLOG group %d: %v", group, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		nf.Close()
	})
	l := &Listener{}
	err = nf.RegisterWithErrorFunc(ctx, func(a gonflog.Attribute) int {
		m := Message{}
		if a.Prefix != nil {
			m.Prefix = *a.Prefix
		}
		if a.Payload != nil {
			p := *a.Payload
			m.Length = len(p)
			switch {
			case len(p) >= 20 && p[0]>>4 == 4:
				m.Src, _ = netip.AddrFromSlice(p[12:16])
				m.Dst, _ = netip.AddrFromSlice(p[16:20])
			case len(p) >= 40 && p[0]>>4 == 6:
				m.Src, _ = netip.AddrFromSlice(p[8:24])
				m.Dst, _ = netip.AddrFromSlice(p[24:40])
			}
		}
		l.mu.Lock()
		l.got = append(l.got, m)
		l.mu.Unlock()
		return 0
	}, func(error) int { return 0 })
	if err != nil {
		t.Fatalf("read NFLOG group %d: %v", group, err)
	}
	return l
}

// Messages returns what arrived so far.
func (l *Listener) Messages() []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// Wait waits up to 2 s for a message with prefix from src to dst.
func (l *Listener) Wait(prefix string, src, dst netip.Addr) (Message, bool) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range l.Messages() {
			if m.Prefix == prefix && m.Src == src && m.Dst == dst {
				return m, true
			}
		}
	}
	return Message{}, false
}
