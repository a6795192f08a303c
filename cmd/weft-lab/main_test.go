package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Bad command lines are usage errors (exit status 2) that name the problem,
// and they are refused before anything is set up.
func TestUsageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no command":      {nil, "want a command"},
		"unknown command": {[]string{"deploy"}, `unknown command "deploy"`},
		"bad backend":     {[]string{"demo", "--backend", "ebpf"}, `--backend "ebpf"`},
		"unknown flag":    {[]string{"demo", "--nodes", "3"}, "flag provided but not defined: -nodes"},
		"extra argument":  {[]string{"up", "now"}, `unexpected argument "now"`},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("run(%q) = %v, want a usage error", tc.args, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %q, want it to say %q", tc.args, err, tc.want)
			}
			if stdout.Len() > 0 {
				t.Fatalf("a refused command printed steps:\n%s", stdout.String())
			}
		})
	}
}
