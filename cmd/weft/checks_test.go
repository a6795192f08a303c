package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/internal/metrics"
	"github.com/weftnet/weft/internal/policy"
)

func snapWith(nodes []string, podNodes ...string) *policy.Snapshot {
	var pods []*corev1.Pod
	for i, n := range podNodes {
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: string(rune('a' + i))},
			Spec:       corev1.PodSpec{NodeName: n},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.41.0." + string(rune('1'+i))},
		})
	}
	s := policy.NewSnapshot(nil, pods, nil)
	for _, n := range nodes {
		s.AddNodes(&policy.Node{Name: n})
	}
	return s
}

// A --node-name no Node has, and a node without pods after a minute while
// others have some, are each said once when found and once when resolved.
func TestMisconfigurationChecks(t *testing.T) {
	var logs bytes.Buffer
	c := &misconfigurations{node: "n1", log: slog.New(slog.NewTextHandler(&logs, nil)), m: metrics.New(),
		started: time.Now(), said: map[string]bool{}}

	c.check(snapWith([]string{"n2"}, "n2"))
	c.check(snapWith([]string{"n2"}, "n2"))
	if got := strings.Count(logs.String(), "no Node object is named like --node-name"); got != 1 {
		t.Fatalf("node-name finding logged %d times, want once:\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), "no pod runs on this node") {
		t.Fatal("no-local-pods said before a minute has passed")
	}

	c.started = time.Now().Add(-2 * time.Minute)
	c.check(snapWith([]string{"n1", "n2"}, "n2"))
	if !strings.Contains(logs.String(), "misconfiguration resolved") || !strings.Contains(logs.String(), "check=node-name") {
		t.Fatalf("the resolved node-name finding is not said:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "no pod runs on this node after a minute") {
		t.Fatalf("no-local-pods not said:\n%s", logs.String())
	}
	logs.Reset()
	c.check(snapWith([]string{"n1", "n2"}, "n1", "n2"))
	if !strings.Contains(logs.String(), "misconfiguration resolved") || !strings.Contains(logs.String(), "check=no-local-pods") {
		t.Fatalf("a local pod does not resolve no-local-pods:\n%s", logs.String())
	}
}
