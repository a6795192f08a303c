package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/weftnet/weft/internal/cni"
)

const prevResult100 = `{"cniVersion":"1.0.0",` +
	`"interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/var/run/netns/cni-1"}],` +
	`"ips":[{"address":"10.32.0.7/12","gateway":"10.32.0.1","interface":0},{"address":"fd00::7/64","interface":0}],` +
	`"routes":[{"dst":"0.0.0.0/0","gw":"10.32.0.1"}],` +
	`"dns":{"nameservers":["10.96.0.10"],"search":["ns.svc.cluster.local"]}}`

const prevResult040 = `{"cniVersion":"0.4.0",` +
	`"interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/var/run/netns/cni-1"}],` +
	`"ips":[{"version":"4","address":"10.32.0.7/12","gateway":"10.32.0.1","interface":0},{"version":"6","address":"fd00::7/64","interface":0}],` +
	`"routes":[{"dst":"0.0.0.0/0","gw":"10.32.0.1"}],` +
	`"dns":{"nameservers":["10.96.0.10"]}}`

var podIPs = []netip.Addr{netip.MustParseAddr("10.32.0.7"), netip.MustParseAddr("fd00::7")}

// netConf is a network config in the given version with extra keys; a value
// of type string that starts with "{" is embedded as raw JSON.
func netConf(t *testing.T, cniVersion string, extra map[string]any) string {
	t.Helper()
	conf := map[string]any{"cniVersion": cniVersion, "name": "k8s-pod-network", "type": "weft-cni"}
	for k, v := range extra {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "{") {
			v = json.RawMessage(s)
		}
		conf[k] = v
	}
	out, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestParseConfigDefaults(t *testing.T) {
	conf, err := parseConfig([]byte(netConf(t, "1.0.0", nil)))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Socket != cni.DefaultSocket || conf.Timeout != 10*time.Second || conf.FailOpen || conf.PrevResult != nil {
		t.Errorf("defaults = socket %q, timeout %v, failOpen %v, prevResult %v", conf.Socket, conf.Timeout, conf.FailOpen, conf.PrevResult)
	}

	conf, err = parseConfig([]byte(netConf(t, "1.0.0", map[string]any{
		"socket": "/var/run/weft.sock", "timeout": "2500ms", "failOpen": true, "prevResult": prevResult100,
		"runtimeConfig": map[string]any{"portMappings": []any{}}, // runtime keys are ignored
	})))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Socket != "/var/run/weft.sock" || conf.Timeout != 2500*time.Millisecond || !conf.FailOpen || conf.PrevResult == nil {
		t.Errorf("parsed = socket %q, timeout %v, failOpen %v, prevResult %v", conf.Socket, conf.Timeout, conf.FailOpen, conf.PrevResult)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		wantCode uint
		wantMsg  string
	}{
		{"not JSON", `{"cniVersion":`, types.ErrDecodingFailure, "decode the weft-cni network config"},
		{"timeout is a number", netConf(t, "1.0.0", map[string]any{"timeout": 10}), types.ErrInvalidNetworkConfig, `field "timeout" must be a duration string such as "10s", not a JSON number`},
		{"timeout is not a duration", netConf(t, "1.0.0", map[string]any{"timeout": "soon"}), types.ErrInvalidNetworkConfig, `field "timeout" must be a duration such as "10s", not "soon"`},
		{"timeout is zero", netConf(t, "1.0.0", map[string]any{"timeout": "0s"}), types.ErrInvalidNetworkConfig, `field "timeout" is 0s`},
		{"timeout is too long", netConf(t, "1.0.0", map[string]any{"timeout": "5m"}), types.ErrInvalidNetworkConfig, "at most 1m0s"},
		{"failOpen is a string", netConf(t, "1.0.0", map[string]any{"failOpen": "yes"}), types.ErrInvalidNetworkConfig, `field "failOpen" must be true or false, not a JSON string`},
		{"socket is a number", netConf(t, "1.0.0", map[string]any{"socket": 1}), types.ErrInvalidNetworkConfig, `field "socket" must be a string, not a JSON number`},
		{"socket is relative", netConf(t, "1.0.0", map[string]any{"socket": "cni.sock"}), types.ErrInvalidNetworkConfig, `field "socket" must be an absolute path`},
		{"prevResult is a string", netConf(t, "1.0.0", map[string]any{"prevResult": "x"}), types.ErrInvalidNetworkConfig, `field "prevResult" must be an object`},
		{"prevResult has a bad address", netConf(t, "1.0.0", map[string]any{"prevResult": `{"cniVersion":"1.0.0","ips":[{"address":"10.32.0.7"}]}`}), types.ErrInvalidNetworkConfig, `field "prevResult" is not a CNI 1.0.0 result`},
		{"dns of the wrong type", netConf(t, "1.0.0", map[string]any{"dns": []string{"x"}}), types.ErrInvalidNetworkConfig, `field "dns" must be an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.conf))
			if err == nil {
				t.Fatalf("parseConfig(%s) succeeded", tt.conf)
			}
			if err.Code != tt.wantCode || !strings.Contains(err.Msg, tt.wantMsg) {
				t.Errorf("parseConfig(%s) = code %d %q, want code %d containing %q", tt.conf, err.Code, err.Msg, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	for _, prev := range []struct{ version, result string }{{"1.0.0", prevResult100}, {"0.4.0", prevResult040}} {
		conf, cerr := parseConfig([]byte(netConf(t, prev.version, map[string]any{"prevResult": prev.result})))
		if cerr != nil {
			t.Fatal(cerr)
		}
		got, err := conf.addresses()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(podIPs, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("addresses of a %s result (-want +got):\n%s", prev.version, diff)
		}
	}
}

func TestPrevResultJSON(t *testing.T) {
	tests := []struct {
		name, version, prevResult, want string
	}{
		{"1.0.0 unchanged", "1.0.0", prevResult100, prevResult100},
		{"0.4.0 unchanged", "0.4.0", prevResult040, prevResult040},
		{
			// A result without a version is read as the config's and printed
			// with it.
			"0.4.0 without a version", "0.4.0",
			`{"ips":[{"version":"4","address":"10.32.0.7/12"}],"dns":{}}`,
			`{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.32.0.7/12"}],"dns":{}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, cerr := parseConfig([]byte(netConf(t, tt.version, map[string]any{"prevResult": tt.prevResult})))
			if cerr != nil {
				t.Fatal(cerr)
			}
			out, err := conf.prevResultJSON()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(jsonValue(t, tt.want), jsonValue(t, string(out))); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodIdentity(t *testing.T) {
	tests := []struct {
		args            string
		namespace, name string
		ok              bool
	}{
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u", "ns", "web-0", true},
		{"K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=ns", "ns", "web-0", true},
		{"", "", "", false},
		{"IgnoreUnknown=1", "", "", false},
		{"K8S_POD_NAMESPACE=ns", "ns", "", false},
		{"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=", "ns", "", false},
		{"garbage;;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", "ns", "p", true},
	}
	for _, tt := range tests {
		namespace, name, ok := podIdentity(tt.args)
		if namespace != tt.namespace || name != tt.name || ok != tt.ok {
			t.Errorf("podIdentity(%q) = %q, %q, %v; want %q, %q, %v", tt.args, namespace, name, ok, tt.namespace, tt.name, tt.ok)
		}
	}
}

// jsonValue decodes one JSON document for a semantic comparison.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
	return v
}
