package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// NamePrefix starts the name of every network namespace and folder a lab
// creates; the creating process's PID follows, so that a later lab can tell
// leftovers of dead labs from those of live ones.
const NamePrefix = "weft-lab-"

// TempPrefix is NamePrefix and this process's PID: folders named with it
// are removed by a later Start once this process is gone.
func TempPrefix() string { return NamePrefix + strconv.Itoa(os.Getpid()) + "-" }

// DefaultKubeVersion is the kube-apiserver version hack/build-kube-apiserver.sh
// builds by default.
const DefaultKubeVersion = "v1.37.2"

// Config says what lab to start. The zero value is a one-node lab with the
// defaults below.
type Config struct {
	// Nodes is the number of nodes, 1 to 8 (default 1).
	Nodes int
	// APIServer is the kube-apiserver binary (default: FindAPIServer).
	APIServer string
	// Etcd is the etcd binary (default: etcd on PATH).
	Etcd string
	// BaseDir holds the lab's folder of state and logs (default /dev/shm
	// when present, for etcd's fsyncs, else the temp dir).
	BaseDir string
	// ProbeTimeout bounds one probe (default 1s). Blocked probes take this
	// long, since weft drops and never rejects.
	ProbeTimeout time.Duration
	// ProbeParallelism bounds the probes in flight (default 48).
	ProbeParallelism int
}

// Lab is a running cluster-in-a-box. Close it.
type Lab struct {
	// Nodes are the lab's nodes; the first runs etcd and kube-apiserver.
	Nodes []*Node
	// Dir holds the lab's files: logs, kubeconfig, etcd data.
	Dir string

	cfg     Config
	prefix  string
	fabric  *netNS
	cp      *controlPlane
	restCfg *rest.Config
	client  kubernetes.Interface

	mu     sync.Mutex
	pods   map[string]*Pod
	serial int
	wefts  []*Process
	closed bool
}

// FindAPIServer returns the kube-apiserver binary to use: $WEFT_KUBE_APISERVER,
// else the one hack/build-kube-apiserver.sh caches in
// ${WEFT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft}/kube-apiserver-${KUBE_VERSION:-v1.37.2}.
func FindAPIServer() (string, error) {
	if p := os.Getenv("WEFT_KUBE_APISERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("kube-apiserver from $WEFT_KUBE_APISERVER: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("WEFT_CACHE_DIR")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find kube-apiserver: no home folder for the cache: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "weft")
	}
	version := os.Getenv("KUBE_VERSION")
	if version == "" {
		version = DefaultKubeVersion
	}
	p := filepath.Join(cache, "kube-apiserver-"+version)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no kube-apiserver at %s: build it once with hack/build-kube-apiserver.sh (12-20 minutes) or set WEFT_KUBE_APISERVER", p)
	}
	return p, nil
}

// Missing returns why a lab cannot start on this machine ("" when it can):
// not root, or tools or binaries missing, each with the fix.
func Missing() string {
	if os.Geteuid() != 0 {
		return "the lab needs root (network namespaces, netfilter): run as root"
	}
	for _, tool := range []string{"ip", "etcd", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("the lab needs %s on PATH: run hack/install-deps.sh", tool)
		}
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return "the lab needs br_netfilter (/proc/sys/net/bridge is missing): modprobe br_netfilter"
	}
	if _, err := FindAPIServer(); err != nil {
		return err.Error()
	}
	return ""
}

// Start builds the lab: removes leftovers of dead labs, creates the nodes and
// the fabric between them, and starts etcd and kube-apiserver in the first
// node. On error everything already made is removed again.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	if cfg.Nodes < 1 || cfg.Nodes > maxNodes {
		return nil, fmt.Errorf("start lab: %d nodes asked, the lab has room for 1 to %d", cfg.Nodes, maxNodes)
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	if cfg.ProbeParallelism <= 0 {
		cfg.ProbeParallelism = 48
	}
	if cfg.Etcd == "" {
		p, err := exec.LookPath("etcd")
		if err != nil {
			return nil, fmt.Errorf("start lab: etcd is not on PATH: run hack/install-deps.sh (Debian package etcd-server)")
		}
		cfg.Etcd = p
	}
	if cfg.APIServer == "" {
		p, err := FindAPIServer()
		if err != nil {
			return nil, fmt.Errorf("start lab: %w", err)
		}
		cfg.APIServer = p
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			cfg.BaseDir = "/dev/shm"
		}
	}
	if removed, err := removeStale(NamePrefix, cfg.BaseDir, os.TempDir()); err != nil {
		slog.Warn("lab: could not remove all leftovers of earlier labs", "err", err)
	} else if len(removed) > 0 {
		slog.Info("lab: removed leftovers of earlier labs", "removed", removed)
	}

	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	l := &Lab{
		cfg:    cfg,
		prefix: TempPrefix() + hex.EncodeToString(suffix) + "-",
		pods:   map[string]*Pod{},
	}
	l.Dir = filepath.Join(cfg.BaseDir, l.prefix[:len(l.prefix)-1])
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	if err := l.start(ctx); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up the failed lab: %w", cerr))
		}
		return nil, fmt.Errorf("start lab: %w", err)
	}
	return l, nil
}

func (l *Lab) start(ctx context.Context) error {
	begin := time.Now()
	var err error
	if l.fabric, err = setUpFabric(ctx, l.prefix+"fabric"); err != nil {
		return err
	}
	for i := 1; i <= l.cfg.Nodes; i++ {
		n, err := setUpNode(ctx, l.prefix, i, l.fabric)
		if err != nil {
			return err
		}
		l.Nodes = append(l.Nodes, n)
	}
	if err := linkNodes(ctx, l.Nodes); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if l.cp, err = startControlPlane(startCtx, l.Dir, l.Nodes[0], l.cfg.Etcd, l.cfg.APIServer); err != nil {
		return err
	}
	l.restCfg = l.cp.restConfig(l.Nodes[0])
	if l.client, err = newClient(l.restCfg); err != nil {
		return err
	}
	if err := l.writeNodeObjects(ctx); err != nil {
		return err
	}
	slog.Info("lab: started", "nodes", len(l.Nodes), "dir", l.Dir, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Client is an API client of the lab's API server (cluster admin).
func (l *Lab) Client() kubernetes.Interface { return l.client }

// RESTConfig returns a copy of the API client configuration. Its Dial
// connects from inside the first node, where the API server listens.
func (l *Lab) RESTConfig() *rest.Config { return rest.CopyConfig(l.restCfg) }

// Kubeconfig is the path of a kubeconfig for processes running inside a
// lab node (weft): cluster admin token, the API server's fabric address.
func (l *Lab) Kubeconfig() string { return l.cp.kubeconfig }

// APIServerLog is the path of kube-apiserver's log.
func (l *Lab) APIServerLog() string { return l.cp.apiServer.LogPath }

// Close stops weft, the API server and etcd, removes every pod, node and
// the fabric, and the lab's folder. It is safe to call more than once and
// after a failed Start.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	wefts := l.wefts
	pods := make([]*Pod, 0, len(l.pods))
	for _, p := range l.pods {
		pods = append(pods, p)
	}
	l.pods = map[string]*Pod{}
	l.mu.Unlock()

	var errs []error
	for _, w := range wefts {
		_ = w.Stop(10 * time.Second)
	}
	if l.cp != nil {
		l.cp.stop()
	}
	for _, p := range pods {
		if err := p.teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range l.Nodes {
		if err := n.teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.fabric.delete(); err != nil {
		errs = append(errs, err)
	}
	if l.Dir != "" && os.Getenv("WEFT_LAB_KEEP") == "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab folder: %w", err))
		}
	}
	return errors.Join(errs...)
}

// CloseOnSignal closes the lab and exits with status 130 when the process
// gets SIGINT or SIGTERM (Ctrl-C). Call the returned function to stop
// watching, before Close.
func (l *Lab) CloseOnSignal() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			slog.Warn("lab: signal, cleaning up", "signal", sig.String())
			if err := l.Close(); err != nil {
				slog.Error("lab: clean up", "err", err)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
		})
	}
}
