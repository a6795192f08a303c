package lab

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	apiServerPort = 6443
	etcdPort      = 2379
)

// controlPlane is etcd and kube-apiserver running in the first node.
type controlPlane struct {
	etcd, apiServer *Process
	url             string
	token           string
	kubeconfig      string
	// what it takes to start the API server again (StopAPIServer)
	node         *Node
	apiServerLog string
	apiServerArg []string
}

// startControlPlane runs etcd (loopback of node) and kube-apiserver (bound to
// the node's fabric address, so every node reaches it) inside node's
// namespace, and writes a kubeconfig with an admin token.
func startControlPlane(ctx context.Context, dir string, node *Node, etcdBin, apiServerBin string) (*controlPlane, error) {
	cp := &controlPlane{}
	tokenBytes := make([]byte, 16)
	if _, err := rand.Read(tokenBytes); err != nil {
		return nil, fmt.Errorf("make API token: %w", err)
	}
	cp.token = hex.EncodeToString(tokenBytes)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(cp.token+`,lab-admin,lab-admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}
	saKey := filepath.Join(dir, "service-account.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "apiserver-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, fmt.Errorf("make cert dir: %w", err)
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	var err error
	cp.etcd, err = startProcess("etcd", node.NetNS, filepath.Join(dir, "etcd.log"), []string{
		etcdBin,
		"--name", "lab",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "lab=http://127.0.0.1:2380",
		"--log-level", "warn",
	}, nil)
	if err != nil {
		return nil, err
	}
	etcdClient := &http.Client{Transport: &http.Transport{DialContext: node.DialContext}, Timeout: 2 * time.Second}
	if err := cp.etcd.waitFor(ctx, "etcd health", func(ctx context.Context) error {
		return httpOK(ctx, etcdClient, etcdURL+"/health", "")
	}); err != nil {
		cp.stop()
		return nil, err
	}

	addr := node.IPs[0].String()
	cp.url = "https://" + net.JoinHostPort(addr, strconv.Itoa(apiServerPort))
	cp.node, cp.apiServerLog = node, filepath.Join(dir, "kube-apiserver.log")
	cp.apiServerArg = []string{
		apiServerBin,
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + addr,
		"--advertise-address=" + addr,
		"--secure-port=" + strconv.Itoa(apiServerPort),
		"--cert-dir=" + certDir,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=" + serviceClusterCIDR,
		"--disable-admission-plugins=ServiceAccount",
		// No controllers run to keep endpoints of the kubernetes service.
		"--endpoint-reconciler-type=none",
		"--v=1",
	}
	if err := cp.startAPIServer(ctx); err != nil {
		cp.stop()
		return nil, err
	}

	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, []byte(kubeconfigText(cp.url, cp.token)), 0o600); err != nil {
		cp.stop()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return cp, nil
}

// startAPIServer starts kube-apiserver and waits until it is ready.
func (cp *controlPlane) startAPIServer(ctx context.Context) error {
	var err error
	cp.apiServer, err = startProcess("kube-apiserver", cp.node.NetNS, cp.apiServerLog, cp.apiServerArg, nil)
	if err != nil {
		return err
	}
	apiClient := &http.Client{Transport: &http.Transport{
		DialContext:     cp.node.DialContext,
		TLSClientConfig: insecureTLS(),
	}, Timeout: 5 * time.Second}
	return cp.apiServer.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) error {
		return httpOK(ctx, apiClient, cp.url+"/readyz", cp.token)
	})
}

// StopAPIServer stops kube-apiserver (etcd keeps running): an API outage.
// StartAPIServer starts it again.
func (l *Lab) StopAPIServer() error {
	return l.cp.apiServer.Stop(10 * time.Second)
}

// StartAPIServer starts the kube-apiserver StopAPIServer stopped, with the
// same settings, and waits until it is ready.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	return l.cp.startAPIServer(ctx)
}

func (cp *controlPlane) stop() {
	if cp.apiServer != nil {
		_ = cp.apiServer.Stop(10 * time.Second)
	}
	if cp.etcd != nil {
		_ = cp.etcd.Stop(10 * time.Second)
	}
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write service account key: %w", err)
	}
	return nil
}

func httpOK(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %w", url, resp.Status, errNotReady)
	}
	return nil
}

func kubeconfigText(server, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: lab-admin
  user:
    token: %s
contexts:
- name: lab
  context:
    cluster: lab
    user: lab-admin
current-context: lab
`, server, token)
}

// restConfig is a client configuration whose connections start inside node's
// namespace, where the API server listens.
func (cp *controlPlane) restConfig(node *Node) *rest.Config {
	return &rest.Config{
		Host:            cp.url,
		BearerToken:     cp.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		Dial:            node.DialContext,
		QPS:             500,
		Burst:           1000,
		UserAgent:       "weft-lab",
	}
}

func newClient(cfg *rest.Config) (kubernetes.Interface, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("make API client: %w", err)
	}
	return c, nil
}
