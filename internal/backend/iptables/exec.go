package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ToolError is a refusal by iptables-restore, ipset or another tool weft ran,
// with the line of weft's input that was refused when the tool names one.
type ToolError struct {
	// Command is what ran, e.g. "iptables-nft-restore --noflush".
	Command string
	// Output is what the tool said on stderr and stdout.
	Output string
	// Line is the 1-based line of the input the tool refused (0 if it named
	// none), and Text that line.
	Line int
	Text string
	// Hint says what to do about it, when weft knows.
	Hint string
	Err  error
}

func (e *ToolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed (%v)", e.Command, e.Err)
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d %q", e.Line, e.Text)
	}
	if e.Output != "" {
		fmt.Fprintf(&b, ": %s", e.Output)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *ToolError) Unwrap() error { return e.Err }

var lineNumber = regexp.MustCompile(`(?i)line:? (\d+)`)

// run runs a tool with input on stdin and returns its stdout. Tools run to
// completion even when ctx ends meanwhile: a restore cut short is exactly
// the half-applied state weft must never leave. Callers check ctx between steps.
func run(name string, args []string, input string) (string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	te := &ToolError{
		Command: strings.TrimSpace(name + " " + strings.Join(args, " ")),
		Output:  strings.TrimSpace(oneLine(stderr.String() + " " + stdout.String())),
		Err:     err,
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		te.Hint = "is it installed? apt-get install iptables ipset, or run hack/install-deps.sh"
	}
	if m := lineNumber.FindStringSubmatch(stderr.String()); m != nil && input != "" {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			if text, ok := nthLine(input, n); ok {
				te.Line, te.Text = n, text
			}
		}
	}
	te.Hint = hintFor(te)
	return stdout.String(), te
}

func hintFor(e *ToolError) string {
	out := e.Output
	name := ""
	if f := strings.Fields(e.Text); len(f) > 1 {
		name = f[1]
	}
	switch {
	case strings.Contains(out, setTableFullMsg):
		return "the kernel's limit on the number of ipsets in this network namespace is reached: destroy sets that are no longer used, or reduce the number of distinct peers in the cluster's policies"
	case strings.Contains(out, "same name already exists"), strings.Contains(out, "type does not match"):
		return fmt.Sprintf("an ipset named %s that this weft did not make is in the way: remove it (ipset destroy %s) or run `weft cleanup`", name, name)
	case strings.Contains(out, "is full"):
		return "the set reached its maximum number of elements"
	case strings.HasPrefix(e.Text, "-X "), strings.Contains(out, "CHAIN_DEL"):
		return fmt.Sprintf("a rule outside weft's chains still jumps to %s: remove that rule (iptables-save shows it)", strings.TrimPrefix(e.Text, "-X "))
	case strings.Contains(out, "in use by a kernel component"):
		return "a rule outside weft's chains still uses the set: remove that rule"
	}
	return e.Hint
}

func nthLine(s string, n int) (string, bool) {
	for i := 1; ; i++ {
		line, rest, found := strings.Cut(s, "\n")
		if i == n {
			return line, true
		}
		if !found {
			return "", false
		}
		s = rest
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ctxErr is returned when ctx ended between two steps of an apply.
func ctxErr(ctx context.Context, step string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}
