package scenarios

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestNewModel(t *testing.T) {
	m := NewModel()
	if len(m.Namespaces) != 3 || len(m.Pods) != 9 || len(m.Nodes) != 2 {
		t.Fatalf("model has %d namespaces, %d pods, %d nodes; want 3, 9, 2", len(m.Namespaces), len(m.Pods), len(m.Nodes))
	}
	for _, ns := range m.Namespaces {
		if ns.Labels["ns"] != ns.Name || ns.Labels["kubernetes.io/metadata.name"] != ns.Name {
			t.Errorf("namespace %s labels %v", ns.Name, ns.Labels)
		}
	}
	podNet := netip.MustParsePrefix("10.32.0.0/12")
	podNet6 := netip.MustParsePrefix("fd00::/8")
	seen := map[string]string{}
	for _, n := range m.Nodes {
		for _, ip := range n.IPs {
			seen[ip.String()] = n.Name
		}
	}
	for _, p := range m.Pods {
		key := p.Namespace + "/" + p.Name
		if p.Labels["pod"] != p.Name {
			t.Errorf("%s labels %v", key, p.Labels)
		}
		wantNode := "node-1"
		if p.Name == "c" {
			wantNode = "node-2"
		}
		if p.Spec.NodeName != wantNode || p.Spec.HostNetwork {
			t.Errorf("%s on %q (host network %v), want %s", key, p.Spec.NodeName, p.Spec.HostNetwork, wantNode)
		}
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("%s phase %s", key, p.Status.Phase)
		}
		if len(p.Status.PodIPs) != 2 || p.Status.PodIP != p.Status.PodIPs[0].IP {
			t.Fatalf("%s podIP %q podIPs %v", key, p.Status.PodIP, p.Status.PodIPs)
		}
		v4, v6 := netip.MustParseAddr(p.Status.PodIPs[0].IP), netip.MustParseAddr(p.Status.PodIPs[1].IP)
		if !podNet.Contains(v4) || !podNet6.Contains(v6) {
			t.Errorf("%s addresses %s %s outside 10.32.0.0/12 and fd00::/8", key, v4, v6)
		}
		for _, ip := range []netip.Addr{v4, v6} {
			if other, dup := seen[ip.String()]; dup {
				t.Errorf("%s and %s share %s", key, other, ip)
			}
			seen[ip.String()] = key
		}
		var ports []string
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				ports = append(ports, strings.ToLower(cp.Name+" "+string(cp.Protocol)+" ")+strconv.Itoa(int(cp.ContainerPort)))
			}
		}
		wantPorts := []string{"serve-80-tcp tcp 80", "serve-81-tcp tcp 81", "serve-80-udp udp 80", "serve-81-udp udp 81"}
		if diff := cmp.Diff(wantPorts, ports); diff != "" {
			t.Errorf("%s ports (-want +got):\n%s", key, diff)
		}
	}
	// The address plan of the package documentation.
	for key, want := range map[string][2]string{
		"x/a": {"10.32.1.1", "fd00::1:1"},
		"y/b": {"10.32.2.2", "fd00::2:2"},
		"z/c": {"10.32.3.3", "fd00::3:3"},
	} {
		e, ok := m.Endpoint(key)
		if !ok || len(e.IPs) != 2 || e.IPs[0].String() != want[0] || e.IPs[1].String() != want[1] {
			t.Errorf("%s addresses %v, want %v", key, e.IPs, want)
		}
	}
}

func TestModelsAreIndependent(t *testing.T) {
	a, b := NewModel(), NewModel()
	a.SetPodLabel("x/a", "tier", "web")
	a.SetNamespaceLabel("x", "team", "blue")
	a.SetNamedPort("x/a", "serve-80-tcp", 8080)
	if _, ok := b.Pod("x/a").Labels["tier"]; ok {
		t.Errorf("a pod label leaked into another model")
	}
	if _, ok := b.Namespace("x").Labels["team"]; ok {
		t.Errorf("a namespace label leaked into another model")
	}
	if p := b.Pod("x/a").Spec.Containers[0].Ports[0].ContainerPort; p != 80 {
		t.Errorf("a named-port change leaked into another model: %d", p)
	}
}

func TestModelChanges(t *testing.T) {
	m := NewModel()
	d := m.AddPod("x", "d", Node2)
	if d.Status.PodIPs[0].IP != "10.32.1.4" || d.Status.PodIPs[1].IP != "fd00::1:4" {
		t.Errorf("x/d addresses %v, want the next free ones of x", d.Status.PodIPs)
	}
	h := m.AddHostNetworkPod("x", "h", Node2)
	if !h.Spec.HostNetwork || h.Status.PodIPs[0].IP != "10.32.0.2" || h.Status.PodIPs[1].IP != "fd00::2" {
		t.Errorf("host-network pod: hostNetwork %v, addresses %v; want node-2's", h.Spec.HostNetwork, h.Status.PodIPs)
	}
	// A host-network pod takes no pod address: the next pod still gets .5.
	if e := m.AddPod("x", "e", Node1); e.Status.PodIPs[0].IP != "10.32.1.5" {
		t.Errorf("x/e address %s, want 10.32.1.5", e.Status.PodIPs[0].IP)
	}
	ns := m.AddNamespace("w")
	if ns.Labels["ns"] != "w" {
		t.Errorf("new namespace labels %v", ns.Labels)
	}
	if p := m.AddPod("w", "a", Node1); p.Status.PodIPs[0].IP != "10.32.4.1" {
		t.Errorf("w/a address %s, want 10.32.4.1", p.Status.PodIPs[0].IP)
	}

	old := m.AddFinishedPod("x", "old", Node1, "y/a")
	if old.Status.Phase != corev1.PodSucceeded || old.Status.PodIPs[0].IP != "10.32.2.1" || old.Status.PodIPs[1].IP != "fd00::2:1" {
		t.Errorf("finished pod: phase %s, addresses %v; want Succeeded with y/a's", old.Status.Phase, old.Status.PodIPs)
	}
	if _, ok := m.Endpoint("x/old"); ok {
		t.Errorf("a finished pod is an endpoint")
	}

	v4only := m.AddSingleStackPod("z", "d", Node1, IPv4)
	v6only := m.AddSingleStackPod("z", "e", Node1, IPv6)
	if len(v4only.Status.PodIPs) != 1 || v4only.Status.PodIP != "10.32.3.4" || v4only.Status.PodIPs[0].IP != "10.32.3.4" {
		t.Errorf("IPv4-only pod: podIP %s podIPs %v", v4only.Status.PodIP, v4only.Status.PodIPs)
	}
	if len(v6only.Status.PodIPs) != 1 || v6only.Status.PodIP != "fd00::3:5" {
		t.Errorf("IPv6-only pod: podIP %s podIPs %v", v6only.Status.PodIP, v6only.Status.PodIPs)
	}
	if e, _ := m.Endpoint("z/d"); len(e.IPs) != 1 {
		t.Errorf("IPv4-only endpoint addresses %v", e.IPs)
	} else if _, ok := e.IP(IPv6); ok {
		t.Errorf("IPv4-only endpoint has an IPv6 address")
	}

	kinds := map[string]EndpointKind{}
	for _, e := range m.Endpoints() {
		kinds[e.Name] = e.Kind
	}
	for name, want := range map[string]EndpointKind{"x/a": PodEndpoint, "x/h": HostNetworkEndpoint, "node-1": NodeEndpoint} {
		if kinds[name] != want {
			t.Errorf("endpoint %s is a %s, want %s", name, kinds[name], want)
		}
	}
	if got := len(m.PodNames()); got != 15 {
		t.Errorf("PodNames has %d names, want 15", got)
	}

	m.SetNamedPort("y/b", "serve-81-udp", 8181)
	m.RemoveNamedPort("y/b", "serve-80-udp")
	ports := m.Pod("y/b").Spec.Containers[0].Ports
	if ports[3].ContainerPort != 8181 || ports[2].Name != "" || ports[2].ContainerPort != 80 {
		t.Errorf("y/b ports after changes: %+v", ports)
	}
	m.MovePod("y/b", Node2)
	if p := m.Pod("y/b"); p.Spec.NodeName != Node2 || p.Status.HostIP != "10.32.0.2" || p.Status.PodIP != "10.32.2.2" {
		t.Errorf("moved pod: node %s hostIP %s podIP %s", p.Spec.NodeName, p.Status.HostIP, p.Status.PodIP)
	}
	m.MovePod("x/h", Node1)
	if e, _ := m.Endpoint("x/h"); e.Node != Node1 || e.IPs[0].String() != "10.32.0.1" {
		t.Errorf("moved host-network pod: node %s addresses %v, want node-1's", e.Node, e.IPs)
	}
}

func TestModelChangesOfUnknownObjectsPanic(t *testing.T) {
	for name, change := range map[string]func(m *Model){
		"label":      func(m *Model) { m.SetPodLabel("x/zz", "a", "b") },
		"ns label":   func(m *Model) { m.SetNamespaceLabel("w", "a", "b") },
		"port":       func(m *Model) { m.SetNamedPort("x/a", "serve-99-tcp", 99) },
		"pod twice":  func(m *Model) { m.AddPod("x", "a", Node1) },
		"no node":    func(m *Model) { m.AddPod("x", "d", "node-9") },
		"no ns":      func(m *Model) { m.AddPod("w", "a", Node1) },
		"ns twice":   func(m *Model) { m.AddNamespace("x") },
		"move":       func(m *Model) { m.MovePod("x/a", "node-9") },
		"remove":     func(m *Model) { m.RemoveNamedPort("x/a", "nope") },
		"hostnet ns": func(m *Model) { m.AddHostNetworkPod("w", "h", Node1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			change(NewModel())
		})
	}
}
