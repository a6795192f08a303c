package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/weftnet/weft/internal/lab"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/scenarios"
)

// auditLine finds a would-be-blocked line (text format) and its source and
// destination addresses: "TCP connection from x/b 10.32.1.2:5555 to y/a
// 10.32.2.1:80 would be blocked (audit): …".
var auditLine = regexp.MustCompile(`msg="(TCP|UDP|SCTP) connection from (?:\S+ )+?(\S+) to (?:\S+ )+?(\S+) would be blocked \(audit\): `)

// flowKey is a probe's connection as the kernel sees it.
type flowKey struct {
	proto    string
	src, dst netip.Addr
	port     uint16
}

func (k flowKey) String() string {
	return fmt.Sprintf("%s %s -> %s", k.proto, k.src, netip.AddrPortFrom(k.dst, k.port))
}

// auditedFlows returns the flows weft logged as would-be-blocked in lines.
func auditedFlows(t testing.TB, lines []string) map[flowKey]bool {
	out := map[flowKey]bool{}
	for _, l := range lines {
		m := auditLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		src, err1 := netip.ParseAddrPort(m[2])
		dst, err2 := netip.ParseAddrPort(m[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("would-be-blocked line with addresses weft does not write: %q", l)
		}
		out[flowKey{m[1], src.Addr(), dst.Addr(), dst.Port()}] = true
	}
	return out
}

// auditRound probes every probe once (in parallel per probe) and returns
// the cells that did not connect and the flows weft logged as
// would-be-blocked meanwhile: as soon as they are want, else after 300 ms
// (the kernel hands packets to weft at once, queue threshold 1).
func (c *cluster) auditRound(t testing.TB, probes []scenarios.Probe, want map[flowKey]bool) (failed []string, logged map[flowKey]bool) {
	marks := c.logMarks()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, p := range probes {
		got, errs := c.lab.ProbeMatrix(ctx, c.endpoints(t, p.Expect.From), c.endpoints(t, p.Expect.To), target(p.ProbeKey))
		for _, from := range p.Expect.From {
			for _, to := range p.Expect.To {
				if ok, _ := got.Allowed(from, to); !ok {
					failed = append(failed, fmt.Sprintf("%s: %s -> %s (%v)", p.ProbeKey, from, to, errs[from+" -> "+to]))
				}
			}
		}
	}
	start := time.Now()
	for {
		// Nothing logged may still be coming: wait a little before
		// believing it.
		time.Sleep(50 * time.Millisecond)
		var lines []string
		for i := range c.wefts {
			lines = append(lines, c.logSince(i, marks)...)
		}
		logged = auditedFlows(t, lines)
		waited := time.Since(start)
		if waited > 300*time.Millisecond || maps.Equal(logged, want) && (len(want) > 0 || waited > 150*time.Millisecond) {
			return failed, logged
		}
	}
}

// expectedAudits are the flows the enforced matrices of probes block.
func (c *cluster) expectedAudits(t testing.TB, probes []scenarios.Probe) map[flowKey]bool {
	out := map[flowKey]bool{}
	for _, p := range probes {
		fam := lab.Family(p.Family)
		for _, from := range p.Expect.From {
			for _, to := range p.Expect.To {
				if ok, _ := p.Expect.Allowed(from, to); ok {
					continue
				}
				src, dst := c.endpoints(t, []string{from, to})[0], c.endpoints(t, []string{from, to})[1]
				out[flowKey{string(p.Protocol), src.IP(fam), dst.IP(fam), uint16(p.Port)}] = true
			}
		}
	}
	return out
}

// awaitAudit probes rounds until, rounds times in a row, every probe
// connects and weft logs as would-be-blocked exactly want; it reports the
// last round's difference when that does not happen within waitFor.
func (c *cluster) awaitAudit(t testing.TB, what string, probes []scenarios.Probe, want map[flowKey]bool, rounds int) bool {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	good := 0
	for {
		failed, logged := c.auditRound(t, probes, want)
		if len(failed) == 0 && maps.Equal(logged, want) {
			if good++; good == rounds {
				return true
			}
			continue
		}
		good = 0
		if time.Now().After(deadline) {
			var missing, extra []string
			for k := range want {
				if !logged[k] {
					missing = append(missing, k.String())
				}
			}
			for k := range logged {
				if !want[k] {
					extra = append(extra, k.String())
				}
			}
			slices.Sort(missing)
			slices.Sort(extra)
			t.Errorf("%s backend, %s: after %v, in audit mode:\n  probes that did not connect: %v\n  blocked by the enforced matrix but not logged as would-be-blocked: %v\n  logged as would-be-blocked but allowed by the enforced matrix: %v",
				c.backend, what, waitFor, failed, missing, extra)
			return false
		}
	}
}

// storyAuditCatalogue: audit and enforce agree on every scenario of the
// catalogue. Both wefts restart with --mode audit (and every line written);
// each scenario is applied in turn. Every probe connects, and the flows weft
// logs as would-be-blocked are exactly those the scenario's enforced
// matrices block — matrices that the scenario tests (TestBackends/*/scenario)
// prove equal to what the kernel does in enforce mode — twice in a row.
// Before a scenario's policies are created, a round with none must log
// nothing (so no line of the previous scenario counts).
func storyAuditCatalogue(t *testing.T, c *cluster) {
	audit := lab.WeftOptions{Args: []string{"--mode", "audit", "--log-summary-window", "0"}}
	for i := range c.lab.Nodes {
		c.restartWeftOptsWhile(t, i, audit, func() {})
	}
	t.Cleanup(func() {
		c.deleteAllPolicies(t)
		for i := range c.lab.Nodes {
			c.restartWeftOptsWhile(t, i, lab.WeftOptions{}, func() {})
		}
	})
	ctx := context.Background()
	var run, skipped []string
	flows := 0
	for _, sc := range scenarios.All() {
		var probes []scenarios.Probe
		for _, p := range sc.Probes {
			if p.Protocol != corev1.ProtocolSCTP {
				probes = append(probes, p)
			}
		}
		if len(probes) == 0 {
			skipped = append(skipped, sc.Name+" (SCTP only)")
			continue
		}
		c.deleteAllPolicies(t)
		c.applyModel(t, sc.Model())
		// (Once suffices: nothing is logged only when no policy is left.)
		if !c.awaitAudit(t, sc.Name+", before its policies", probes, map[flowKey]bool{}, 1) {
			return
		}
		refused := false
		for _, p := range sc.Policies {
			if err := c.createPolicy(ctx, p); err != nil {
				if apierrors.IsInvalid(err) && len(sc.Errors) > 0 {
					refused = true // tested offline (internal/scenarios)
					break
				}
				t.Fatal(err)
			}
		}
		if refused {
			skipped = append(skipped, sc.Name+" (the API server refuses its bad policy)")
			continue
		}
		want := c.expectedAudits(t, probes)
		// Twice: a sync that has applied some policies only can match once.
		if !c.awaitAudit(t, sc.Name, probes, want, 2) {
			return
		}
		run = append(run, sc.Name)
		flows += len(want)
	}
	if len(run) < len(scenarios.All())/2 {
		t.Fatalf("only %d scenarios run in audit mode (skipped: %v)", len(run), skipped)
	}
	t.Logf("%d scenarios in audit mode: every probe connected, and the %d flows logged as would-be-blocked are exactly those the enforced matrices block; skipped: %v", len(run), flows, skipped)
}

// setNamespaceAnnotation sets (value "" removes) one annotation of ns.
func (c *cluster) setNamespaceAnnotation(t testing.TB, ns, key, value string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o, err := c.lab.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if value == "" {
			delete(o.Annotations, key)
		} else {
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[key] = value
		}
		_, err = c.lab.Client().CoreV1().Namespaces().Update(ctx, o, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("annotate namespace %s: %v", ns, err)
	}
}

// storyNamespaceAudited: on enforcing nodes, namespace y annotated
// weft.dev/enforcement=audit lets through what its deny-all blocks and logs
// it as would-be-blocked (and counts it), while z/no-egress in the enforced
// namespace z still drops; without the annotation y is enforced again.
func storyNamespaceAudited(t *testing.T, c *cluster) {
	t.Cleanup(func() { c.setNamespaceAnnotation(t, "y", policy.EnforcementAnnotation, "") })
	for _, p := range logPolicies() {
		c.create(t, p)
	}
	xa, xb, yb, zb := c.pods["x/a"], c.pods["x/b"], c.pods["y/b"], c.pods["z/b"]
	c.waitBlocked(t, xa, yb, 81)
	before, _ := c.metricSum(t, "weft_audit_would_block_total")
	c.setNamespaceAnnotation(t, "y", policy.EnforcementAnnotation, "audit")
	// x/a -> y/b (across nodes) connects once node-2's weft audits y.
	deadline := time.Now().Add(waitFor)
	for {
		ok, err := c.attemptTCP(xa, yb, 81, sport(), 400*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("x/a -> y/b:81 still dropped %v after annotating y %s=audit", waitFor, policy.EnforcementAnnotation)
		}
		time.Sleep(100 * time.Millisecond)
	}
	marks := c.logMarks()
	sp := sport()
	if ok, err := c.attemptTCP(xb, yb, 81, sp, 2*time.Second); !ok || err != nil {
		t.Fatalf("x/b -> y/b:81 in audited y: connected %v, %v; want let through", ok, err)
	}
	// z is enforced: z/b's egress is still dropped.
	if ok, err := c.attemptTCP(zb, xa, 81, sport(), 400*time.Millisecond); ok || err != nil {
		t.Fatalf("z/b -> x/a:81 from enforced z: connected %v, %v; want dropped", ok, err)
	}
	time.Sleep(time.Second)
	want := fmt.Sprintf(`msg="TCP connection from x/b %s:%d to y/b %s:81 would be blocked (audit): ingress of y/b is isolated by deny-all; none allows x/b on 81/TCP"`, xb.IP(lab.IPv4), sp, yb.IP(lab.IPv4))
	var found, dropped bool
	for i := range c.lab.Nodes {
		for _, l := range c.logSince(i, marks) {
			found = found || strings.Contains(l, want)
			dropped = dropped || strings.Contains(l, "connection from z/b ") && strings.Contains(l, " blocked: egress of z/b is isolated by no-egress")
		}
	}
	if !found || !dropped {
		t.Errorf("audited line found %v (want %s), z/b's blocked egress logged %v", found, want, dropped)
	}
	if after, _ := c.metricSum(t, "weft_audit_would_block_total"); after < before+1 {
		t.Errorf("weft_audit_would_block_total went from %v to %v; want it to count the audited connection", before, after)
	}
	// Enforced again without the annotation.
	c.setNamespaceAnnotation(t, "y", policy.EnforcementAnnotation, "")
	c.waitBlocked(t, xb, yb, 81)
}
