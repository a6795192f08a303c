package nflog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	gonflog "github.com/florianl/go-nflog/v2"

	"github.com/weftnet/weft/internal/ir"
)

// Counters receive what the reader and the logger count (weft's metrics).
type Counters interface {
	// Blocked counts one blocked connection attempt the kernel logged.
	Blocked(protocol, direction, namespace string)
	// WouldBlock counts one connection attempt of an audited pod that
	// enforcing would have blocked, as the kernel logged it.
	WouldBlock(protocol, direction, namespace string)
	// Lost counts messages that never became a line: the kernel's socket
	// queue overran (ENOBUFS) or weft's queue was full.
	Lost(n int)
	// Summarised counts events folded into a summary line.
	Summarised(n int)
	// Reading is whether weft reads its NFLOG group.
	Reading(ok bool)
}

// Reader receives the packets the kernel logs to Group. It never blocks the
// socket: when weft's queue is full, packets are counted as lost.
type Reader struct {
	Group    uint16
	SnapLen  uint32
	Log      *slog.Logger
	Counters Counters
	// RetryAfter is the wait before binding again after a failure
	// (default 30s).
	RetryAfter time.Duration

	mu       sync.Mutex
	lastSeq  *uint32
	lost     int       // messages lost since lostLog
	overruns int       // socket overruns since lostLog
	lostLog  time.Time // when losses were last logged
}

// Run reads until ctx ends and sends each packet to out without blocking.
// If the group cannot be bound (another process holds it, netlink errors)
// it says so, counts it and retries; enforcement does not depend on it.
func (r *Reader) Run(ctx context.Context, out chan<- Packet) {
	retry := r.RetryAfter
	if retry <= 0 {
		retry = 30 * time.Second
	}
	failing := false
	for ctx.Err() == nil {
		failed, closeNF, err := r.bind(ctx, out)
		if err != nil {
			r.Counters.Reading(false)
			if !failing {
				r.Log.Error(bindAdvice(r.Group, err), "nflogGroup", r.Group, "error", err, "retryIn", retry)
			} else {
				r.Log.Debug("still cannot read the NFLOG group", "nflogGroup", r.Group, "error", err)
			}
			failing = true
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			continue
		}
		if failing {
			r.Log.Info("reading the NFLOG group now; blocked connections are logged again", "nflogGroup", r.Group)
		} else {
			r.Log.Info("logging blocked connections from NFLOG", "nflogGroup", r.Group)
		}
		failing = false
		r.Counters.Reading(true)
		ticker := time.NewTicker(time.Minute)
	wait:
		for {
			select {
			case <-ctx.Done():
				ticker.Stop()
				closeNF()
				return
			case <-ticker.C:
				r.logLosses(true)
			case err := <-failed:
				ticker.Stop()
				closeNF()
				r.Counters.Reading(false)
				r.Log.Error("reading the NFLOG group failed; binding it again (blocked connections are still dropped meanwhile, only not logged)", "nflogGroup", r.Group, "error", err)
				failing = true
				break wait
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// bindAdvice names the group and the fix. (The kernel answers EPERM, not
// EBUSY, when another socket holds the group; weft runs as root, so that is
// the likely cause.)
func bindAdvice(group uint16, err error) string {
	msg := err.Error()
	if strings.Contains(msg, syscall.EPERM.Error()) || strings.Contains(msg, syscall.EBUSY.Error()) {
		return fmt.Sprintf("NFLOG group %d is bound by another process (ulogd? another weft?) or weft lacks CAP_NET_ADMIN: blocked connections are still dropped but not logged; stop that process or give weft another --nflog-group", group)
	}
	return fmt.Sprintf("cannot read NFLOG group %d (is the kernel module nfnetlink_log available? modprobe nfnetlink_log): blocked connections are still dropped but not logged", group)
}

// bind opens the socket and starts reading until ctx ends or close is
// called; failed receives the error that stopped reading, if one does.
func (r *Reader) bind(ctx context.Context, out chan<- Packet) (failed <-chan error, close func(), err error) {
	nf, err := gonflog.Open(&gonflog.Config{
		Group:    r.Group,
		Copymode: gonflog.CopyPacket,
		Bufsize:  r.SnapLen,
		Flags:    gonflog.FlagSeq,
		QThresh:  1,
	})
	if err != nil {
		return nil, nil, err
	}
	// A deep socket buffer rides out bursts while weft writes lines.
	_ = nf.Con.SetReadBuffer(4 << 20)
	r.mu.Lock()
	r.lastSeq = nil
	r.mu.Unlock()
	errs := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	hook := func(a gonflog.Attribute) int {
		r.receive(a, out)
		return 0
	}
	onErr := func(err error) int {
		if rctx.Err() != nil {
			return 1
		}
		if errors.Is(err, syscall.ENOBUFS) {
			// The kernel could not queue messages for weft: the gap in
			// the sequence numbers of the next message counts them.
			r.mu.Lock()
			r.overruns++
			r.mu.Unlock()
			r.logLosses(false)
			return 0
		}
		var op interface{ Timeout() bool }
		if errors.As(err, &op) && op.Timeout() {
			return 0
		}
		select {
		case errs <- err:
		default:
		}
		return 1
	}
	if err := nf.RegisterWithErrorFunc(rctx, hook, onErr); err != nil {
		cancel()
		nf.Close()
		return nil, nil, err
	}
	return errs, func() { cancel(); nf.Close() }, nil
}

// receive turns one message into a Packet for out.
func (r *Reader) receive(a gonflog.Attribute, out chan<- Packet) {
	if a.Seq != nil {
		r.mu.Lock()
		if r.lastSeq != nil {
			if gap := *a.Seq - *r.lastSeq - 1; gap > 0 && gap < 1<<31 {
				r.lost += int(gap)
				r.Counters.Lost(int(gap))
			}
		}
		seq := *a.Seq
		r.lastSeq = &seq
		r.mu.Unlock()
	}
	if a.Prefix == nil || a.Payload == nil {
		return
	}
	action, dir, ok := ir.ParseLogPrefix(*a.Prefix)
	if !ok {
		return // another program's rule logs to this group
	}
	p, err := ParsePacket(*a.Payload)
	if err != nil {
		r.Log.Debug("unreadable packet in NFLOG message", "error", err)
		return
	}
	p.Action, p.Direction = action, dir
	p.At = time.Now()
	if a.Timestamp != nil && !a.Timestamp.IsZero() {
		p.At = *a.Timestamp
	}
	select {
	case out <- p:
	default:
		r.lose(1)
	}
}

func (r *Reader) lose(n int) {
	r.Counters.Lost(n)
	r.mu.Lock()
	r.lost += n
	r.mu.Unlock()
	r.logLosses(false)
}

// logLosses says how many messages were lost since it last did, at most
// once a minute (always when the minute's ticker asks).
func (r *Reader) logLosses(tick bool) {
	r.mu.Lock()
	n, overruns, since := r.lost, r.overruns, r.lostLog
	now := time.Now()
	if (n == 0 && overruns == 0) || (!tick && now.Sub(since) < time.Minute) {
		r.mu.Unlock()
		return
	}
	r.lost, r.overruns, r.lostLog = 0, 0, now
	r.mu.Unlock()
	r.Log.Warn("blocked-connection log messages lost: the NFLOG socket overran or weft's queue was full (blocked traffic is still blocked, only not logged; see weft_nflog_messages_lost_total)", "nflogGroup", r.Group, "lost", n, "overruns", overruns)
}
