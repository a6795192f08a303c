package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/internal/conntrack"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/metrics"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/syncer"
)

// interfaceAddrs returns the addresses of the network namespace's
// interfaces: the node's own, never pod addresses.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// revokedCutter returns the syncer's OnApplied hook that deletes the
// conntrack entries of connections the applied ruleset would not admit, so
// their next packet meets the new rules.
func revokedCutter(log *slog.Logger, m *metrics.Metrics) func(context.Context, syncer.Applied) {
	cutter := conntrack.New(log)
	var failed bool
	return func(_ context.Context, a syncer.Applied) {
		tracer := ir.NewTracer(a.Ruleset)
		node := map[netip.Addr]bool{}
		for _, ip := range a.NodeAddrs {
			node[ip] = true
		}
		for _, ip := range a.Snapshot.AddressesOf(a.Ruleset.Node) {
			node[ip] = true
		}
		keep := func(f conntrack.Flow) bool {
			if node[f.Src] || node[f.Dst] {
				return true // the node's own connections never meet weft's rules
			}
			return tracer.Trace(ir.Packet{Src: f.Src, Dst: f.Dst, Protocol: f.Protocol, Port: f.DstPort}).Accepted
		}
		n, err := cutter.Cut(keep)
		if err != nil {
			if !failed {
				log.Error("cannot cut connections that policy no longer allows; they go on until they end (new ones are blocked)", "error", err)
			}
			failed = true
			return
		}
		failed = false
		m.ConnectionsCut(n)
		if n > 0 {
			log.Info("cut established connections that policy no longer allows", "connections", n, "sinceApplied", time.Since(a.At).Round(time.Millisecond))
		}
	}
}

// misconfigurations watches for settings under which weft would silently
// isolate nothing, and says so once per finding (and in a metric).
type misconfigurations struct {
	node    string
	log     *slog.Logger
	m       *metrics.Metrics
	started time.Time
	said    map[string]bool
	// bridgesAt is when the bridges were last looked at (a netlink dump:
	// not on every sync).
	bridgesAt time.Time
}

// check looks at the snapshot the syncer applied.
func (c *misconfigurations) check(snap *policy.Snapshot) {
	if snap == nil {
		return
	}
	if len(snap.Nodes) > 0 {
		_, ok := snap.Nodes[c.node]
		c.report("node-name", !ok, "no Node object is named like --node-name: weft finds no local pods and isolates nothing; give the node's name as Kubernetes knows it (spec.nodeName of its pods)", "node", c.node, "knownNodes", nodeNames(snap, 5))
	}
	if time.Since(c.started) > time.Minute {
		// The node's pods first: only a node without any looks at the rest.
		local, remote := 0, 0
		for _, p := range snap.PodsOn(c.node) {
			if !p.HostNetwork && !p.Finished {
				local++
			}
		}
		if local == 0 {
			for _, p := range snap.Pods {
				if !p.HostNetwork && !p.Finished && p.NodeName != "" && p.NodeName != c.node {
					remote++
				}
			}
		}
		c.report("no-local-pods", local == 0 && remote > 0, "no pod runs on this node after a minute while other nodes have pods: is --node-name right?", "node", c.node, "podsOnOtherNodes", remote)
	}
	if time.Since(c.bridgesAt) < 30*time.Second {
		return
	}
	c.bridgesAt = time.Now()
	off, bridges := bridgeFilterOff()
	c.report("bridge-nf-call-iptables", off != "", "pods on a bridge talk past the packet filter: "+off+"; load br_netfilter and set net.bridge.bridge-nf-call-iptables=1 and net.bridge.bridge-nf-call-ip6tables=1", "bridges", bridges)
}

// report logs a finding when it appears and when it clears.
func (c *misconfigurations) report(check string, bad bool, msg string, args ...any) {
	c.m.Misconfigured(check, bad)
	switch {
	case bad && !c.said[check]:
		c.log.Error("misconfiguration: "+msg, append([]any{"check", check}, args...)...)
	case !bad && c.said[check]:
		c.log.Info("misconfiguration resolved", "check", check)
	}
	c.said[check] = bad
}

func nodeNames(snap *policy.Snapshot, limit int) string {
	var names []string
	for n := range snap.Nodes {
		if len(names) == limit {
			names = append(names, "…")
			break
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// bridgeFilterOff says what is wrong when this namespace has bridges whose
// traffic skips netfilter ("" when none), and names the bridges.
func bridgeFilterOff() (string, string) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", ""
	}
	var bridges []string
	for _, l := range links {
		if l.Type() == "bridge" {
			bridges = append(bridges, l.Attrs().Name)
		}
	}
	if len(bridges) == 0 {
		return "", ""
	}
	var off []string
	for _, v := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
		b, err := os.ReadFile("/proc/sys/net/bridge/" + v)
		switch {
		case err != nil:
			off = append(off, fmt.Sprintf("net.bridge.%s is missing (br_netfilter not loaded)", v))
		case strings.TrimSpace(string(b)) != "1":
			off = append(off, fmt.Sprintf("net.bridge.%s=%s", v, strings.TrimSpace(string(b))))
		}
	}
	return strings.Join(off, ", "), strings.Join(bridges, ",")
}
