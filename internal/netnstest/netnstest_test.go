package netnstest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestEnterGivesAPrivateNamespace(t *testing.T) {
	if !Enter(t) {
		return
	}
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	// A fresh namespace holds only the loopback device.
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") {
		t.Fatalf("want only lo in a private namespace, got:\n%s", out)
	}
}
