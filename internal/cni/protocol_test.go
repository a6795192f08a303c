package cni

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRequestJSON(t *testing.T) {
	req := Request{
		Command: CommandAdd,
		Pod:     PodRef{Namespace: "ns", Name: "web-0", ContainerID: "abc123"},
		IPs:     []netip.Addr{netip.MustParseAddr("10.32.0.7"), netip.MustParseAddr("fd00::7")},
		Timeout: 2 * time.Second,
	}
	got, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"command":"ADD","pod":{"namespace":"ns","name":"web-0","containerID":"abc123"},` +
		`"ips":["10.32.0.7","fd00::7"],"timeout":2000000000}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("wire form of a request (-want +got):\n%s", diff)
	}
	var back Request
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(req, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("request after a round trip (-want +got):\n%s", diff)
	}

	resp, err := json.Marshal(Response{OK: false, Error: "no"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"ok":false,"error":"no"}`, string(resp)); diff != "" {
		t.Errorf("wire form of a response (-want +got):\n%s", diff)
	}
}

func TestRequestValidate(t *testing.T) {
	pod := PodRef{Namespace: "ns", Name: "p", ContainerID: "c"}
	ip := netip.MustParseAddr("10.32.0.1")
	tests := []struct {
		name    string
		req     Request
		wantErr string // empty: valid
	}{
		{"add", Request{Command: CommandAdd, Pod: pod, IPs: []netip.Addr{ip}}, ""},
		{"add without addresses", Request{Command: CommandAdd, Pod: pod}, ""},
		{"check", Request{Command: CommandCheck, Pod: pod}, ""},
		{"del by container id only", Request{Command: CommandDel, Pod: PodRef{ContainerID: "c"}}, ""},
		{"no command", Request{Pod: pod}, "no command"},
		{"unknown command", Request{Command: "add", Pod: pod}, `unknown command "add"`},
		{"add without name", Request{Command: CommandAdd, Pod: PodRef{Namespace: "ns", ContainerID: "c"}}, "pod.namespace and pod.name"},
		{"check without namespace", Request{Command: CommandCheck, Pod: PodRef{Name: "p", ContainerID: "c"}}, "pod.namespace and pod.name"},
		{"del without container id", Request{Command: CommandDel, Pod: PodRef{Namespace: "ns", Name: "p"}}, "pod.containerID"},
		{"zero address", Request{Command: CommandAdd, Pod: pod, IPs: []netip.Addr{ip, {}}}, "ips[1]"},
		{"negative timeout", Request{Command: CommandAdd, Pod: pod, Timeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEffectiveTimeout(t *testing.T) {
	for _, tt := range []struct{ asked, want time.Duration }{
		{0, DefaultTimeout},
		{time.Millisecond, time.Millisecond},
		{MaxTimeout, MaxTimeout},
		{MaxTimeout + time.Nanosecond, MaxTimeout},
		{time.Hour, MaxTimeout},
	} {
		if got := (Request{Timeout: tt.asked}).effectiveTimeout(); got != tt.want {
			t.Errorf("effectiveTimeout of %v = %v, want %v", tt.asked, got, tt.want)
		}
	}
}

func TestPodRefString(t *testing.T) {
	if got, want := (PodRef{Namespace: "ns", Name: "p", ContainerID: "c"}).String(), "ns/p (container c)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (PodRef{ContainerID: "c"}).String(), "container c"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
