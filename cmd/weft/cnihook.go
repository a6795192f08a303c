package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/internal/cni"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/syncer"
	"github.com/weftnet/weft/internal/watch"
)

// cniHook answers weft-cni: ADD returns once the pod's isolation is in the
// kernel, DEL once its released addresses are unknown (denied) there.
type cniHook struct {
	node string
	w    *watch.Watcher
	s    *syncer.Syncer
}

var _ cni.Handler = (*cniHook)(nil)

// Add records the pod's addresses and waits until a ruleset that knows the
// pod by them is applied.
func (h *cniHook) Add(ctx context.Context, pod cni.PodRef, ips []netip.Addr) error {
	gen := h.w.CNIAdd(pod.Namespace, pod.Name, pod.ContainerID, ips)
	return h.waitApplied(ctx, gen, func(snap *policy.Snapshot) error { return h.programmed(snap, pod, ips) })
}

// Del records that the pod released its addresses and waits until that is
// applied, so that a new pod given one of them is unknown until weft knows it.
func (h *cniHook) Del(ctx context.Context, pod cni.PodRef, ips []netip.Addr) error {
	gen := h.w.CNIDel(pod.Namespace, pod.Name, pod.ContainerID, ips)
	return h.waitApplied(ctx, gen, func(*policy.Snapshot) error { return nil })
}

// Check reports whether the ruleset in force knows the pod by ips.
func (h *cniHook) Check(_ context.Context, pod cni.PodRef, ips []netip.Addr) error {
	snap, _ := h.s.Current()
	if snap == nil {
		return errors.New("weft has applied no ruleset yet")
	}
	return h.programmed(snap, pod, ips)
}

// programmed says why snap does not enforce policy for pod at ips (nil when
// it does).
func (h *cniHook) programmed(snap *policy.Snapshot, pod cni.PodRef, ips []netip.Addr) error {
	p := snap.Pod(pod.Namespace, pod.Name)
	if p == nil {
		return fmt.Errorf("weft's view of the API has no pod %s/%s yet", pod.Namespace, pod.Name)
	}
	if !policy.IsLocal(p, h.node) {
		return fmt.Errorf("pod %s/%s is not a local pod of node %s (spec.nodeName %q, hostNetwork %v): its addresses stay denied", pod.Namespace, pod.Name, h.node, p.NodeName, p.HostNetwork)
	}
	for _, ip := range ips {
		if holder := snap.PodByIP(ip); holder != p {
			other := "no pod"
			if holder != nil {
				other = "pod " + holder.Key()
			}
			return fmt.Errorf("address %s of pod %s/%s is held by %s in weft's view", ip, pod.Namespace, pod.Name, other)
		}
	}
	return nil
}

// waitApplied waits until a snapshot of CNI generation gen or later is
// applied and done(snapshot) is nil, or ctx ends.
func (h *cniHook) waitApplied(ctx context.Context, gen uint64, done func(*policy.Snapshot) error) error {
	why := errors.New("no ruleset applied since")
	for {
		signal := h.s.AppliedSignal()
		if snap, _ := h.s.Current(); snap != nil && snap.CNIGeneration >= gen {
			if why = done(snap); why == nil {
				return nil
			}
		}
		select {
		case <-signal:
		case <-ctx.Done():
			_, state := h.s.Status()
			if state == "" {
				state = "ready"
			}
			return fmt.Errorf("not programmed in time: %v (weft: %s)", why, state)
		}
	}
}
