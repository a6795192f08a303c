package nflog

import (
	"context"
	"log/slog"
	"time"

	"github.com/weftnet/weft/internal/ir"
)

// Logger explains logged packets and writes them, one line per connection
// and one summary line per flood.
type Logger struct {
	Out *slog.Logger
	// JSON adds the structured fields to each line (--log-format json);
	// lines for people carry the sentence alone.
	JSON       bool
	History    *History
	Counters   Counters
	Summariser Summariser
	// Slack is how far before a packet's time a view may still explain it
	// (default 2s): a sync that lands between the packet and weft's reading
	// of it does not make it inexplicable.
	Slack time.Duration
}

// Run handles the packets from in until ctx ends.
func (l *Logger) Run(ctx context.Context, in <-chan Packet) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, s := range l.Summariser.Flush(now) {
				l.writeSummary(ctx, s)
			}
		case p := <-in:
			l.Handle(ctx, p, time.Now())
		}
	}
}

// Handle explains, counts and (unless it folds into a summary) writes p.
func (l *Logger) Handle(ctx context.Context, p Packet, now time.Time) {
	ev := l.explain(p)
	switch p.Action {
	case ir.Dropped, ir.Unknown:
		l.Counters.Blocked(p.Protocol.String(), p.Direction.String(), ev.Namespace())
	case ir.Audited:
		l.Counters.WouldBlock(p.Protocol.String(), p.Direction.String(), ev.Namespace())
	}
	write, ended := l.Summariser.Seen(ev, now)
	if ended != nil {
		l.writeSummary(ctx, *ended)
	}
	if !write {
		l.Counters.Summarised(1)
		return
	}
	var attrs []slog.Attr
	if l.JSON {
		attrs = ev.Attrs()
	}
	l.Out.LogAttrs(ctx, slog.LevelInfo, ev.Message(), attrs...)
}

func (l *Logger) explain(p Packet) Event {
	slack := l.Slack
	if slack <= 0 {
		slack = 2 * time.Second
	}
	latest := l.History.Latest()
	if latest == nil {
		// Rules of an earlier run, before weft applied its first view.
		ev := Event{Packet: p, Verdict: verdictOf(p.Action),
			Src:    Endpoint{IP: p.Src, Port: p.SrcPort, Kind: "unknown"},
			Dst:    Endpoint{IP: p.Dst, Port: p.DstPort, Kind: "unknown"},
			Reason: "by the rules in place before weft started; weft has no cluster view yet to explain it"}
		if !p.Protocol.HasPorts() {
			ev.Src.Port, ev.Dst.Port = 0, 0
		}
		return ev
	}
	return Explain(p, l.History.Candidates(p.At, slack), latest)
}

func (l *Logger) writeSummary(ctx context.Context, s Summary) {
	var attrs []slog.Attr
	if l.JSON {
		for _, a := range s.Event.Attrs() {
			if a.Key != "srcPort" {
				attrs = append(attrs, a)
			}
		}
		attrs = append(attrs, slog.Int("count", s.Count), slog.Float64("windowSeconds", s.Window.Seconds()))
	}
	l.Out.LogAttrs(ctx, slog.LevelInfo, s.Event.SummaryMessage(s.Count, s.Window), attrs...)
}
