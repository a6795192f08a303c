// Package netnstest runs a test inside a private network namespace of its own,
// so it may program the kernel's packet filter without touching the host's.
//
// Usage, first line of a test:
//
//	if !netnstest.Enter(t) { return }
//
// Enter re-runs the test binary for just this test under `unshare --net`; the
// outer test reports the inner one's result, and the namespace disappears
// with the inner process, also when it fails or is killed.
package netnstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const envMarker = "WEFT_NETNSTEST_INNER"

// Inside reports whether this process is the re-run inside a private namespace.
func Inside() bool { return os.Getenv(envMarker) == "1" }

// Enter returns true when the test already runs inside its private network
// namespace and should go on. Otherwise it runs the test there, reports the
// result on t and returns false. It skips the test, with the reason, when the
// process is not root or util-linux's unshare is missing.
func Enter(t *testing.T, tools ...string) bool {
	t.Helper()
	if Inside() {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bring up loopback in test namespace: %v: %s", err, out)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (run the tests as root)")
	}
	for _, tool := range append([]string{"unshare", "ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s on PATH (install it: sudo hack/install-deps.sh)", tool)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--net", exe, "-test.run", "^" + regexp.QuoteMeta(topName(t.Name())) + "$", "-test.v"}
	if sub := subPattern(t.Name()); sub != "" {
		args[3] += "/" + sub
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envMarker+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	text := out.String()
	if testing.Verbose() || err != nil {
		t.Logf("inside private network namespace:\n%s", indent(text))
	}
	switch {
	case err != nil:
		t.Fatalf("test failed inside its network namespace: %v", err)
	case strings.Contains(text, "--- SKIP"):
		t.Skip("skipped inside its network namespace (see log)")
	case !strings.Contains(text, "--- PASS"):
		t.Fatalf("test inside its network namespace reported no result:\n%s", text)
	}
	return false
}

func topName(name string) string {
	top, _, _ := strings.Cut(name, "/")
	return top
}

func subPattern(name string) string {
	_, rest, ok := strings.Cut(name, "/")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}
