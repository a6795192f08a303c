package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/status"
	"github.com/weftnet/weft/internal/syncer"
)

// statusHandler serves GET /status: what this node enforces now, from the
// syncer's applied ruleset; ?verify=1 also reads the kernel back. It
// answers only the node itself (a loopback peer): the metrics port is open
// to the network with host networking, and the report names every local pod
// while a read-back holds the backend for a moment. Read-backs run one at a
// time.
func statusHandler(node, mode string, s *syncer.Syncer) http.HandlerFunc {
	var readBack sync.Mutex
	return func(w http.ResponseWriter, r *http.Request) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
			http.Error(w, "weft status answers only on the node itself: ask 127.0.0.1 (kubectl exec into the weft pod, or run weft status on the node)", http.StatusForbidden)
			return
		}
		if r.URL.Query().Get("verify") != "" || r.URL.Query().Has("addr") {
			readBack.Lock()
			defer readBack.Unlock()
		}
		snap, rs := s.Current()
		rep := status.Build(node, snap, rs)
		rep.Version, rep.Mode = version, mode
		rep.Ready, rep.Reason = s.Status()
		in := s.Info()
		rep.Backend, rep.LastSync, rep.LastApply = in.Backend, in.LastSync, in.LastApply
		rep.SyncFailures, rep.LastError = in.Failures, in.LastError
		if r.URL.Query().Get("verify") != "" {
			v := &status.Verify{At: time.Now()}
			drift, err := s.Verify(r.Context())
			v.Drift = drift
			if v.Drift == nil {
				v.Drift = []backend.Drift{}
			}
			if err != nil {
				v.Error = err.Error()
			}
			rep.Verify = v
		}
		if texts := r.URL.Query()["addr"]; len(texts) > 0 {
			addrs := make([]netip.Addr, len(texts))
			for i, text := range texts {
				a, err := netip.ParseAddr(text)
				if err != nil {
					http.Error(w, fmt.Sprintf("addr %q: not an IP address", text), http.StatusBadRequest)
					return
				}
				addrs[i] = a.Unmap()
			}
			views, err := s.Lookup(r.Context(), addrs)
			if err != nil {
				http.Error(w, "read the kernel back: "+err.Error(), http.StatusInternalServerError)
				return
			}
			rep.Kernel = views
		}
		writeJSON(w, rep)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Exit status of weft status --verify when the kernel differs.
const exitDrift = 3

func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("status", stderr)
	addr := fs.String("addr", "127.0.0.1:6781", "address of the weft daemon on this node (its --metrics-addr)")
	verify := fs.Bool("verify", false, "also read the kernel back and compare it with what weft applied; exit 3 if they differ")
	output := fs.String("output", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: weft status [--verify] [--addr 127.0.0.1:6781] [--output text|json]\n\n"+
			"Shows what the weft daemon on this node enforces now: local pods and the policies\n"+
			"isolating each, the size of the ruleset, the last sync, errors and readiness.\n"+
			"Exit status: 0 ok, 1 daemon not answering or kernel unreadable, 2 bad usage, 3 (--verify) the kernel differs.\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, false); err != nil {
		return 0, err
	}
	if err := oneOf("output", *output, "text", "json"); err != nil {
		return 0, err
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return 0, usagef("--addr %q: want HOST:PORT", *addr)
	}
	url := "http://" + *addr + "/status"
	if *verify {
		url += "?verify=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, usagef("--addr %q: %v", *addr, err)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return exitFailure, fmt.Errorf("no weft daemon answers at %s: %v (is weft running on this node? give --addr its --metrics-addr)", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return exitFailure, fmt.Errorf("read the answer of %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return exitFailure, fmt.Errorf("%s answered %s (a weft older than this command, or not weft?)", url, resp.Status)
	}
	var rep status.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return exitFailure, fmt.Errorf("%s answered what weft status cannot read: %w", url, err)
	}
	if *output == "json" {
		_, _ = stdout.Write(body)
	} else {
		rep.WriteText(stdout)
	}
	switch {
	case rep.Verify != nil && rep.Verify.Error != "":
		return exitFailure, fmt.Errorf("the daemon could not compare the kernel with its rules: %s", rep.Verify.Error)
	case rep.Verify != nil && len(rep.Verify.Drift) > 0:
		return exitDrift, nil
	}
	return exitOK, nil
}

func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
