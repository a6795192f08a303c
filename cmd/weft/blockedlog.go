package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/metrics"
	"github.com/weftnet/weft/internal/nflog"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/syncer"
)

// blockedLog reads the packets the kernel logs and writes them as lines that
// name pods and policies (see internal/nflog).
type blockedLog struct {
	history *nflog.History
	reader  *nflog.Reader
	logger  *nflog.Logger
}

// newBlockedLog folds alike lines within window (0: every line written).
func newBlockedLog(log *slog.Logger, json bool, spec ir.Log, c *metrics.NFLogCounters, window time.Duration) *blockedLog {
	h := &nflog.History{}
	if window == 0 {
		window = -1 // the Summariser's "fold nothing"
	}
	return &blockedLog{
		history: h,
		reader:  &nflog.Reader{Group: spec.Group, SnapLen: spec.SnapLen, Log: log.With("component", "nflog"), Counters: c},
		logger:  &nflog.Logger{Out: log, JSON: json, History: h, Counters: c, Summariser: nflog.Summariser{Window: window}},
	}
}

// synced records the view a successful sync put in force.
func (b *blockedLog) synced(r syncer.Result, node string, allowUnknown bool, mode policy.Enforcement) {
	if r.Err != nil || r.Snapshot == nil {
		return
	}
	e := policy.Evaluator{Snapshot: r.Snapshot, Node: node, NodeIPs: r.NodeAddrs, Mode: mode}
	if !allowUnknown {
		e.PodRanges = r.PodRanges
	}
	b.history.Add(nflog.View{At: time.Now(), Eval: e})
}

// start reads and logs until ctx ends; it never blocks enforcement.
func (b *blockedLog) start(ctx context.Context) {
	packets := make(chan nflog.Packet, 8192)
	go b.reader.Run(ctx, packets)
	go b.logger.Run(ctx, packets)
}
