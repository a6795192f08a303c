package lab

import "crypto/tls"

// insecureTLS accepts the API server's self-signed serving certificate. The
// connection never leaves the lab's namespaces.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // lab-only, self-signed
}
