package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary act as weft itself when WEFT_TEST_AS_WEFT is
// set, so tests can run the real command under other users or namespaces.
func TestMain(m *testing.M) {
	if os.Getenv("WEFT_TEST_AS_WEFT") == "1" {
		os.Args = append([]string{"weft"}, strings.Fields(os.Getenv("WEFT_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

func TestRunAsNonRootSaysWhatIsMissing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop privileges")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary must be readable and executable by nobody.
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe)
	cmd.Env = append(os.Environ(), "WEFT_TEST_AS_WEFT=1", "WEFT_TEST_ARGS=run --kubeconfig /nonexistent --node-name n1 --metrics-addr=")
	out, err := cmd.CombinedOutput()
	exitErr, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("want exit status 1, got %v:\n%s", err, out)
	}
	if exitErr.ExitCode() == 126 || strings.Contains(string(out), "Permission denied") {
		t.Skipf("the unprivileged user cannot execute the test binary here: %s", out)
	}
	if exitErr.ExitCode() != exitFailure {
		t.Errorf("exit %d, want %d", exitErr.ExitCode(), exitFailure)
	}
	if !strings.Contains(string(out), "needs root (CAP_NET_ADMIN)") {
		t.Errorf("message should say root is needed and why:\n%s", out)
	}
}
