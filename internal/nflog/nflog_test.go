package nflog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	gonflog "github.com/florianl/go-nflog/v2"
	npa "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

const node = "n1"

func pod(ns, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}, HostIPs: []corev1.HostIP{{IP: "192.168.0.1"}}},
	}
}

func namespaces(names ...string) []*corev1.Namespace {
	var out []*corev1.Namespace
	for _, n := range names {
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"ns": n}}})
	}
	return out
}

// policies: y/deny-all isolates y's ingress; y/web-allow lets x/c in on
// 80/TCP; x/no-egress isolates x/b's egress and allows nothing.
func policies() []*networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(80)
	return []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "deny-all"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "web-allow"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "x"}},
						PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"pod": "c"}},
					}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}},
			}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "no-egress"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "b"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}},
	}
}

func view(at time.Time, pods ...*corev1.Pod) View {
	snap := policy.NewSnapshot(namespaces("x", "y"), pods, policies())
	return View{At: at, Eval: policy.Evaluator{Snapshot: snap, Node: node,
		PodRanges: []netip.Prefix{netip.MustParsePrefix("10.32.0.0/24")}}}
}

var (
	xb = pod("x", "b", "10.32.0.7", map[string]string{"pod": "b"})
	xc = pod("x", "c", "10.32.0.8", map[string]string{"pod": "c"})
	ya = pod("y", "a", "10.32.0.11", map[string]string{"pod": "a"})
)

func tcpPacket(src, dst string, sport, dport uint16, action ir.LogAction, dir ir.Direction) Packet {
	return Packet{Action: action, Direction: dir, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Protocol: policy.TCP, SrcPort: sport, DstPort: dport}
}

func TestMessages(t *testing.T) {
	t0 := time.Unix(1000, 0)
	v := view(t0, xb, xc, ya)
	views := []View{v}
	for _, tc := range []struct {
		name string
		p    Packet
		want string
	}{
		{"ingress drop, the issue's example",
			tcpPacket("10.32.0.7", "10.32.0.11", 56648, 80, ir.Dropped, ir.Ingress),
			"TCP connection from x/b 10.32.0.7:56648 to y/a 10.32.0.11:80 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows x/b on 80/TCP"},
		{"egress drop",
			tcpPacket("10.32.0.7", "10.32.0.8", 40000, 8080, ir.Dropped, ir.Egress),
			"TCP connection from x/b 10.32.0.7:40000 to x/c 10.32.0.8:8080 blocked: egress of x/b is isolated by no-egress; none allows x/c on 8080/TCP"},
		{"external source",
			tcpPacket("203.0.113.9", "10.32.0.11", 1234, 443, ir.Dropped, ir.Ingress),
			"TCP connection from external 203.0.113.9:1234 to y/a 10.32.0.11:443 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows external on 443/TCP"},
		{"unknown address",
			tcpPacket("10.32.0.99", "10.32.0.8", 1234, 80, ir.Unknown, ir.Egress),
			"TCP connection from unknown 10.32.0.99:1234 to x/c 10.32.0.8:80 blocked: 10.32.0.99 is in this node's pod range but no pod weft knows holds it (a pod not known yet, or an address its pod released), so its egress is denied"},
		{"audited ingress (--mode audit)",
			tcpPacket("10.32.0.7", "10.32.0.11", 5555, 80, ir.Audited, ir.Ingress),
			"TCP connection from x/b 10.32.0.7:5555 to y/a 10.32.0.11:80 would be blocked (audit): ingress of y/a is isolated by deny-all, web-allow; none allows x/b on 80/TCP"},
		{"audited egress",
			tcpPacket("10.32.0.7", "10.32.0.8", 40000, 8080, ir.Audited, ir.Egress),
			"TCP connection from x/b 10.32.0.7:40000 to x/c 10.32.0.8:8080 would be blocked (audit): egress of x/b is isolated by no-egress; none allows x/c on 8080/TCP"},
		{"accepted (--log-allowed)",
			tcpPacket("10.32.0.8", "10.32.0.11", 5000, 80, ir.Accepted, ir.Ingress),
			"TCP connection from x/c 10.32.0.8:5000 to y/a 10.32.0.11:80 allowed: ingress of y/a is isolated by deny-all, web-allow; web-allow ingress[0] allows x/c on 80/TCP"},
		{"UDP",
			Packet{Action: ir.Dropped, Direction: ir.Ingress, Src: netip.MustParseAddr("10.32.0.8"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.UDP, SrcPort: 5353, DstPort: 53},
			"UDP connection from x/c 10.32.0.8:5353 to y/a 10.32.0.11:53 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows x/c on 53/UDP"},
		{"SCTP like TCP",
			Packet{Action: ir.Dropped, Direction: ir.Ingress, Src: netip.MustParseAddr("10.32.0.8"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.SCTP, SrcPort: 5000, DstPort: 9000},
			"SCTP connection from x/c 10.32.0.8:5000 to y/a 10.32.0.11:9000 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows x/c on 9000/SCTP"},
		{"ICMP with its type",
			Packet{Action: ir.Dropped, Direction: ir.Ingress, Src: netip.MustParseAddr("10.32.0.8"), Dst: netip.MustParseAddr("10.32.0.11"), Protocol: policy.ICMP, ICMPType: 8},
			"ICMP echo-request from x/c 10.32.0.8 to y/a 10.32.0.11 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows x/c for ICMP echo-request"},
	} {
		ev := Explain(tc.p, views, &v)
		if got := ev.Message(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if ev.Changed {
			t.Errorf("%s: explained as changed", tc.name)
		}
	}
}

// A drop decided by a ClusterNetworkPolicy names its tier, policy and rule.
func TestMessageClusterPolicy(t *testing.T) {
	cnp := &npa.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-x"}, Spec: npa.ClusterNetworkPolicySpec{
		Tier: npa.AdminTier, Priority: 1,
		Subject: npa.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "y"}}},
		Ingress: []npa.ClusterNetworkPolicyIngressRule{{Action: npa.ClusterNetworkPolicyRuleActionDeny,
			From: []npa.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "x"}}}}}},
	}}
	v := view(time.Unix(1000, 0), xb, xc, ya)
	v.Eval.Snapshot.AddClusterPolicies(policy.ClusterPolicyFromAPI(cnp))
	// x/c is allowed by web-allow, but the Admin tier comes first.
	ev := Explain(tcpPacket("10.32.0.8", "10.32.0.11", 5000, 80, ir.Dropped, ir.Ingress), []View{v}, &v)
	want := "TCP connection from x/c 10.32.0.8:5000 to y/a 10.32.0.11:80 blocked: ingress of y/a: Admin tier clusternetworkpolicy deny-x ingress[0] denies x/c on 80/TCP"
	if got := ev.Message(); got != want || ev.Changed {
		t.Errorf("got %s (changed %v)\nwant %s", got, ev.Changed, want)
	}
}

func TestJSONKeys(t *testing.T) {
	var buf bytes.Buffer
	c := &counts{}
	h := &History{}
	h.Add(view(time.Unix(1000, 0), xb, xc, ya))
	l := &Logger{Out: slog.New(slog.NewJSONHandler(&buf, nil)), JSON: true, History: h, Counters: c}
	p := tcpPacket("10.32.0.7", "10.32.0.11", 56648, 80, ir.Dropped, ir.Ingress)
	p.At = time.Unix(1001, 0)
	l.Handle(context.Background(), p, p.At)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	want := map[string]any{
		"verdict": "blocked", "protocol": "TCP", "direction": "ingress",
		"srcIP": "10.32.0.7", "srcPort": 56648.0, "srcKind": "pod", "srcPod": "x/b",
		"dstIP": "10.32.0.11", "dstPort": 80.0, "dstKind": "pod", "dstPod": "y/a",
		"pod": "y/a", "policies": []any{"deny-all", "web-allow"},
		"reason": "ingress of y/a is isolated by deny-all, web-allow; none allows x/b on 80/TCP",
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || !equalJSON(gv, v) {
			t.Errorf("key %s = %v, want %v", k, gv, v)
		}
	}
	if !strings.HasPrefix(got["msg"].(string), "TCP connection from x/b 10.32.0.7:56648 to y/a 10.32.0.11:80 blocked: ") {
		t.Errorf("msg %q", got["msg"])
	}
	for k := range got {
		if strings.Contains(k, "_") {
			t.Errorf("key %q is not lowerCamelCase", k)
		}
	}
	if c.blocked["TCP/ingress/y"] != 1 {
		t.Errorf("blocked counts %v", c.blocked)
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

type counts struct {
	blocked, wouldBlock  map[string]int
	lost, summarised     int
	reading, readingSeen bool
}

func (c *counts) Blocked(proto, dir, ns string) {
	if c.blocked == nil {
		c.blocked = map[string]int{}
	}
	c.blocked[proto+"/"+dir+"/"+ns]++
}
func (c *counts) WouldBlock(proto, dir, ns string) {
	if c.wouldBlock == nil {
		c.wouldBlock = map[string]int{}
	}
	c.wouldBlock[proto+"/"+dir+"/"+ns]++
}
func (c *counts) Lost(n int)       { c.lost += n }
func (c *counts) Summarised(n int) { c.summarised += n }
func (c *counts) Reading(ok bool)  { c.reading, c.readingSeen = ok, true }

// A flood of identical drops: one full line, then one summary line when the
// window ends, and everything counted; another key is not held back.
func TestSummariseFlood(t *testing.T) {
	var buf bytes.Buffer
	c := &counts{}
	h := &History{}
	t0 := time.Unix(1000, 0)
	h.Add(view(t0, xb, xc, ya))
	l := &Logger{Out: slog.New(slog.NewTextHandler(&buf, nil)), History: h, Counters: c, Summariser: Summariser{Window: 10 * time.Second}}
	ctx := context.Background()
	for i := range 58 {
		p := tcpPacket("10.32.0.7", "10.32.0.11", uint16(40000+i), 80, ir.Dropped, ir.Ingress)
		p.At = t0.Add(time.Second + time.Duration(i)*100*time.Millisecond)
		l.Handle(ctx, p, p.At)
	}
	other := tcpPacket("10.32.0.8", "10.32.0.11", 41000, 443, ir.Dropped, ir.Ingress)
	other.At = t0.Add(2 * time.Second)
	l.Handle(ctx, other, other.At)
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("want 2 lines before the window ends, got %d:\n%s", n, buf.String())
	}
	for _, s := range l.Summariser.Flush(t0.Add(11 * time.Second)) {
		l.writeSummary(ctx, s)
	}
	out := buf.String()
	if !strings.Contains(out, "TCP connection from x/b 10.32.0.7 to y/a 10.32.0.11:80 blocked … and 57 more like it in the last 10 s") {
		t.Errorf("no summary line:\n%s", out)
	}
	if strings.Count(out, "more like it") != 1 {
		t.Errorf("want exactly one summary (x/c's single drop needs none):\n%s", out)
	}
	if c.summarised != 57 || c.blocked["TCP/ingress/y"] != 59 {
		t.Errorf("summarised %d, blocked %v; want 57 and 59", c.summarised, c.blocked)
	}
	// After the window the next one is written in full again.
	buf.Reset()
	p := tcpPacket("10.32.0.7", "10.32.0.11", 50000, 80, ir.Dropped, ir.Ingress)
	p.At = t0.Add(12 * time.Second)
	l.Handle(ctx, p, p.At)
	if !strings.Contains(buf.String(), "10.32.0.7:50000") {
		t.Errorf("after the window: %q", buf.String())
	}
}

func TestSummariserLimits(t *testing.T) {
	s := Summariser{Window: time.Second, MaxKeys: 2}
	now := time.Unix(0, 0)
	ev := func(port uint16) Event {
		return Event{Packet: Packet{Protocol: policy.TCP, DstPort: port}, Src: Endpoint{Pod: "x/b"}, Dst: Endpoint{Pod: "y/a"}}
	}
	for _, port := range []uint16{1, 2, 3, 3} {
		if write, _ := s.Seen(ev(port), now); !write {
			t.Errorf("port %d: folded although only %d keys may be tracked: never drop silently", port, s.MaxKeys)
		}
	}
	if write, _ := s.Seen(ev(1), now); write {
		t.Error("a repeat within the window was written")
	}
	// A repeat after its window ends returns the ended window's summary.
	write, ended := s.Seen(ev(1), now.Add(2*time.Second))
	if !write || ended == nil || ended.Count != 1 {
		t.Errorf("after the window: write %v, ended %+v", write, ended)
	}
}

// The address→pod lookup over time: a packet is explained by the view in
// force when it came; an address reused by a newer pod is the newer pod
// from the view that knows it; a pod gone since is "deleted pod".
func TestHistoryReuseAndDeletion(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := &History{Keep: time.Minute}
	h.Add(view(t0, xb, xc, ya))
	// x/c is deleted, and y/d (labels that web-allow does not name) gets its
	// address 10.32.0.8.
	yd := pod("y", "d", "10.32.0.8", map[string]string{"pod": "d"})
	h.Add(view(t0.Add(5*time.Second), xb, ya, yd))
	latest := h.Latest()
	l := func(p Packet) string {
		ev := Explain(p, h.Candidates(p.At, time.Second), latest)
		return ev.Message()
	}
	// Logged at t0+1s: the kernel held the first view; x/c held the address.
	old := tcpPacket("10.32.0.8", "10.32.0.11", 5000, 8080, ir.Dropped, ir.Ingress)
	old.At = t0.Add(time.Second)
	if got, want := l(old), "TCP connection from deleted pod x/c 10.32.0.8:5000 to y/a 10.32.0.11:8080 blocked"; !strings.HasPrefix(got, want) {
		t.Errorf("before reuse:\n got %s\nwant %s…", got, want)
	}
	// Logged at t0+6s: the address is y/d's.
	now := old
	now.At = t0.Add(6 * time.Second)
	if got, want := l(now), "TCP connection from y/d 10.32.0.8:5000 to y/a 10.32.0.11:8080 blocked: ingress of y/a is isolated by deny-all, web-allow; none allows y/d on 8080/TCP"; got != want {
		t.Errorf("after reuse:\n got %s\nwant %s", got, want)
	}
	// x/c on 80 was allowed by the first view but y/d on 80 is not: a drop
	// logged (by its time) just before the second view came is the second
	// view's doing, the one that agrees with the kernel.
	edge := tcpPacket("10.32.0.8", "10.32.0.11", 5001, 80, ir.Dropped, ir.Ingress)
	edge.At = t0.Add(5*time.Second - 100*time.Millisecond)
	ev := Explain(edge, h.Candidates(edge.At, time.Second), latest)
	if ev.Changed || ev.Src.Pod != "y/d" {
		t.Errorf("drop near the change explained by the wrong view: %s (changed %v)", ev.Message(), ev.Changed)
	}
	// A drop that no kept view explains says so.
	h2 := &History{}
	h2.Add(view(t0, xb, xc, ya))
	allowed := tcpPacket("10.32.0.8", "10.32.0.11", 5002, 80, ir.Dropped, ir.Ingress)
	allowed.At = t0.Add(time.Second)
	if ev := Explain(allowed, h2.Candidates(allowed.At, time.Second), h2.Latest()); !ev.Changed || !strings.Contains(ev.Reason, "changed since") {
		t.Errorf("unexplainable drop: %s", ev.Message())
	}
}

func TestHistoryKeepsRecentViews(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := &History{Keep: 10 * time.Second, Max: 3}
	for i := range 6 {
		h.Add(view(t0.Add(time.Duration(i)*time.Second), xb))
	}
	if n := len(h.views); n != 3 {
		t.Errorf("kept %d views, want at most Max=3", n)
	}
	h.Add(view(t0.Add(time.Minute), xb))
	if n := len(h.views); n != 2 {
		t.Errorf("kept %d views a minute later, want the newest and the one it replaced", n)
	}
	if got := h.Candidates(t0, time.Second)[0].At; !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("a packet older than every view is explained by the oldest kept; got the view of %v", got)
	}
}

// Views of large clusters are few: what they hold, by estimate, stays
// within MaxBytes, but the newest two are always kept; a view derived from
// the one before costs little beside it.
func TestHistoryBoundsBytes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := &History{MaxBytes: 5 * 150 * 2} // five views of 2 pods built anew
	for i := range 8 {
		h.Add(view(t0.Add(time.Duration(i)*time.Second), xb, xc))
	}
	if n := len(h.views); n != 5 {
		t.Errorf("kept %d views of 2 pods each, want 5", n)
	}
	h = &History{MaxBytes: 1}
	for i := range 3 {
		h.Add(view(t0.Add(time.Duration(i)*time.Second), xb, xc))
	}
	if n := len(h.views); n != 2 {
		t.Errorf("kept %d views, want the newest two whatever they hold", n)
	}
	if got := h.Latest().At; !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("latest view is of %v, want the newest", got)
	}
	// Views derived one from another share what did not change.
	many := []*corev1.Pod{xc}
	for i := range 199 {
		many = append(many, pod("y", fmt.Sprint("p", i), fmt.Sprintf("10.32.1.%d", i), map[string]string{"pod": "p"}))
	}
	h = &History{MaxBytes: 3 * 150 * len(many)} // three views built anew, within Keep
	for i := range 4 {
		h.Add(view(t0.Add(time.Duration(i)*time.Second), many...))
	}
	if n := len(h.views); n != 3 {
		t.Errorf("kept %d views built anew, want 3", n)
	}
	v := view(t0.Add(time.Minute), many...)
	h.Add(v)
	snap := v.Eval.Snapshot
	for i := range 20 {
		moved := policy.PodFromAPI(xc)
		moved.Labels = map[string]string{"pod": fmt.Sprint("c", i)}
		snap = snap.With(policy.Changes{Pods: map[string]*policy.Pod{"x/c": moved}})
		d := v
		d.At, d.Eval.Snapshot = t0.Add(time.Minute+time.Duration(i+1)*100*time.Millisecond), snap
		h.Add(d)
	}
	if n := len(h.views); n != 21 {
		t.Errorf("kept %d of 21 views, 20 of them derived, want all", n)
	}
}

func TestParsePacket(t *testing.T) {
	v4 := func(proto byte, l4 []byte) []byte {
		b := make([]byte, 20)
		b[0] = 0x45
		b[9] = proto
		copy(b[12:], []byte{10, 32, 0, 7})
		copy(b[16:], []byte{10, 32, 0, 11})
		return append(b, l4...)
	}
	ports := func(s, d uint16) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], s)
		binary.BigEndian.PutUint16(b[2:], d)
		return b
	}
	p, err := ParsePacket(v4(6, ports(56648, 80)))
	if err != nil || p.Src.String() != "10.32.0.7" || p.Dst.String() != "10.32.0.11" || p.Protocol != policy.TCP || p.SrcPort != 56648 || p.DstPort != 80 {
		t.Errorf("IPv4 TCP: %+v %v", p, err)
	}
	p, err = ParsePacket(v4(1, []byte{8, 0, 0, 0}))
	if err != nil || p.Protocol != policy.ICMP || p.ICMPType != 8 {
		t.Errorf("IPv4 ICMP: %+v %v", p, err)
	}
	// IPv6 with a hop-by-hop header before UDP.
	b := make([]byte, 40)
	b[0] = 0x60
	b[6] = 0 // hop-by-hop
	copy(b[8:], netip.MustParseAddr("fd00::7").AsSlice())
	copy(b[24:], netip.MustParseAddr("fd00::b").AsSlice())
	b = append(b, 17, 0, 1, 4, 0, 0, 0, 0) // next UDP, length 8
	b = append(b, ports(5353, 53)...)
	p, err = ParsePacket(b)
	if err != nil || p.Src.String() != "fd00::7" || p.Protocol != policy.UDP || p.DstPort != 53 {
		t.Errorf("IPv6 UDP after hop-by-hop: %+v %v", p, err)
	}
	for _, bad := range [][]byte{nil, {0x45, 0}, v4(6, []byte{1}), {0x20}} {
		if _, err := ParsePacket(bad); err == nil {
			t.Errorf("ParsePacket(%x) accepted", bad)
		}
	}
}

func TestLogPrefixRoundTrip(t *testing.T) {
	for _, a := range []ir.LogAction{ir.Dropped, ir.Unknown, ir.Accepted, ir.Audited} {
		for _, d := range []ir.Direction{ir.Ingress, ir.Egress} {
			ga, gd, ok := ir.ParseLogPrefix(ir.LogPrefix(a, d))
			if !ok || ga != a || gd != d {
				t.Errorf("%v %v: got %v %v %v", a, d, ga, gd, ok)
			}
		}
	}
	for _, bad := range []string{"", "weft drop", "weft drop sideways", "other drop ingress", "weft maybe ingress"} {
		if _, _, ok := ir.ParseLogPrefix(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Messages the kernel could not queue show as gaps in the sequence numbers;
// packets weft's queue has no room for are lost too; both are counted, and
// the reader never waits for room.
func TestReaderCountsLosses(t *testing.T) {
	c := &counts{}
	var buf bytes.Buffer
	r := &Reader{Group: 86, Log: slog.New(slog.NewTextHandler(&buf, nil)), Counters: c}
	out := make(chan Packet, 1)
	payload := make([]byte, 40)
	payload[0], payload[9] = 0x45, 17
	prefix := ir.LogPrefix(ir.Dropped, ir.Ingress)
	msg := func(seq uint32) gonflog.Attribute {
		return gonflog.Attribute{Seq: &seq, Prefix: &prefix, Payload: &payload}
	}
	r.receive(msg(1), out) // queued
	r.receive(msg(5), out) // 2, 3, 4 never came; no room for 5
	if c.lost != 4 {
		t.Errorf("lost %d, want 3 missing + 1 without room", c.lost)
	}
	r.logLosses(true)
	if !strings.Contains(buf.String(), "lost=4") {
		t.Errorf("losses not said: %s", buf.String())
	}
}

// BenchmarkLoggerLines is weft's own cost per blocked connection written in
// full (explain, summariser, format, write to a discarding handler): every
// packet has another source port and destination port, so none folds.
func BenchmarkLoggerLines(b *testing.B) {
	for _, format := range []string{"text", "json"} {
		b.Run(format, func(b *testing.B) {
			h := &History{}
			h.Add(view(time.Unix(1000, 0), xb, xc, ya))
			var handler slog.Handler = slog.NewTextHandler(io.Discard, nil)
			if format == "json" {
				handler = slog.NewJSONHandler(io.Discard, nil)
			}
			l := &Logger{Out: slog.New(handler), JSON: format == "json", History: h, Counters: &counts{},
				Summariser: Summariser{MaxKeys: 1}}
			ctx := context.Background()
			now := time.Unix(1001, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p := tcpPacket("10.32.0.7", "10.32.0.11", uint16(i), uint16(i>>16), ir.Dropped, ir.Ingress)
				p.At = now
				l.Handle(ctx, p, now)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// An audited drop is counted as would-block, not as blocked, and its JSON
// verdict is "wouldBlock".
func TestAuditedCountedApart(t *testing.T) {
	var buf bytes.Buffer
	c := &counts{}
	h := &History{}
	h.Add(view(time.Unix(1000, 0), xb, xc, ya))
	l := &Logger{Out: slog.New(slog.NewJSONHandler(&buf, nil)), JSON: true, History: h, Counters: c}
	p := tcpPacket("10.32.0.7", "10.32.0.11", 5555, 80, ir.Audited, ir.Ingress)
	p.At = time.Unix(1001, 0)
	l.Handle(context.Background(), p, p.At)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if got["verdict"] != "wouldBlock" || !strings.Contains(got["msg"].(string), " would be blocked (audit): ingress of y/a") {
		t.Errorf("line %s", buf.String())
	}
	if len(c.blocked) != 0 || c.wouldBlock["TCP/ingress/y"] != 1 {
		t.Errorf("blocked %v, would block %v; want one would-block of TCP ingress into y", c.blocked, c.wouldBlock)
	}
}

// A negative window folds nothing.
func TestSummariserNoWindow(t *testing.T) {
	s := Summariser{Window: -1}
	e := Explain(tcpPacket("10.32.0.7", "10.32.0.11", 1, 80, ir.Audited, ir.Ingress), []View{view(time.Unix(1000, 0), xb, xc, ya)}, nil)
	for i := range 3 {
		if write, ended := s.Seen(e, time.Unix(1000+int64(i), 0)); !write || ended != nil {
			t.Fatalf("event %d: write %v, summary %v; want every event written", i, write, ended)
		}
	}
	if got := s.Flush(time.Unix(2000, 0)); len(got) != 0 || s.Tracked() != 0 {
		t.Fatalf("summaries %v, %d keys tracked", got, s.Tracked())
	}
}
