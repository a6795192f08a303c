package watch

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
)

// TestWaitForSyncFollowsGenerations: when a generation of informers is
// replaced before it synced (the ClusterNetworkPolicy CRD went while weft
// started), WaitForSync waits for the new generation, not the dropped one,
// which never syncs.
func TestWaitForSyncFollowsGenerations(t *testing.T) {
	never := func() bool { return false }
	w := &Watcher{log: slog.New(slog.DiscardHandler), inf: &informerSet{synced: []cache.InformerSynced{never}}}
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.mu.Lock()
		w.inf = &informerSet{synced: []cache.InformerSynced{func() bool { return true }}}
		w.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WaitForSync(ctx, time.Second); err != nil {
		t.Fatalf("WaitForSync: %v; want it to follow the new generation", err)
	}
	if !w.Health().Synced {
		t.Error("not marked synced")
	}
}
