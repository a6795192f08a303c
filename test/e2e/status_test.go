package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/status"
)

// weftStatus runs `weft status args...` inside node i and returns its
// output (stdout, then stderr) and exit status.
func (c *cluster) weftStatus(t testing.TB, i int, args ...string) (string, int) {
	t.Helper()
	return c.weftOnNode(t, i, append([]string{"status"}, args...)...)
}

// weftOnNode is weftCLI on node i, with stdout and stderr together.
func (c *cluster) weftOnNode(t testing.TB, i int, args ...string) (string, int) {
	t.Helper()
	code, out, errOut := c.weftCLIOn(t, i, args...)
	return out + errOut, code
}

// storyStatusVerify: weft status shows what node-1 enforces; --verify finds
// a set element, a rule and weft's hook changed behind its back; the
// daemon's periodic check repairs exactly those and counts them.
func storyStatusVerify(t *testing.T, c *cluster) {
	c.create(t, netpol("y", "deny-all", networkingv1.NetworkPolicySpec{PodSelector: *sel(), PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}))
	c.create(t, netpol("y", "web-allow", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"),
		Ingress: fromPeers(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "x")})}))
	ya := c.pods["y/a"]
	c.waitBlocked(t, c.pods["z/a"], ya, 80)

	// A long interval: nothing repairs behind the test's back while
	// --verify looks.
	c.restartWeftOpts(t, 0, lab.WeftOptions{Args: []string{"--verify-interval", "1h"}})
	out, code := c.weftStatus(t, 0)
	if code != 0 {
		t.Fatalf("weft status: exit %d:\n%s", code, out)
	}
	for _, want := range []string{"ready", c.backend + " backend", "y/a", "y/deny-all,y/web-allow"} {
		if !strings.Contains(out, want) {
			t.Errorf("weft status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("weft status:\n%s", out)
	js, code := c.weftStatus(t, 0, "--output", "json", "--verify")
	var rep status.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil || code != 0 {
		t.Fatalf("weft status --output json --verify: exit %d, %v:\n%s", code, err, js)
	}
	group := ""
	for _, p := range rep.Pods {
		if p.Pod == "y/a" && p.Ingress != nil {
			group = p.Ingress.Group
		}
	}
	if group == "" {
		t.Fatalf("y/a has no ingress group in %s", js)
	}

	node := c.lab.Nodes[0]
	addr := ya.IP(lab.IPv4).String()
	var tamper [][]string
	var want []string
	if c.backend == "nftables" {
		list, err := node.Exec(context.Background(), "nft", "-a", "list", "chain", "inet", "weft", "forward-ingress")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`vmap @ingress-ip4 # handle (\d+)`).FindStringSubmatch(list)
		if m == nil {
			t.Fatalf("no dispatch rule in forward-ingress:\n%s", list)
		}
		tamper = [][]string{
			{"nft", "delete", "element", "inet", "weft", "ingress-ip4", "{ " + addr + " }"},
			{"nft", "insert", "rule", "inet", "weft", group, "accept"},
			{"nft", "delete", "rule", "inet", "weft", "forward-ingress", "handle", m[1]},
		}
		want = []string{"missing map-element ingress-ip4: " + addr + " : jump " + group, "extra rule " + group + ": rule 1: accept",
			"missing rule forward-ingress: rule ", "ip daddr vmap @ingress-ip4"}
	} else {
		ipt := "iptables-nft"
		if strings.Contains(c.wefts[0].Log(), "mode=legacy") {
			ipt = "iptables-legacy"
		}
		tamper = [][]string{
			{"ipset", "del", group + "-v4", addr},
			{ipt, "-w", "-I", group, "1", "-j", "RETURN"},
			{ipt, "-w", "-I", "FORWARD", "1", "-j", "ACCEPT"},
		}
		want = []string{"missing element " + group + "-v4: " + addr, "extra rule IPv4 " + group + ": rule 1: -A " + group + " -j RETURN",
			"displaced hook IPv4 FORWARD: -A FORWARD -j ACCEPT"}
		defer func() { _, _ = node.Exec(context.Background(), ipt, "-w", "-D", "FORWARD", "-j", "ACCEPT") }()
	}
	// All three changes in one shell, a few milliseconds: the daemon's
	// periodic checks rarely fall in between (and are summed below if so).
	run := func() {
		var script []string
		for _, cmd := range tamper {
			quoted := make([]string, len(cmd))
			for i, a := range cmd {
				quoted[i] = "'" + a + "'"
			}
			script = append(script, strings.Join(quoted, " "))
		}
		if out, err := node.Exec(context.Background(), "sh", "-ec", strings.Join(script, "; ")); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	run()
	out, code = c.weftStatus(t, 0, "--verify")
	if code != 3 {
		t.Errorf("weft status --verify after tampering: exit %d, want 3", code)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("weft status --verify does not name %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "\n  "); n != 3 {
		t.Errorf("weft status --verify names %d differences, want 3:\n%s", n, out)
	}
	t.Logf("weft status --verify:\n%s", out)

	// weft explain on the node shows the kernel's view beside policy's.
	out, code = c.weftOnNode(t, 0, "explain", "--kubeconfig", c.lab.Kubeconfig(), "--from", "x/a", "--to", "y/a", "--port", "80")
	if code != 0 {
		t.Errorf("weft explain x/a -> y/a:80: exit %d, want 0 (policy allows):\n%s", code, out)
	}
	for _, w := range []string{"On node node-1, the kernel holds", "MISMATCH for y/a " + addr + ": weft applied ingress " + group + " but the kernel dispatches it to"} {
		if !strings.Contains(out, w) {
			t.Errorf("weft explain on the node lacks %q:\n%s", w, out)
		}
	}
	t.Logf("weft explain on the node:\n%s", out)

	// The restart adopts and replaces what it finds; then the same
	// tampering again, and the daemon's own check repairs it.
	c.restartWeftOpts(t, 0, lab.WeftOptions{Args: []string{"--verify-interval", "1s"}})
	defer c.restartWeftOpts(t, 0, lab.WeftOptions{})
	if out, code := c.weftStatus(t, 0, "--verify"); code != 0 {
		t.Fatalf("after the restart: exit %d:\n%s", code, out)
	}
	marks := c.logMarks()
	run()
	deadline := time.Now().Add(waitFor)
	// The periodic check repairs what it finds; should it run between two
	// of the changes, the rest is repaired by the next one. (iptables: the
	// hook check, every 10 s and on syncs, may put the jump back first.)
	differences := regexp.MustCompile(`differences=(\d+)`)
	repairedAll := func(lines []string) bool {
		for _, w := range want {
			seen := false
			for _, l := range lines {
				seen = seen || strings.Contains(l, w) ||
					strings.HasPrefix(w, "displaced hook") && strings.Contains(l, "weft's jump was not the first rule of FORWARD")
			}
			if !seen {
				return false
			}
		}
		return true
	}
	var repaired []string
	found := 0
	for time.Now().Before(deadline) {
		repaired, found = nil, 0
		for _, l := range c.logSince(0, marks) {
			if m := differences.FindStringSubmatch(l); m != nil && strings.Contains(l, "changed behind weft's back") {
				n, _ := strconv.Atoi(m[1])
				found += n
				repaired = append(repaired, l)
			} else if strings.Contains(l, "weft's jump was not the first rule of FORWARD") {
				repaired = append(repaired, l)
			}
		}
		if repairedAll(repaired) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("daemon:\n%s", strings.Join(repaired, "\n"))
	if !repairedAll(repaired) {
		t.Fatalf("the daemon did not repair all of %q within %s", want, waitFor)
	}
	if found < 2 || found > 3 {
		t.Errorf("the daemon's checks found %d differences, want the 3 made (or 2, when the hook check put the jump back first)", found)
	}
	if out, code := c.weftStatus(t, 0, "--verify"); code != 0 {
		t.Errorf("after the daemon's repair: exit %d:\n%s", code, out)
	}
	sum, _ := c.metricSum(t, "weft_kernel_drift_repaired_total")
	if int(sum) != found {
		t.Errorf("weft_kernel_drift_repaired_total = %v, want the %d differences logged", sum, found)
	}
	// Enforcing as before: x reaches y/a, z does not.
	if ok, err := c.attemptTCP(c.pods["x/a"], ya, 80, 0, 2*time.Second); !ok || err != nil {
		t.Errorf("x/a -> y/a:80 after the repair: connected %v, %v; want allowed", ok, err)
	}
	c.waitBlocked(t, c.pods["z/a"], ya, 80)
}
