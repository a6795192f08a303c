// Command weft enforces Kubernetes network policy on a Linux node.
//
//	weft run      --kubeconfig PATH --node-name NAME [--backend auto|nftables|iptables] ...
//	weft explain  (--files PATH... | --kubeconfig PATH) --from SRC --to DST --port PORT[/PROTO] ...
//	weft matrix   (--files PATH... | --kubeconfig PATH) [--what-if PATH...] [--namespaces NS,...] ...
//	weft status   [--verify] [--addr 127.0.0.1:6781] [--output text|json]
//	weft cleanup  [--backend auto|nftables|iptables]
//	weft version
//
// Exit status: 0 ok (explain: allowed), 1 runtime failure, 2 bad usage or bad
// input, 3 (explain) blocked or (status --verify) the kernel differs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitBlocked = 3
)

// usageError is bad usage or bad input: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const usageText = `weft enforces Kubernetes network policy on this node.

Usage:
  weft run      --kubeconfig PATH --node-name NAME [--backend auto|nftables|iptables]
                [--metrics-addr :6781] [--nflog-group 86] [--log-format text|json]
                [--iptables-mode auto|nft|legacy] [--pod-cidrs CIDR,...]
                [--unknown-pod-traffic deny|allow] [--mode enforce|audit] [--log-allowed]
                [--log-blocked=false] [--log-summary-window 10s] [--metrics-blocked-by-namespace]
                [--verify-interval 1m]
  weft explain  (--files PATH... | --kubeconfig PATH) [--what-if PATH...]
                --from SRC --to DST --port PORT[/PROTO] [--output text|json]
  weft matrix   (--files PATH... | --kubeconfig PATH [--files WHATIF...]) [--what-if PATH...]
                [--namespaces NS,...] [--pods NS/NAME,...] [--port PORT[/PROTO]]
                [--family auto|4|6] [--output text|json]
  weft status   [--verify] [--addr 127.0.0.1:6781] [--output text|json]
  weft cleanup  [--backend auto|nftables|iptables] [--iptables-mode auto|nft|legacy]
  weft version

Run "weft COMMAND --help" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var code int
	var err error
	switch args[0] {
	case "run":
		err = runCommand(ctx, args[1:], stderr)
	case "explain":
		code, err = explainCommand(ctx, args[1:], stdout, stderr)
	case "matrix":
		code, err = matrixCommand(ctx, args[1:], stdout, stderr)
	case "cleanup":
		err = cleanupCommand(ctx, args[1:], stderr)
	case "status":
		code, err = statusCommand(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "weft %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
	default:
		fmt.Fprintf(stderr, "weft: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return code
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "weft %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "weft %s: %v\n", args[0], err)
		return exitFailure
	}
}
