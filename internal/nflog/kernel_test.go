package nflog

import (
	"context"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/policy"
)

// syncCounts is counts for a reader's goroutines.
type syncCounts struct {
	mu sync.Mutex
	counts
}

func (c *syncCounts) Blocked(p, d, ns string) { c.mu.Lock(); c.counts.Blocked(p, d, ns); c.mu.Unlock() }
func (c *syncCounts) WouldBlock(p, d, ns string) {
	c.mu.Lock()
	c.counts.WouldBlock(p, d, ns)
	c.mu.Unlock()
}
func (c *syncCounts) Lost(n int)       { c.mu.Lock(); c.counts.Lost(n); c.mu.Unlock() }
func (c *syncCounts) Summarised(n int) { c.mu.Lock(); c.counts.Summarised(n); c.mu.Unlock() }
func (c *syncCounts) Reading(ok bool)  { c.mu.Lock(); c.counts.Reading(ok); c.mu.Unlock() }
func (c *syncCounts) state() (reading, seen bool, lost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reading, c.readingSeen, c.lost
}

// The real kernel: a packet an nft rule logs to the group with weft's
// prefix reaches the Reader as a Packet; a second reader of the same group
// is refused with a message that names the group and the fix, and says it is
// not reading.
func TestReaderKernel(t *testing.T) {
	if !netnstest.Enter(t, "nft") {
		return
	}
	const group = 86
	rules := `table inet nflogtest {
	chain out {
		type filter hook output priority 0;
		udp dport 9999 log prefix "` + ir.LogPrefix(ir.Dropped, ir.Egress) + `" group 86 snaplen 128
		udp dport 9998 log prefix "someone else" group 86
	}
}
`
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logBuf strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logBuf.Write(b)
	}), nil))
	c := &syncCounts{}
	r := &Reader{Group: group, SnapLen: 128, Log: log, Counters: c}
	out := make(chan Packet, 16)
	go r.Run(ctx, out)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if reading, _, _ := c.state(); reading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader not reading after 5s; its log:\n%s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	send := func(port int) {
		conn, err := net.Dial("udp", "127.0.0.1:"+itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("x"))
	}
	send(9998) // another prefix: not weft's, ignored
	send(9999)
	select {
	case p := <-out:
		if p.Action != ir.Dropped || p.Direction != ir.Egress || p.Protocol != policy.UDP || p.DstPort != 9999 ||
			p.Src.String() != "127.0.0.1" || p.Dst.String() != "127.0.0.1" || p.SrcPort == 0 || p.At.IsZero() {
			t.Errorf("packet %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no packet from the kernel; reader log:\n%s", logBuf.String())
	}
	select {
	case p := <-out:
		t.Errorf("a second packet (another program's prefix?): %+v", p)
	case <-time.After(200 * time.Millisecond):
	}
	if _, _, lost := c.state(); lost != 0 {
		t.Errorf("lost %d messages, want 0", lost)
	}

	// A second reader of the same group: refused, said, counted.
	var log2 strings.Builder
	c2 := &syncCounts{}
	r2 := &Reader{Group: group, SnapLen: 128, Log: slog.New(slog.NewTextHandler(&log2, nil)), Counters: c2, RetryAfter: time.Hour}
	ctx2, cancel2 := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r2.Run(ctx2, make(chan Packet, 1)); close(done) }()
	deadline = time.Now().Add(5 * time.Second)
	for {
		if reading, seen, _ := c2.state(); seen && !reading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second reader did not report failure")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel2()
	<-done
	if !strings.Contains(log2.String(), "NFLOG group 86 is bound by another process") || !strings.Contains(log2.String(), "--nflog-group") {
		t.Errorf("second reader's log does not name the group and the fix:\n%s", log2.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func itoa(i int) string { return strconv.Itoa(i) }
