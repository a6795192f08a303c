package nftables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftnet/weft/internal/compile"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/policy"
)

// podNet is a "pod": a network namespace held by a sleeping process, joined to
// the test's namespace (the "node", which routes between pods) by a veth pair.
type podNet struct {
	name     string
	pid      int
	v4, v6   netip.Addr // the pod's addresses
	gw4, gw6 netip.Addr // the node's addresses on the pod's link
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// startPod makes pod i, with 10.32.i.2/24 and fd00:32:i::2/64.
func startPod(t *testing.T, i int, name string) *podNet {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pod namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	own, _ := os.Readlink("/proc/self/ns/net")
	for deadline := time.Now().Add(10 * time.Second); ; {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if ns != "" && ns != own {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: unshare did not enter a new network namespace", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p := &podNet{
		name: name, pid: pid,
		v4: netip.MustParseAddr(fmt.Sprintf("10.32.%d.2", i)), gw4: netip.MustParseAddr(fmt.Sprintf("10.32.%d.1", i)),
		v6: netip.MustParseAddr(fmt.Sprintf("fd00:32:%d::2", i)), gw6: netip.MustParseAddr(fmt.Sprintf("fd00:32:%d::1", i)),
	}
	host := fmt.Sprintf("wp%d", i)
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(pid))
	run(t, "ip", "addr", "add", p.gw4.String()+"/24", "dev", host)
	run(t, "ip", "-6", "addr", "add", p.gw6.String()+"/64", "dev", host, "nodad")
	run(t, "ip", "link", "set", host, "up")
	script := fmt.Sprintf("set -e; ip link set lo up; ip link set eth0 up; ip addr add %s/24 dev eth0; ip -6 addr add %s/64 dev eth0 nodad; ip route add default via %s; ip -6 route add default via %s",
		p.v4, p.v6, p.gw4, p.gw6)
	run(t, "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid), "sh", "-c", script)
	return p
}

// inNetns runs fn on an OS thread moved into the network namespace of pid.
// Sockets fn creates stay in that namespace. The thread is never moved back:
// it stays locked and ends with its goroutine.
func inNetns(pid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// echoServe answers every connection on ln with what it reads.
func echoServe(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// listenIn listens on TCP port in pid's namespace (pid 0: the node's).
func listenIn(t *testing.T, pid int, port int) {
	t.Helper()
	listen := func() error {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			return err
		}
		echoServe(t, ln)
		return nil
	}
	var err error
	if pid == 0 {
		err = listen()
	} else {
		err = inNetns(pid, listen)
	}
	if err != nil {
		t.Fatalf("listen on port %d: %v", port, err)
	}
}

// blockedAfter is how long a connection attempt waits for an answer before it
// counts as dropped. A packet that passes is answered in microseconds here.
const blockedAfter = 1500 * time.Millisecond

// connects reports whether a TCP connection from pid's namespace to dst
// completes and carries data both ways; false when the SYN goes unanswered.
func connects(pid int, dst netip.AddrPort) (bool, error) {
	var ok bool
	err := inNetns(pid, func() error {
		c, err := net.DialTimeout("tcp", dst.String(), blockedAfter)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err // refused or unreachable: not what a drop looks like
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(blockedAfter))
		if _, err := c.Write([]byte("weft")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return fmt.Errorf("connected but no echo (replies dropped?): %w", err)
		}
		ok = true
		return nil
	})
	return ok, err
}

func packetTestSnapshot(pods []*podNet, labels map[string]string) *policy.Snapshot {
	var apiPods []*corev1.Pod
	var hostIPs []corev1.HostIP // the node's addresses: every pod link's gateway
	for _, p := range pods {
		hostIPs = append(hostIPs, corev1.HostIP{IP: p.gw4.String()}, corev1.HostIP{IP: p.gw6.String()})
	}
	for _, p := range pods {
		apiPods = append(apiPods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: p.name, Labels: map[string]string{"app": labels[p.name]}},
			Spec:       corev1.PodSpec{NodeName: "node-1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, HostIPs: hostIPs, PodIPs: []corev1.PodIP{{IP: p.v4.String()}, {IP: p.v6.String()}}},
		})
	}
	tcp := corev1.ProtocolTCP
	p80 := intstr.FromInt32(80)
	pols := []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "a-from-b"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}},
			}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "b-egress"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
			}},
		}},
	}
	ns := []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "y"}}}
	return policy.NewSnapshot(ns, apiPods, pols)
}

// TestKernelPackets sends real TCP connections between pod namespaces (through
// the node's forward hook) and to the node, over IPv4 and IPv6, and checks each
// outcome against the policy evaluator: before and after an incremental
// (membership-only) sync.
func TestKernelPackets(t *testing.T) {
	if !netnstest.Enter(t, "nft", "nsenter") {
		return
	}
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Fatalf("enable forwarding in the test namespace: %v", err)
		}
	}
	pods := []*podNet{startPod(t, 1, "a"), startPod(t, 2, "b"), startPod(t, 3, "c")}
	for _, port := range []int{80, 81} {
		listenIn(t, 0, port)
		for _, p := range pods {
			listenIn(t, p.pid, port)
		}
	}
	b := newKernelBackend(t)
	ctx := context.Background()

	check := func(phase string, s *policy.Snapshot) {
		t.Helper()
		if err := b.Apply(ctx, compile.Compile(s, "node-1")); err != nil {
			t.Fatalf("%s: Apply: %v", phase, err)
		}
		ev := &policy.Evaluator{Snapshot: s, Node: "node-1"}
		type probe struct {
			src     *podNet
			dst     netip.AddrPort
			label   string
			allowed bool
		}
		var probes []*probe
		for _, src := range pods {
			for _, six := range []bool{false, true} {
				var dsts []netip.Addr
				var labels []string
				for _, dst := range pods {
					if dst != src {
						dsts = append(dsts, map[bool]netip.Addr{false: dst.v4, true: dst.v6}[six])
						labels = append(labels, dst.name)
					}
				}
				dsts = append(dsts, map[bool]netip.Addr{false: src.gw4, true: src.gw6}[six])
				labels = append(labels, "node")
				for i, d := range dsts {
					for _, port := range []uint16{80, 81} {
						dec := ev.Decide(policy.Flow{Src: map[bool]netip.Addr{false: src.v4, true: src.v6}[six], Dst: d, Protocol: policy.TCP, Port: port})
						probes = append(probes, &probe{src: src, dst: netip.AddrPortFrom(d, port), label: labels[i], allowed: dec.Allowed})
					}
				}
			}
		}
		var wg sync.WaitGroup
		results := make([]string, len(probes))
		var allowed, blocked int
		for i, p := range probes {
			if p.allowed {
				allowed++
			} else {
				blocked++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := connects(p.src.pid, p.dst)
				switch {
				case err != nil:
					results[i] = fmt.Sprintf("%s -> %s (%s): %v", p.src.name, p.dst, p.label, err)
				case got != p.allowed:
					results[i] = fmt.Sprintf("%s -> %s (%s): kernel allowed=%v, evaluator allowed=%v", p.src.name, p.dst, p.label, got, p.allowed)
				}
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r != "" {
				t.Errorf("%s: %s", phase, r)
			}
		}
		if allowed == 0 || blocked == 0 {
			t.Fatalf("%s: %d allowed and %d blocked probes: the scenario tests nothing", phase, allowed, blocked)
		}
		t.Logf("%s: %d probes (%d allowed, %d blocked) agree with the evaluator; sync %+v", phase, len(probes), allowed, blocked, b.LastSync())
	}

	labels := map[string]string{"a": "a", "b": "b", "c": "c"}
	check("initial", packetTestSnapshot(pods, labels))
	labels["c"] = "b" // c joins b's egress isolation and a's allowed peers
	check("c relabelled app=b", packetTestSnapshot(pods, labels))
	if st := b.LastSync(); !st.ElementsOnly() {
		t.Errorf("relabelling c: want element changes only, got %+v", st)
	}
}
