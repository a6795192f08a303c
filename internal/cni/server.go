package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

const (
	// maxRequestBytes bounds one request: a pod reference and a few addresses
	// need far less.
	maxRequestBytes = 64 << 10
	// ioTimeout bounds reading a request and writing its response, so that a
	// client that connects and says nothing cannot hold a goroutine.
	ioTimeout = 5 * time.Second
	// maxDrainBytes bounds what is read and dropped of a rejected request.
	maxDrainBytes = 1 << 20
	// probeTimeout bounds the dial that tells a live socket from a stale one.
	probeTimeout = time.Second
)

// Serve listens on the unix socket at path and answers every connection's
// request with h, each connection in its own goroutine. It returns once the
// socket accepts connections.
//
// Serve creates the socket's directory (mode 0700) if needed, replaces a stale
// socket that nothing listens on, refuses to replace anything else (a live
// socket means another weft runs on this node), and makes the socket mode 0600:
// only root may ask weft to open or release a pod.
//
// Each request's handler gets a context that ends after the request's timeout
// (DefaultTimeout if it names none, never more than MaxTimeout) or when ctx
// ends. A request that cannot be decoded or is invalid gets an error Response;
// a handler that panics gets the pod an error Response and is logged, and the
// server goes on.
//
// When ctx ends, Serve stops accepting, cancels the handlers still running and
// removes the socket. The returned wait function blocks until then and until
// every connection is finished; it returns nil after ctx ended and an error if
// the server had to stop for another reason.
func Serve(ctx context.Context, path string, h Handler, log *slog.Logger) (wait func() error, err error) {
	if h == nil {
		return nil, fmt.Errorf("serve CNI requests on unix %s: no handler", path)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the directory of the CNI socket: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen for CNI requests: %w", err)
	}
	// The listener removes the socket file when it is closed.
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("restrict the CNI socket to root: %w", err)
	}
	log.Info("serving CNI requests", "socket", path)

	s := &server{path: path, handler: h, log: log}
	stopOnDone := context.AfterFunc(ctx, func() { _ = ln.Close() })
	var conns sync.WaitGroup
	acceptErr := make(chan error, 1)
	go func() {
		err := s.acceptLoop(ctx, ln, &conns)
		stopOnDone()
		_ = ln.Close()
		conns.Wait()
		if err != nil {
			log.Error("CNI server stopped", "socket", path, "err", err)
		} else {
			log.Info("CNI server stopped", "socket", path)
		}
		acceptErr <- err
	}()
	return sync.OnceValue(func() error { return <-acceptErr }), nil
}

// removeStaleSocket removes a socket file at path that no process listens on,
// and refuses to touch a live socket or any other kind of file.
func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect the CNI socket path: %w", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("CNI socket path %s exists and is not a socket (%v): remove it or choose another path", path, info.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("CNI socket %s is served by another process: is a second weft running on this node?", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale CNI socket: %w", err)
	}
	return nil
}

type server struct {
	path    string
	handler Handler
	log     *slog.Logger
}

// acceptLoop accepts until ctx ends (nil) or accepting fails for good (the
// error). Running out of file descriptors is waited out, not fatal.
func (s *server) acceptLoop(ctx context.Context, ln *net.UnixListener, conns *sync.WaitGroup) error {
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				s.log.Warn("accept CNI connection; retrying", "socket", s.path, "err", err, "backoff", backoff)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("accept CNI connections on unix %s: %w", s.path, err)
		}
		backoff = 5 * time.Millisecond
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serveConn(ctx, conn)
		}()
	}
}

// serveConn reads one request from conn, runs it and writes the response.
func (s *server) serveConn(ctx context.Context, conn *net.UnixConn) {
	defer func() { _ = conn.Close() }()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(ioTimeout))

	limited := &io.LimitedReader{R: conn, N: maxRequestBytes + 1}
	var req Request
	if err := json.NewDecoder(limited).Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			// Connected and closed without a byte: a liveness probe.
			s.log.Debug("CNI connection closed without a request", "socket", s.path)
			return
		}
		msg := fmt.Sprintf("malformed CNI request: %v", err)
		if limited.N <= 0 {
			msg = fmt.Sprintf("malformed CNI request: larger than %d bytes", maxRequestBytes)
		}
		s.log.Warn("rejected CNI request", "socket", s.path, "err", msg)
		s.reply(conn, Response{Error: msg})
		// Closing with unread input resets the connection, and the client would
		// lose the answer: read what is left of the request, within bounds.
		_ = conn.CloseWrite()
		_, _ = io.CopyN(io.Discard, conn, maxDrainBytes)
		return
	}
	log := s.log.With("command", req.Command, "namespace", req.Pod.Namespace, "pod", req.Pod.Name,
		"container", req.Pod.ContainerID, "ips", req.IPs)
	if err := req.Validate(); err != nil {
		log.Warn("rejected CNI request", "err", err)
		s.reply(conn, Response{Error: "invalid CNI request: " + err.Error()})
		return
	}

	timeout := req.effectiveTimeout()
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := s.dispatch(reqCtx, req, log)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("weft is shutting down: %w", err)
		case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("not done within %v: %w", timeout, err)
		}
		log.Warn("CNI request failed", "err", err, "duration", time.Since(start))
		s.reply(conn, Response{Error: err.Error()})
		return
	}
	log.Info("CNI request done", "duration", time.Since(start))
	s.reply(conn, Response{OK: true})
}

// dispatch runs req's command on the handler. A panic in the handler becomes
// the request's error, so that one bad pod cannot stop the daemon.
func (s *server) dispatch(ctx context.Context, req Request, log *slog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("CNI handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("weft failed internally on %s of pod %s: %v", req.Command, req.Pod, p)
		}
	}()
	switch req.Command {
	case CommandAdd:
		return s.handler.Add(ctx, req.Pod, req.IPs)
	case CommandDel:
		return s.handler.Del(ctx, req.Pod, req.IPs)
	case CommandCheck:
		return s.handler.Check(ctx, req.Pod, req.IPs)
	}
	return fmt.Errorf("unknown command %q", req.Command)
}

// reply writes resp; a client that went away is only logged.
func (s *server) reply(conn *net.UnixConn, resp Response) {
	_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug("write CNI response", "socket", s.path, "err", err)
	}
}
