package nflog

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Endpoint is one end of a logged connection as weft names it.
type Endpoint struct {
	IP   netip.Addr
	Port uint16 // 0 for protocols without ports
	// Kind is "pod", "node", "external" (no pod, no node: outside the
	// cluster's pods) or "unknown" (in this node's pod ranges, held by no
	// pod weft knows).
	Kind string
	Pod  string // "namespace/name" when Kind is "pod"
	// Deleted: the pod held the address when the packet came and is gone now.
	Deleted bool
}

// Name is how the endpoint is named in a sentence: "x/b", "deleted pod x/b",
// "node", "external", "unknown".
func (e Endpoint) Name() string {
	switch {
	case e.Kind == "pod" && e.Deleted:
		return "deleted pod " + e.Pod
	case e.Kind == "pod":
		return e.Pod
	}
	return e.Kind
}

func (e Endpoint) addr(withPort bool) string {
	if withPort && e.Port != 0 {
		return netip.AddrPortFrom(e.IP, e.Port).String()
	}
	return e.IP.String()
}

// Event is a logged packet and weft's explanation of it.
type Event struct {
	Packet
	Src, Dst Endpoint
	// Verdict is "blocked", "allowed" (--log-allowed) or "would be blocked
	// (audit)" (an audited pod: enforcing would have blocked it).
	Verdict string
	// Pod is the pod whose policies decided (the destination for ingress,
	// the source for egress); "" for unknown-address drops.
	Pod string
	// Policies are the policies that isolate Pod in the direction, as
	// "name" when in Pod's namespace, else "namespace/name".
	Policies []string
	// AllowedBy are the rules that allowed it ("web-allow ingress[0]").
	AllowedBy []string
	// Reason is the answer: the part of the sentence after the colon.
	Reason string
	// Changed: no view weft kept agrees with what the kernel did (the
	// rules changed in between); the explanation is by the latest view.
	Changed bool
}

// Namespace is the destination pod's namespace, or "" when it is no pod.
func (e *Event) Namespace() string {
	if e.Dst.Kind != "pod" {
		return ""
	}
	ns, _, _ := strings.Cut(e.Dst.Pod, "/")
	return ns
}

// Explain answers why the kernel did what p says, by the views that may have
// been in force when it came (newest first) and naming pods deleted since
// by latest. views must not be empty.
func Explain(p Packet, views []View, latest *View) Event {
	flow := policy.Flow{Src: p.Src, Dst: p.Dst, Protocol: p.Protocol}
	if p.Protocol.HasPorts() {
		flow.Port = p.DstPort
	}
	var d policy.Decision
	var used *View
	for i := range views {
		d = views[i].Eval.Decide(flow)
		if agrees(p, check(&d, p.Direction)) {
			used = &views[i]
			break
		}
	}
	ev := Event{Packet: p, Verdict: verdictOf(p.Action)}
	if used == nil {
		used = &views[0]
		d = used.Eval.Decide(flow)
		ev.Changed = true
	}
	c := check(&d, p.Direction)
	ev.Src = endpoint(used, latest, p.Src, d.Src, d.Egress.Unknown, p.SrcPort)
	ev.Dst = endpoint(used, latest, p.Dst, d.Dst, d.Ingress.Unknown, p.DstPort)
	if !p.Protocol.HasPorts() {
		ev.Src.Port, ev.Dst.Port = 0, 0
	}
	local, peer := ev.Dst, ev.Src
	if p.Direction == ir.Egress {
		local, peer = ev.Src, ev.Dst
	}
	if c.Pod != nil && !c.Unknown {
		ev.Pod = c.Pod.Key()
		for _, ref := range c.IsolatedBy {
			ev.Policies = append(ev.Policies, policyName(ref, c.Pod.Namespace))
		}
		for _, rr := range c.AllowedBy {
			ev.AllowedBy = append(ev.AllowedBy, fmt.Sprintf("%s %s[%d]", policyName(rr.Policy, c.Pod.Namespace), rr.Direction, rr.Index))
		}
	}
	dir := p.Direction.String()
	switch {
	case p.Action == ir.Unknown || (ev.Changed && c.Unknown):
		ev.Reason = fmt.Sprintf("%s is in this node's pod range but no pod weft knows holds it (a pod not known yet, or an address its pod released), so its %s is denied", local.IP, dir)
	case ev.Changed && p.Action == ir.Accepted:
		ev.Reason = fmt.Sprintf("%s of %s was allowed by the rules in force then; weft's view has changed since", dir, local.Name())
	case ev.Changed:
		ev.Reason = fmt.Sprintf("%s of %s was isolated by the rules in force then; weft's view has changed since and would now allow it", dir, local.Name())
	case c.ClusterRule != nil && (c.Tier == policy.TierAdmin || c.Tier == policy.TierBaseline):
		r := c.ClusterRule
		verb := "denies"
		if c.Action == policy.Accept {
			verb = "accepts"
		}
		ev.Policies = []string{r.Policy}
		ev.Reason = fmt.Sprintf("%s of %s: %s tier clusternetworkpolicy %s %s[%d] %s %s %s", dir, local.Name(), r.Tier, r.Policy, r.Direction, r.Index, verb, peer.Name(), service(p))
	case p.Action == ir.Accepted:
		ev.Reason = fmt.Sprintf("%s of %s is isolated by %s; %s allows %s %s", dir, local.Name(), strings.Join(ev.Policies, ", "), strings.Join(ev.AllowedBy, ", "), peer.Name(), service(p))
	default:
		ev.Reason = fmt.Sprintf("%s of %s is isolated by %s; none allows %s %s", dir, local.Name(), strings.Join(ev.Policies, ", "), peer.Name(), service(p))
	}
	return ev
}

// verdictOf is the word of the sentence for a log action.
func verdictOf(a ir.LogAction) string {
	switch a {
	case ir.Accepted:
		return "allowed"
	case ir.Audited:
		return "would be blocked (audit)"
	}
	return "blocked"
}

// agrees reports whether c, the evaluator's check of the logged direction,
// is what the kernel did. (An audited drop is a drop the policy decided;
// whether the pod was audited then is the kernel's word, not the view's.)
func agrees(p Packet, c policy.Check) bool {
	switch p.Action {
	case ir.Unknown:
		return c.Unknown
	case ir.Accepted:
		return c.Allowed && (len(c.AllowedBy) > 0 || c.Action == policy.Accept)
	}
	return !c.Allowed && !c.Unknown
}

func check(d *policy.Decision, dir ir.Direction) policy.Check {
	if dir == ir.Egress {
		return d.Egress
	}
	return d.Ingress
}

func endpoint(then, latest *View, ip netip.Addr, pod *policy.Pod, unknown bool, port uint16) Endpoint {
	e := Endpoint{IP: ip, Port: port}
	switch {
	case pod != nil && !unknown:
		e.Kind, e.Pod = "pod", pod.Key()
		if latest != nil && latest.Eval.Snapshot.Pod(pod.Namespace, pod.Name) == nil {
			e.Deleted = true
		}
	case unknown:
		e.Kind = "unknown"
	case then.Eval.Snapshot.IsAnyNodeAddress(ip) || slices.Contains(then.Eval.NodeIPs, ip):
		e.Kind = "node"
	default:
		e.Kind = "external"
	}
	return e
}

func policyName(ref policy.PolicyRef, ns string) string {
	if ref.Namespace == ns {
		return ref.Name
	}
	return ref.String()
}

// service is "on 80/TCP", "for ICMP echo-request", "for proto-47".
func service(p Packet) string {
	if p.Protocol.HasPorts() {
		return "on " + strconv.Itoa(int(p.DstPort)) + "/" + p.Protocol.String()
	}
	return "for " + protoWords(p)
}

// protoWords is "TCP", "ICMP echo-request", "ICMPv6 type 200".
func protoWords(p Packet) string {
	switch p.Protocol {
	case policy.ICMP, policy.ICMPv6:
		return p.Protocol.String() + " " + icmpTypeName(p.Protocol, p.ICMPType)
	}
	return p.Protocol.String()
}

func icmpTypeName(proto policy.Protocol, t uint8) string {
	names := map[uint8]string{0: "echo-reply", 3: "destination-unreachable", 5: "redirect", 8: "echo-request", 11: "time-exceeded", 13: "timestamp-request"}
	if proto == policy.ICMPv6 {
		names = map[uint8]string{1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 128: "echo-request", 129: "echo-reply"}
	}
	if n, ok := names[t]; ok {
		return n
	}
	return "type " + strconv.Itoa(int(t))
}

// Message is the line for people, in weave-npc's words plus the answer:
// "TCP connection from x/b 10.32.0.7:56648 to y/a 10.32.0.11:80 blocked:
// ingress of y/a is isolated by deny-all, web-allow; none allows x/b on
// 80/TCP" ("… would be blocked (audit): …" for an audited pod).
func (e *Event) Message() string {
	return e.head(true) + " " + e.Verdict + ": " + e.Reason
}

// head is "TCP connection from x/b 10.32.0.7:56648 to y/a 10.32.0.11:80"
// ("ICMP echo-request from … to …" for ICMP); without the source port when
// srcPort is false.
func (e *Event) head(srcPort bool) string {
	what := protoWords(e.Packet)
	if e.Protocol.HasPorts() {
		what += " connection"
	}
	return fmt.Sprintf("%s from %s %s to %s %s", what, e.Src.Name(), e.Src.addr(srcPort), e.Dst.Name(), e.Dst.addr(true))
}

// Attrs are the structured fields of the line (--log-format json), in
// Kubernetes' structured-logging style.
func (e *Event) Attrs() []slog.Attr {
	verdict := e.Verdict
	if e.Action == ir.Audited {
		verdict = "wouldBlock"
	}
	a := []slog.Attr{
		slog.String("verdict", verdict),
		slog.String("protocol", e.Protocol.String()),
		slog.String("direction", e.Direction.String()),
		slog.String("srcIP", e.Src.IP.String()),
	}
	if e.Src.Port != 0 {
		a = append(a, slog.Int("srcPort", int(e.Src.Port)))
	}
	a = append(a, endpointAttrs("src", e.Src)...)
	a = append(a, slog.String("dstIP", e.Dst.IP.String()))
	if e.Dst.Port != 0 {
		a = append(a, slog.Int("dstPort", int(e.Dst.Port)))
	}
	a = append(a, endpointAttrs("dst", e.Dst)...)
	if e.Protocol == policy.ICMP || e.Protocol == policy.ICMPv6 {
		a = append(a, slog.Int("icmpType", int(e.ICMPType)), slog.Int("icmpCode", int(e.ICMPCode)))
	}
	if e.Pod != "" {
		a = append(a, slog.String("pod", e.Pod))
	}
	a = append(a, slog.Any("policies", nonNil(e.Policies)))
	if len(e.AllowedBy) > 0 {
		a = append(a, slog.Any("allowedBy", e.AllowedBy))
	}
	a = append(a, slog.String("reason", e.Reason))
	if e.Action == ir.Unknown {
		a = append(a, slog.Bool("unknownAddress", true))
	}
	if e.Changed {
		a = append(a, slog.Bool("viewChanged", true))
	}
	return a
}

func endpointAttrs(prefix string, e Endpoint) []slog.Attr {
	a := []slog.Attr{slog.String(prefix+"Kind", e.Kind)}
	if e.Pod != "" {
		a = append(a, slog.String(prefix+"Pod", e.Pod))
	}
	if e.Deleted {
		a = append(a, slog.Bool(prefix+"PodDeleted", true))
	}
	return a
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SummaryMessage is the line that stands for count more events like e in
// the last window: "TCP connection from x/b 10.32.0.7 to y/a 10.32.0.11:80
// blocked … and 57 more like it in the last 10s".
func (e *Event) SummaryMessage(count int, window time.Duration) string {
	return fmt.Sprintf("%s %s … and %d more like it in the last %s", e.head(false), e.Verdict, count, seconds(window))
}

// seconds is "10 s", "1.5 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}
