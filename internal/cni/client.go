package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"
)

// UnreachableError means that no weft daemon took the connection: the socket
// does not exist, nothing listens on it, or the caller may not connect.
type UnreachableError struct {
	// Path is the socket's path.
	Path string
	// Err is the dial's error; it names the path too.
	Err error
}

// Error names the socket and says what to look at.
func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, fs.ErrPermission) {
		return fmt.Sprintf("%v: the weft CNI socket is for root only", e.Err)
	}
	return fmt.Sprintf("%v: is weft running on this node?", e.Err)
}

// Unwrap returns the dial's error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Call sends req to the weft daemon that listens on the unix socket at path
// and returns its answer. An error means there is no answer: weft is not
// reachable (*UnreachableError), it did not answer before ctx ended (the error
// wraps ctx's error or context.DeadlineExceeded), or the connection broke.
// weft's own refusal comes back as a Response with OK false.
//
// If req.Timeout is zero and ctx has a deadline, Call asks weft to give up a
// little before that deadline (a tenth of the time left, at most a second), so
// that weft's own account of what it was waiting for reaches the caller rather
// than a bare timeout.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	if err := req.Validate(); err != nil {
		return Response{}, fmt.Errorf("invalid CNI request for weft on unix %s: %w", path, err)
	}
	deadline, hasDeadline := ctx.Deadline()
	if req.Timeout == 0 && hasDeadline {
		remaining := time.Until(deadline)
		req.Timeout = (remaining - min(remaining/10, time.Second)).Truncate(time.Millisecond)
		if req.Timeout <= 0 {
			return Response{}, fmt.Errorf("call weft on unix %s: %w", path, context.DeadlineExceeded)
		}
	}

	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("call weft on unix %s: %w", path, ctx.Err())
		}
		return Response{}, &UnreachableError{Path: path, Err: err}
	}
	defer func() { _ = conn.Close() }()
	if hasDeadline {
		_ = conn.SetDeadline(deadline)
	}
	// Cancellation without a deadline must unblock the reads and writes too.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	timedOut := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return nil
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		if cause := timedOut(err); cause != nil {
			err = cause
		}
		return Response{}, fmt.Errorf("send %s of pod %s to weft on unix %s: %w", req.Command, req.Pod, path, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if cause := timedOut(err); cause != nil {
			return Response{}, fmt.Errorf("weft on unix %s did not answer %s of pod %s in time: %w", path, req.Command, req.Pod, cause)
		}
		if errors.Is(err, io.EOF) {
			return Response{}, fmt.Errorf("weft on unix %s closed the connection without answering %s of pod %s (is it restarting?): %w", path, req.Command, req.Pod, err)
		}
		return Response{}, fmt.Errorf("read weft's answer to %s of pod %s on unix %s: %w", req.Command, req.Pod, path, err)
	}
	if !resp.OK && resp.Error == "" {
		resp.Error = "weft refused without saying why"
	}
	return resp, nil
}
