package clustergen

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestScaleLocalNamespaces(t *testing.T) {
	cfg := ScaleConfig{Pods: 300, Namespaces: 30, Policies: 60, LocalPods: 12, LocalNamespaces: 3, Nodes: 4, Seed: 1,
		PodAddr: func(i int, node string) netip.Addr {
			if node == "node-1" {
				return netip.AddrFrom4([4]byte{10, 41, 0, byte(2 + i)})
			}
			return netip.AddrFrom4([4]byte{10, 33, byte(i >> 8), byte(i)})
		}}
	c := Scale(cfg)
	if len(c.Pods) != 300 || len(c.Namespaces) != 30 || len(c.Policies) != 60 {
		t.Fatalf("got %d pods, %d namespaces, %d policies; want 300, 30, 60", len(c.Pods), len(c.Namespaces), len(c.Policies))
	}
	for i, p := range c.Pods {
		wantNS, wantApp, wantNode := fmt.Sprintf("ns-%d", i%30), fmt.Sprintf("app-%d", (i/30)%8), NodeName(1+i%3)
		wantIP := fmt.Sprintf("10.33.%d.%d", i>>8, i&0xff)
		if i < 12 {
			wantNS, wantApp, wantNode = fmt.Sprintf("ns-%d", i%3), fmt.Sprintf("app-%d", i/3), "node-1"
			wantIP = fmt.Sprintf("10.41.0.%d", 2+i)
		}
		if p.Namespace != wantNS || p.Labels["app"] != wantApp || p.Spec.NodeName != wantNode || p.Status.PodIPs[0].IP != wantIP {
			t.Errorf("pod %d: %s/%s app=%s on %s at %s; want namespace %s, app=%s, on %s at %s",
				i, p.Namespace, p.Name, p.Labels["app"], p.Spec.NodeName, p.Status.PodIPs[0].IP, wantNS, wantApp, wantNode, wantIP)
		}
	}
}

func TestScaleDefaultLayout(t *testing.T) {
	c := Scale(ScaleConfig{Pods: 100, Namespaces: 10, Policies: 10, LocalPods: 5, Seed: 1})
	for i, p := range c.Pods {
		if want := fmt.Sprintf("ns-%d", i%10); p.Namespace != want {
			t.Errorf("pod %d in %s, want %s", i, p.Namespace, want)
		}
		if want := netip.AddrFrom4([4]byte{10, 32, byte(i >> 8), byte(i)}).String(); p.Status.PodIPs[0].IP != want {
			t.Errorf("pod %d at %s, want %s", i, p.Status.PodIPs[0].IP, want)
		}
	}
}

func TestScaleTooManyLocalNamespaces(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Scale accepted LocalNamespaces above Namespaces")
		}
	}()
	Scale(ScaleConfig{Pods: 10, Namespaces: 2, LocalPods: 4, LocalNamespaces: 3})
}
