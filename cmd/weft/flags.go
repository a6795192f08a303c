package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp: the user asked for help, which was printed.
var errHelp = errors.New("help requested")

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("weft "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

// parse parses args, turning flag errors into usage errors; positional
// arguments are refused unless allowed.
func parse(fs *flag.FlagSet, args []string, allowPositional bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err}
	}
	if !allowPositional && fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// oneOf checks a flag value against its choices.
func oneOf(flagName, value string, choices ...string) error {
	for _, c := range choices {
		if value == c {
			return nil
		}
	}
	return usagef("--%s %q: want one of %s", flagName, value, strings.Join(choices, ", "))
}

// stringList is a repeatable flag whose values may also be comma-separated.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// gatherList rewrites "--name a b c --other" so that every value following
// --name up to the next flag becomes its own "--name=value"; it lets
// `--files a.yaml b.yaml` work with the standard flag package.
func gatherList(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a != "--"+name && a != "-"+name {
			out = append(out, a)
			continue
		}
		n := 0
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			n++
			out = append(out, fmt.Sprintf("--%s=%s", name, args[i]))
		}
		if n == 0 {
			out = append(out, a) // let the flag package report the missing value
		}
	}
	return out
}
