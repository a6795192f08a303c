package ir

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var pfx = netip.MustParsePrefix

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// mergeRuleset has one ingress group over five chains: two Accept-only
// ones, one with a Drop rule, one Accept-only again, then one with a Pass.
// Its rules cover what the sets hold and what they cannot.
func mergeRuleset() *Ruleset {
	return &Ruleset{
		Sets: []Set{
			{Name: "weft-pods", Family: IPv4, Kind: AddrSet, Addrs: []netip.Addr{netip.MustParseAddr("10.32.0.8"), netip.MustParseAddr("10.40.1.2")}},
			{Name: "weft-net", Family: IPv4, Kind: NetSet, Prefixes: []netip.Prefix{pfx("10.40.0.0/16")}},
			{Name: "weft-pods6", Family: IPv6, Kind: AddrSet, Addrs: []netip.Addr{netip.MustParseAddr("fd00::8")}},
			{Name: "weft-empty", Family: IPv4, Kind: AddrSet},
			{Name: "weft-http", Family: IPv4, Kind: EndpointSet, Endpoints: []Endpoint{{Addr: netip.MustParseAddr("10.32.0.7"), Protocol: 6, Port: 8080}}},
		},
		Chains: []Chain{
			{Name: "weft-p-a", Direction: Ingress, Policy: "ns/a", Rules: []Rule{
				{Family: IPv4, PeerSet: "weft-pods", Protocol: 6, PortMin: 80, PortMax: 80},
				{Family: IPv4, PeerSet: "weft-net", Protocol: 6, PortMin: 70, PortMax: 85},
				{Family: IPv6, PeerSet: "weft-pods6", Protocol: 17, PortMin: 53, PortMax: 53},
				{Family: IPv4, PeerSet: "weft-pods", Protocol: 6, EndpointSet: "weft-http"}, // named port: kept
			}},
			{Name: "weft-p-b", Direction: Ingress, Policy: "ns/b", Rules: []Rule{
				{Family: IPv4, PeerSet: "weft-net"},                                             // every protocol and port
				{Family: IPv4, PeerSet: "weft-pods", Protocol: 1},                               // ICMP, every "port"
				{Family: IPv4, Protocol: 1, PortMin: 8, PortMax: 8},                             // a port on ICMP: kept
				{Family: IPv4, PeerSet: "weft-pods", Protocol: 6, PortMin: 2000, PortMax: 4000}, // wide
				{Family: IPv6, Protocol: 132},
			}},
			{Name: "weft-p-admin", Direction: Ingress, Policy: "admin", Rules: []Rule{
				{Family: IPv4, PeerSet: "weft-pods", Verdict: Drop},
			}},
			{Name: "weft-p-c", Direction: Ingress, Policy: "ns/c", Rules: []Rule{
				{Family: IPv4, PeerSet: "weft-empty", Protocol: 17, PortMin: 53, PortMax: 53},
				{Family: IPv4, PeerSet: "weft-empty"},
			}},
			{Name: "weft-p-pass", Direction: Ingress, Policy: "pass", Rules: []Rule{
				{Family: IPv6, Verdict: Pass},
			}},
		},
		Groups: []Group{{Name: "weft-g-x", Direction: Ingress,
			Chains:   []string{"weft-p-a", "weft-p-b", "weft-p-admin", "weft-p-c", "weft-p-pass"},
			Policies: []string{"ns/a", "ns/b", "admin", "ns/c", "pass"},
			Members:  []Member{{Addr: netip.MustParseAddr("10.32.0.7"), Pod: "ns/x"}}}},
	}
}

func planOf(t *testing.T, rs *Ruleset, opts MergeOptions) *GroupPlan {
	t.Helper()
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	chains := map[string]*Chain{}
	for i := range rs.Chains {
		chains[rs.Chains[i].Name] = &rs.Chains[i]
	}
	sets := map[string]*Set{}
	for i := range rs.Sets {
		sets[rs.Sets[i].Name] = &rs.Sets[i]
	}
	plan, err := PlanGroup(&rs.Groups[0], chains, sets, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// shape writes a plan's steps as chain names, runs as their chains in [].
func shape(plan *GroupPlan) []string {
	var out []string
	for _, st := range plan.Steps {
		if st.Run == nil {
			out = append(out, st.Chain.Name)
			continue
		}
		s := "["
		for i, c := range st.Run.Chains {
			if i > 0 {
				s += " "
			}
			s += c.Name
		}
		out = append(out, s+"]")
	}
	return out
}

func keptRules(run *Run) []string {
	var out []string
	for _, ref := range run.Kept {
		out = append(out, ref.Chain.Name+"/"+string(rune('0'+ref.Index)))
	}
	return out
}

// TestPlanIntervalSets: runs end at chains with Drop or Pass rules; what
// the sets cannot hold stays a rule; the elements are disjoint (what
// nftables' interval sets want) and counted over both families.
func TestPlanIntervalSets(t *testing.T) {
	plan := planOf(t, mergeRuleset(), MergeOptions{Sets: IntervalSets})
	if diff := cmp.Diff([]string{"[weft-p-a weft-p-b]", "weft-p-admin", "[weft-p-c]", "weft-p-pass"}, shape(plan)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if plan.Walk || plan.OverBudget {
		t.Errorf("a group within the budget walks: %+v", plan)
	}
	if plan.Steps[1].Index != 2 || plan.Steps[3].Index != 4 {
		t.Errorf("walked chains' indexes %d, %d, want 2, 4", plan.Steps[1].Index, plan.Steps[3].Index)
	}
	run := plan.Steps[0].Run
	if run.N != 0 || plan.Steps[2].Run.N != 1 {
		t.Errorf("runs numbered %d, %d", run.N, plan.Steps[2].Run.N)
	}
	if diff := cmp.Diff([]string{"weft-p-a/3", "weft-p-b/2"}, keptRules(run)); diff != "" {
		t.Errorf("kept rules (-want +got):\n%s", diff)
	}
	want4 := RunFamily{
		Any:     []netip.Prefix{pfx("10.40.0.0/16")},
		AnyUsed: true,
		Boxes: []Box{
			{pfx("10.32.0.8/32"), 1, 0, 65535},
			{pfx("10.32.0.8/32"), 6, 80, 80},
			{pfx("10.32.0.8/32"), 6, 2000, 4000},
			{pfx("10.40.0.0/16"), 6, 70, 85},
			{pfx("10.40.1.2/32"), 1, 0, 65535},
			{pfx("10.40.1.2/32"), 6, 2000, 4000}, // 80 lies in the /16's 70-85
		},
		AllPorts: []uint8{1},
		Ranges:   true,
	}
	if diff := cmp.Diff(want4, run.IPv4, cmpPrefix); diff != "" {
		t.Errorf("IPv4 (-want +got):\n%s", diff)
	}
	want6 := RunFamily{
		Boxes: []Box{
			{pfx("::/0"), 132, 0, 65535},
			{pfx("fd00::8/128"), 17, 53, 53},
		},
		AllPorts: []uint8{132},
		Ranges:   true,
	}
	if diff := cmp.Diff(want6, *run.Family(IPv6), cmpPrefix); diff != "" {
		t.Errorf("IPv6 (-want +got):\n%s", diff)
	}
	// The second run's peer set is empty: no elements, but the lookups
	// stay, so the set may fill later without a rule changing.
	second := plan.Steps[2].Run.IPv4
	if !second.AnyUsed || !second.Ranges || len(second.Any)+len(second.Boxes) != 0 {
		t.Errorf("second run: %+v, want both lookups and no elements", second)
	}
	if plan.Elements != 1+6+2 {
		t.Errorf("elements %d, want 9 (7 IPv4, 2 IPv6)", plan.Elements)
	}
}

// TestPlanPortSets: ipset's model keeps the union as the rules give it
// (overlaps too), counts one element per port and keeps ranges wider than
// MaxPortRange as rules.
func TestPlanPortSets(t *testing.T) {
	plan := planOf(t, mergeRuleset(), MergeOptions{Sets: PortSets, MaxPortRange: 1024})
	run := plan.Steps[0].Run
	if diff := cmp.Diff([]string{"weft-p-a/3", "weft-p-b/2", "weft-p-b/3"}, keptRules(run)); diff != "" {
		t.Errorf("kept rules (-want +got):\n%s", diff)
	}
	want4 := RunFamily{
		Any:     []netip.Prefix{pfx("10.40.0.0/16")},
		AnyUsed: true,
		Boxes: []Box{
			{pfx("10.32.0.8/32"), 1, 0, 65535},
			{pfx("10.32.0.8/32"), 6, 80, 80},
			{pfx("10.40.0.0/16"), 6, 70, 85},
			{pfx("10.40.1.2/32"), 1, 0, 65535},
			{pfx("10.40.1.2/32"), 6, 80, 80}, // inside the /16's ports, kept
		},
		AllPorts: []uint8{1},
		Ranges:   true,
	}
	if diff := cmp.Diff(want4, run.IPv4, cmpPrefix); diff != "" {
		t.Errorf("IPv4 (-want +got):\n%s", diff)
	}
	// IPv4: 1 any + 2 ICMP peers + 1 + 16 + 1 ports; IPv6: 1 + 1.
	if plan.Elements != 21+2 {
		t.Errorf("elements %d, want 23", plan.Elements)
	}
}

// TestPlanBudget: the budget counts both families together; a group over
// it walks every chain in both; 0 is DefaultMergeBudget and a negative
// budget never merges.
func TestPlanBudget(t *testing.T) {
	all := []string{"weft-p-a", "weft-p-b", "weft-p-admin", "weft-p-c", "weft-p-pass"}
	for _, tc := range []struct {
		budget           int
		walk, overBudget bool
	}{
		{0, false, false},
		{9, false, false}, // exactly the 9 elements of both families
		{8, true, true},   // IPv4 alone (7) would fit
		{1, true, true},
		{-1, true, false},
	} {
		plan := planOf(t, mergeRuleset(), MergeOptions{Budget: tc.budget})
		if plan.Walk != tc.walk || plan.OverBudget != tc.overBudget {
			t.Errorf("budget %d: walk %v, over budget %v; want %v, %v", tc.budget, plan.Walk, plan.OverBudget, tc.walk, tc.overBudget)
		}
		if tc.overBudget && plan.Elements != 9 {
			t.Errorf("budget %d: elements %d, want the 9 the sets would hold", tc.budget, plan.Elements)
		}
		if tc.walk {
			if diff := cmp.Diff(all, shape(plan)); diff != "" {
				t.Errorf("budget %d: steps (-want +got):\n%s", tc.budget, diff)
			}
			for j, st := range plan.Steps {
				if st.Index != j {
					t.Errorf("budget %d: step %d has index %d", tc.budget, j, st.Index)
				}
			}
		}
	}
	for budget, want := range map[int]int{0: DefaultMergeBudget, 7: 7, -1: -1, -50: -1} {
		if got := MergeLimit(budget); got != want {
			t.Errorf("MergeLimit(%d) = %d, want %d", budget, got, want)
		}
	}
}

// TestPlanOnlyWalked: a group of chains with Drop or Pass rules has no run.
func TestPlanOnlyWalked(t *testing.T) {
	rs := mergeRuleset()
	rs.Groups[0].Chains = []string{"weft-p-admin", "weft-p-pass"}
	plan := planOf(t, rs, MergeOptions{})
	if diff := cmp.Diff([]string{"weft-p-admin", "weft-p-pass"}, shape(plan)); diff != "" || plan.Walk || plan.Elements != 0 {
		t.Errorf("plan %+v (-want +got):\n%s", plan, diff)
	}
	rs.Groups[0].Chains = append(rs.Groups[0].Chains, "weft-missing")
	if _, err := PlanGroup(&rs.Groups[0], map[string]*Chain{"weft-p-admin": &rs.Chains[2], "weft-p-pass": &rs.Chains[4]}, nil, MergeOptions{}); err == nil {
		t.Error("a group naming an unknown chain was planned")
	}
}

func TestDisjointBoxes(t *testing.T) {
	got := disjointBoxes(map[uint8]map[netip.Prefix][]portRange{
		6: {
			pfx("0.0.0.0/0"):   {{80, 80}},
			pfx("10.0.0.0/8"):  {{80, 90}, {91, 91}, {200, 300}},
			pfx("10.1.1.1/32"): {{85, 100}, {250, 260}},
			pfx("10.2.0.0/16"): {{80, 80}},
		},
		17: {pfx("10.1.1.1/32"): {{53, 53}}},
	})
	want := []Box{
		{pfx("0.0.0.0/0"), 6, 80, 80},
		{pfx("10.0.0.0/8"), 6, 81, 91}, // 80 is its parent's; 91 joins 81-90
		{pfx("10.0.0.0/8"), 6, 200, 300},
		{pfx("10.1.1.1/32"), 6, 92, 100},
		{pfx("10.1.1.1/32"), 17, 53, 53},
		// 10.2.0.0/16 tcp 80 lies inside what 0.0.0.0/0 allows: nothing.
	}
	if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
		t.Errorf("disjointBoxes (-want +got):\n%s", diff)
	}
	if got := outermost([]netip.Prefix{pfx("10.1.0.0/16"), pfx("10.0.0.0/8"), pfx("10.0.0.0/8"), pfx("192.0.2.7/32"), pfx("10.200.0.0/24")}); !cmp.Equal(got, []netip.Prefix{pfx("10.0.0.0/8"), pfx("192.0.2.7/32")}, cmpPrefix) {
		t.Errorf("outermost = %v", got)
	}
}
