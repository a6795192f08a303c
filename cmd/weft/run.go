package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/weftnet/weft/internal/cni"
	"github.com/weftnet/weft/internal/events"
	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/legacy"
	"github.com/weftnet/weft/internal/metrics"
	"github.com/weftnet/weft/internal/policy"
	"github.com/weftnet/weft/internal/syncer"
	"github.com/weftnet/weft/internal/watch"
)

type runFlags struct {
	kubeconfig        string
	nodeName          string
	backend           string
	metricsAddr       string
	nflogGroup        int
	logFormat         string
	iptablesMode      string
	podCIDRsText      stringList
	podCIDRs          []netip.Prefix
	unknownPodTraffic string
	cniSocket         string
	cutRevoked        bool
	logBlocked        bool
	logAllowed        bool
	blockedByNS       bool
	modeText          string
	mode              policy.Enforcement
	summaryWindow     time.Duration
	verifyInterval    time.Duration
	profiling         bool
}

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var f runFlags
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty means the in-cluster config")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name (default $NODE_NAME, then the hostname)")
	fs.StringVar(&f.backend, "backend", "auto", "packet filter backend: auto, nftables or iptables")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":6781", "address for /metrics, /healthz, /readyz and /status; empty disables")
	fs.IntVar(&f.nflogGroup, "nflog-group", 86, "NFLOG group the kernel sends blocked connections to, for weft to log (0-65535)")
	fs.BoolVar(&f.logBlocked, "log-blocked", true, "log and count every blocked new connection, naming pods and policies (false: no log rules at all)")
	fs.BoolVar(&f.logAllowed, "log-allowed", false, "also log new connections accepted into isolated pods, with the rule that allowed them (audits)")
	fs.BoolVar(&f.blockedByNS, "metrics-blocked-by-namespace", false, "label weft_blocked_connections_total and weft_audit_would_block_total with the destination namespace too")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.iptablesMode, "iptables-mode", "auto", "iptables variant: auto (the one holding the node's rules), nft or legacy")
	fs.Var(&f.podCIDRsText, "pod-cidrs", "this node's pod ranges, comma-separated CIDRs (default: the Node object's spec.podCIDRs)")
	fs.StringVar(&f.unknownPodTraffic, "unknown-pod-traffic", "deny", "addresses of the pod ranges that no known pod holds: deny (until weft knows the pod) or allow")
	fs.StringVar(&f.cniSocket, "cni-socket", cni.DefaultSocket, "unix socket on which weft-cni tells weft about new pods; empty disables")
	fs.DurationVar(&f.verifyInterval, "verify-interval", time.Minute, "how often the kernel is read back, compared with the rules weft applied, and what differs repaired")
	fs.BoolVar(&f.cutRevoked, "cut-revoked-connections", true, "delete the conntrack entries of established connections that policy no longer allows")
	fs.DurationVar(&f.summaryWindow, "log-summary-window", 10*time.Second, "fold log lines like the first of a window (same pods, port, protocol, direction and verdict) into one summary line per window; 0 writes every line")
	fs.BoolVar(&f.profiling, "profiling", false, "also serve Go's profiles (/debug/pprof/) on --metrics-addr, for a CPU or heap profile of weft")
	fs.StringVar(&f.modeText, "mode", "enforce", "enforce (drop what policy blocks) or audit (log it as 'would be blocked (audit)' and let it through); a namespace annotated "+policy.EnforcementAnnotation+"=audit|enforce overrides it")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	began := time.Now()
	log := newLogger(stderr, f.logFormat)
	klog.SetSlogLogger(log.With("component", "client-go"))
	setMemoryLimit(log)

	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN) to program the packet filter: run as root, or as a DaemonSet with hostNetwork and NET_ADMIN")
	}
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return usageError{err}
	}
	b, other, err := chooseBackend(ctx, f.backend, f.iptablesMode, log)
	if err != nil {
		return err
	}
	log.Info("starting", "version", version, "node", f.nodeName, "backend", b.Name(), "apiServer", cfg.Host)

	client, err := kubernetes.NewForConfig(protobuf(cfg))
	if err != nil {
		return fmt.Errorf("API client for %s: %w", cfg.Host, err)
	}
	cnpClient, err := npaclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("ClusterNetworkPolicy client for %s: %w", cfg.Host, err)
	}
	w := watch.New(client, log, watch.Config{ClusterPolicies: cnpClient})
	var s *syncer.Syncer
	st := metrics.Status{
		Ready:               func() bool { ok, _ := s.Status(); return ok },
		APIUnreachableSince: func() time.Time { return w.Health().Since },
		Relists:             w.Relists,
	}
	if ipt, ok := b.(interface{ HookRepairs() int }); ok {
		st.HookRepairs = ipt.HookRepairs
	}
	m := metrics.New(st)
	budget := newBudgetWatch(log, m, b)
	reporter := events.New(events.Config{Client: client, Node: f.nodeName, Log: log.With("component", "events")})
	legacyWarner := legacy.NewWarner(log)
	checks := &misconfigurations{node: f.nodeName, log: log, m: m, started: time.Now(), said: map[string]bool{}}
	hooks := &afterSync{
		always:     []func(*policy.Snapshot){checks.check, w.ForgetCNI},
		policies:   reporter.Observe,
		namespaces: legacyWarner.Check,
	}
	scfg := syncer.Config{
		Node:           f.nodeName,
		Log:            log,
		PodCIDRs:       f.podCIDRs,
		AllowUnknown:   f.unknownPodTraffic == "allow",
		NodeAddrs:      interfaceAddrs,
		RepairInterval: f.verifyInterval,
		OnDrift:        m.DriftRepaired,
		OnSync: func(r syncer.Result) {
			m.ObserveSync(r)
			if r.Err == nil && r.Changed {
				budget.check(r.Ruleset)
			}
			if r.Err == nil {
				m.UnknownDenied(len(r.PodRanges) > 0 && f.unknownPodTraffic == "deny")
				hooks.run(r.Snapshot)
			}
		},
	}
	if f.cutRevoked {
		scfg.OnApplied = revokedCutter(log, m)
	}
	var blocked *blockedLog
	if f.logBlocked {
		scfg.NFLog = ir.DefaultLog
		scfg.NFLog.Group = uint16(f.nflogGroup)
		scfg.NFLog.Allowed = f.logAllowed
		scfg.Mode = f.mode
		blocked = newBlockedLog(log, f.logFormat == "json", scfg.NFLog, m.NFLog(f.blockedByNS), f.summaryWindow)
		onSync := scfg.OnSync
		scfg.OnSync = func(r syncer.Result) {
			onSync(r)
			blocked.synced(r, f.nodeName, f.unknownPodTraffic == "allow", f.mode)
		}
		scfg.BeforeApply = func(r syncer.Result) { blocked.synced(r, f.nodeName, f.unknownPodTraffic == "allow", f.mode) }
	}
	s = syncer.New(w, b, scfg)

	if f.metricsAddr != "" {
		if err := serveHTTP(ctx, f.metricsAddr, f.profiling, s, m.Handler(), statusHandler(f.nodeName, f.mode.String(), s), log); err != nil {
			return err
		}
	}
	if f.cniSocket != "" {
		if _, err := cni.Serve(ctx, f.cniSocket, &cniHook{node: f.nodeName, w: w, s: s}, log.With("component", "cni")); err != nil {
			return fmt.Errorf("--cni-socket %s: %w (give another path, or --cni-socket '' to run without the CNI hook)", f.cniSocket, err)
		}
	}
	if blocked != nil {
		blocked.start(ctx)
	}
	go reporter.Run(ctx)
	w.Start(ctx)
	if err := w.WaitForSync(ctx, 5*time.Second); err != nil {
		log.Info("stopped before the API server answered; rules in place stay as they are")
		return nil
	}
	log.Info("cluster view synced from the API server", "sinceStart", time.Since(began).Round(time.Millisecond))
	if other != nil {
		go cleanupOther(ctx, s, other, log)
	}
	if err := s.Run(ctx); err != nil {
		return err
	}
	log.Info("stopping; rules stay in place and keep enforcing until weft starts again (weft cleanup removes them)")
	return nil
}

func (f *runFlags) validate() error {
	if err := oneOf("backend", f.backend, "auto", "nftables", "iptables"); err != nil {
		return err
	}
	if err := oneOf("log-format", f.logFormat, "text", "json"); err != nil {
		return err
	}
	if err := oneOf("iptables-mode", f.iptablesMode, "auto", "nft", "legacy"); err != nil {
		return err
	}
	if err := oneOf("unknown-pod-traffic", f.unknownPodTraffic, "deny", "allow"); err != nil {
		return err
	}
	for _, text := range f.podCIDRsText {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return usagef("--pod-cidrs %q: want CIDRs such as 10.244.1.0/24,fd00:10:244:1::/64: %v", text, err)
		}
		if p != p.Masked() {
			return usagef("--pod-cidrs %q: host bits set; did you mean %s?", text, p.Masked())
		}
		f.podCIDRs = append(f.podCIDRs, p)
	}
	if f.cniSocket != "" && !filepath.IsAbs(f.cniSocket) {
		return usagef("--cni-socket %q: want an absolute path", f.cniSocket)
	}
	if f.verifyInterval < time.Second {
		return usagef("--verify-interval %s: want at least 1s (e.g. 1m)", f.verifyInterval)
	}
	if f.nflogGroup < 0 || f.nflogGroup > 65535 {
		return usagef("--nflog-group %d: want 0-65535", f.nflogGroup)
	}
	if f.logAllowed && !f.logBlocked {
		return usagef("--log-allowed needs the log rules that --log-blocked=false leaves out: give one or the other")
	}
	if f.summaryWindow < 0 {
		return usagef("--log-summary-window %s: want a duration of 0 (no folding) or more", f.summaryWindow)
	}
	mode, err := policy.ParseEnforcement(f.modeText)
	if err != nil {
		return usagef("--mode %v", err)
	}
	f.mode = mode
	if f.mode == policy.Audit && !f.logBlocked {
		return usagef("--mode audit reports what policy would block through the log rules that --log-blocked=false leaves out: give one or the other")
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return usagef("--metrics-addr %q: want HOST:PORT or :PORT", f.metricsAddr)
		}
	}
	if f.profiling && f.metricsAddr == "" {
		return usagef("--profiling serves /debug/pprof/ on --metrics-addr, which is empty: give an address (e.g. --metrics-addr 127.0.0.1:6781) or leave out --profiling")
	}
	if f.nodeName == "" {
		f.nodeName = os.Getenv("NODE_NAME")
	}
	if f.nodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return usagef("--node-name is empty, $NODE_NAME is unset and the hostname is unknown: give --node-name")
		}
		f.nodeName = h
	}
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if os.Getenv("WEFT_DEBUG") != "" {
		opts.Level = slog.LevelDebug
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig is empty and weft is not running in a pod (%v): give --kubeconfig PATH", err)
		}
		return cfg, nil
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "weft/" + version
	return cfg, nil
}

// protobuf returns cfg for the built-in resources in protobuf, which the
// API server encodes and weft decodes several times faster than JSON, with
// less garbage: it matters for the first list of 100,000 pods. (Custom
// resources, such as ClusterNetworkPolicies, speak JSON only.)
func protobuf(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return c
}

// serveHTTP serves /healthz (the process lives), /readyz (weft enforces the
// cluster's current policy: a ruleset is applied, syncs succeed and the API
// server answers), /metrics and /status (weft status).
func serveHTTP(ctx context.Context, addr string, profiling bool, s *syncer.Syncer, metricsHandler, statusHandler http.Handler, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, reason := s.Status(); !ok {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", metricsHandler)
	mux.Handle("/status", statusHandler)
	served := "/metrics, /healthz, /readyz, /status"
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		served += ", /debug/pprof/"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w (another weft running? give another address or --metrics-addr '')", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving "+served, "addr", ln.Addr().String())
	return nil
}
