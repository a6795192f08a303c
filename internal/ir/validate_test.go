package ir

import (
	"net/netip"
	"strings"
	"testing"
)

// TestValidate breaks a valid ruleset in one place at a time; the error
// must name what is wrong.
func TestValidate(t *testing.T) {
	if err := mergeRuleset().Validate(); err != nil {
		t.Fatalf("valid ruleset refused: %v", err)
	}
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		name   string
		mutate func(rs *Ruleset)
		want   string
	}{
		{"set without a name", func(rs *Ruleset) { rs.Sets[0].Name = "" }, "set 0 has no name"},
		{"set twice", func(rs *Ruleset) { rs.Sets[1].Name = "weft-pods" }, "set weft-pods is defined twice"},
		{"set family", func(rs *Ruleset) { rs.Sets[0].Family = 5 }, "set weft-pods: unknown family 5"},
		{"set kind", func(rs *Ruleset) { rs.Sets[0].Kind = 9 }, "set weft-pods: unknown kind 9"},
		{"address of the other family", func(rs *Ruleset) { rs.Sets[0].Addrs[0] = addr("fd00::1") }, "set weft-pods (IPv4) holds address fd00::1"},
		{"mapped address", func(rs *Ruleset) { rs.Sets[2].Addrs[0] = addr("::ffff:10.0.0.1") }, "set weft-pods6 (IPv6) holds address ::ffff:10.0.0.1"},
		{"zoned address", func(rs *Ruleset) { rs.Sets[2].Addrs[0] = addr("fe80::1%eth0") }, "holds address fe80::1%eth0"},
		{"invalid prefix", func(rs *Ruleset) { rs.Sets[1].Prefixes = append(rs.Sets[1].Prefixes, netip.Prefix{}) }, "set weft-net holds an invalid prefix"},
		{"endpoint of the other family", func(rs *Ruleset) { rs.Sets[4].Endpoints[0].Addr = addr("fd00::7") }, "set weft-http (IPv4) holds endpoint"},
		{"chain twice", func(rs *Ruleset) { rs.Chains[1].Name = "weft-p-a" }, "chain weft-p-a is defined twice"},
		{"chain direction", func(rs *Ruleset) { rs.Chains[2].Direction = 7 }, "chain weft-p-admin (policy admin): unknown direction 7"},
		{"rule family", func(rs *Ruleset) { rs.Chains[0].Rules[0].Family = 0 }, "chain weft-p-a (policy ns/a) rule 0: unknown family 0"},
		{"missing peer set", func(rs *Ruleset) { rs.Chains[0].Rules[1].PeerSet = "weft-missing" }, "rule 1: peer set weft-missing is not in the ruleset: a set of that name is not defined"},
		{"peer set of the other family", func(rs *Ruleset) { rs.Chains[0].Rules[2].PeerSet = "weft-pods" }, "peer set weft-pods is of IPv4, the rule of IPv6"},
		{"endpoint set as peer", func(rs *Ruleset) { rs.Chains[0].Rules[0].PeerSet = "weft-http" }, "peer set weft-http holds endpoint members"},
		{"port without protocol", func(rs *Ruleset) { rs.Chains[0].Rules[0].Protocol = 0 }, "port range 80-80 without a protocol"},
		{"range from 0", func(rs *Ruleset) { rs.Chains[0].Rules[0].PortMin = 0 }, "port range 0-80"},
		{"empty range", func(rs *Ruleset) { rs.Chains[0].Rules[1].PortMax = 0 }, "port range 70-0 ends before it starts"},
		{"missing endpoint set", func(rs *Ruleset) { rs.Chains[0].Rules[3].EndpointSet = "weft-nope" }, "endpoint set weft-nope is not in the ruleset"},
		{"peer set as endpoint set", func(rs *Ruleset) { rs.Chains[0].Rules[3].EndpointSet = "weft-pods" }, "endpoint set weft-pods holds addr members"},
		{"verdict", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = 9 }, "unknown verdict 9"},
		{"audit verdict in an enforcing group", func(rs *Ruleset) { rs.Chains[2].Rules[0].Verdict = Audit },
			"enforcing group weft-g-x refers to chain weft-p-admin, whose rule 0 () has verdict audit; a chain of enforcing groups must drop, not audit"},
		{"drop verdict in an audited group", func(rs *Ruleset) { rs.Groups[0].Audit, rs.Log = true, DefaultLog },
			"audited group weft-g-x refers to chain weft-p-admin, whose rule 0 () has verdict drop; a chain of audited groups must audit, not drop"},
		{"audit without the log", func(rs *Ruleset) { rs.Groups[0].Audit, rs.Chains[2].Rules[0].Verdict = true, Audit },
			"group weft-g-x is audited but the log is off"},
		{"group named like a chain", func(rs *Ruleset) { rs.Groups[0].Name = "weft-p-a" }, "group weft-p-a has the name of another chain or group"},
		{"group direction", func(rs *Ruleset) { rs.Groups[0].Direction = 2 }, "group weft-g-x: unknown direction 2"},
		{"unknown chain", func(rs *Ruleset) { rs.Groups[0].Chains[1] = "weft-p-gone" }, "group weft-g-x refers to chain weft-p-gone, which the ruleset does not define"},
		{"chain of the other direction", func(rs *Ruleset) { rs.Chains[0].Direction = Egress }, "ingress group weft-g-x refers to chain weft-p-a of direction egress"},
		{"bad member", func(rs *Ruleset) { rs.Groups[0].Members[0].Addr = netip.Addr{} }, "group weft-g-x: member ns/x has a bad address"},
		{"member in two groups", func(rs *Ruleset) {
			g := rs.Groups[0]
			g.Name, g.Chains = "weft-g-y", nil
			rs.Groups = append(rs.Groups, g)
		}, "address 10.32.0.7 is in ingress groups weft-g-x and weft-g-y"},
		{"invalid unknown range", func(rs *Ruleset) { rs.UnknownRanges = []netip.Prefix{{}} }, "unknown ranges: invalid Prefix is no plain"},
		{"log without rate", func(rs *Ruleset) { rs.Log = Log{Enabled: true, Burst: 5} }, "log: rate 0/s with burst 5 logs nothing"},
	} {
		rs := mergeRuleset()
		tc.mutate(rs)
		err := rs.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	// The same address may be in an ingress and an egress group.
	rs := mergeRuleset()
	g := rs.Groups[0]
	g.Name, g.Direction, g.Chains = "weft-g-out", Egress, nil
	rs.Groups = append(rs.Groups, g)
	rs.UnknownRanges = []netip.Prefix{pfx("10.32.0.0/16"), pfx("fd00::/64")}
	if err := rs.Validate(); err != nil {
		t.Errorf("valid ruleset refused: %v", err)
	}
	// An audited group whose chains audit, with the log on.
	rs = mergeRuleset()
	rs.Groups[0].Audit, rs.Chains[2].Rules[0].Verdict, rs.Log = true, Audit, DefaultLog
	if err := rs.Validate(); err != nil {
		t.Errorf("valid audited ruleset refused: %v", err)
	}
}
