package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Commands a [Request] can carry; they mirror the CNI commands of the same name.
const (
	// CommandAdd asks weft to program the pod's isolation and answer once it is in
	// the kernel.
	CommandAdd = "ADD"
	// CommandDel tells weft the pod's sandbox is gone, so its addresses may be
	// released.
	CommandDel = "DEL"
	// CommandCheck asks whether weft has the pod's isolation programmed.
	CommandCheck = "CHECK"
)

// Timeouts the server applies to a request's work.
const (
	// DefaultTimeout bounds a request that names no timeout of its own.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds every request, whatever it asks for, so that a client
	// cannot hold one of the daemon's goroutines for long.
	MaxTimeout = 60 * time.Second
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/weft/cni.sock"

// PodRef names the pod sandbox a request is about.
type PodRef struct {
	// Namespace and Name are the Kubernetes pod's (K8S_POD_NAMESPACE and
	// K8S_POD_NAME in CNI_ARGS).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// ContainerID is the runtime's id of the pod sandbox (CNI_CONTAINERID). It is
	// the only field a DEL must carry.
	ContainerID string `json:"containerID"`
}

// String returns "namespace/name (container ID)" for messages and logs.
func (p PodRef) String() string {
	if p.Namespace == "" && p.Name == "" {
		return fmt.Sprintf("container %s", p.ContainerID)
	}
	return fmt.Sprintf("%s/%s (container %s)", p.Namespace, p.Name, p.ContainerID)
}

// Request is what the plugin sends: one per connection.
type Request struct {
	// Command is one of CommandAdd, CommandDel and CommandCheck.
	Command string `json:"command"`
	// Pod is the pod sandbox the command is about.
	Pod PodRef `json:"pod"`
	// IPs are the pod's addresses as the CNI chain assigned them (no prefix
	// length). A DEL may carry none: weft then releases by container id.
	IPs []netip.Addr `json:"ips,omitempty"`
	// Timeout is how long the server may work on the request before it answers
	// with an error; on the wire it is an integer number of nanoseconds. Zero
	// means DefaultTimeout; the server caps it at MaxTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Response is the server's answer: one per connection.
type Response struct {
	// OK is true when the command succeeded: for an ADD, the pod's isolation is
	// programmed; for a CHECK, it still is.
	OK bool `json:"ok"`
	// Error says what went wrong when OK is false.
	Error string `json:"error,omitempty"`
}

// Handler does the daemon's work for each request. Its methods are called
// concurrently, each with a context that ends at the request's deadline or
// when the server stops.
type Handler interface {
	// Add returns once weft has programmed the isolation of the pod and its
	// addresses, or with an error when ctx ends first.
	Add(ctx context.Context, pod PodRef, ips []netip.Addr) error
	// Del releases the pod sandbox. ips may be empty: the container id
	// identifies the sandbox. Del must succeed for a sandbox weft never knew.
	Del(ctx context.Context, pod PodRef, ips []netip.Addr) error
	// Check returns nil if the pod's isolation is programmed, and an error that
	// says what is missing otherwise.
	Check(ctx context.Context, pod PodRef, ips []netip.Addr) error
}

// Validate reports the first thing wrong with r, naming the field.
func (r Request) Validate() error {
	switch r.Command {
	case CommandAdd, CommandCheck:
		if r.Pod.Namespace == "" || r.Pod.Name == "" {
			return fmt.Errorf("%s request: pod.namespace and pod.name are required", r.Command)
		}
	case CommandDel:
	case "":
		return errors.New("request has no command (want ADD, DEL or CHECK)")
	default:
		return fmt.Errorf("unknown command %q (want ADD, DEL or CHECK)", r.Command)
	}
	if r.Pod.ContainerID == "" {
		return fmt.Errorf("%s request: pod.containerID is required", r.Command)
	}
	for i, ip := range r.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("%s request: ips[%d] is not an IP address", r.Command, i)
		}
	}
	if r.Timeout < 0 {
		return fmt.Errorf("%s request: timeout %v is negative", r.Command, r.Timeout)
	}
	return nil
}

// effectiveTimeout is the time the server grants r: its own timeout, or
// DefaultTimeout, at most MaxTimeout.
func (r Request) effectiveTimeout() time.Duration {
	switch {
	case r.Timeout == 0:
		return DefaultTimeout
	case r.Timeout > MaxTimeout:
		return MaxTimeout
	}
	return r.Timeout
}
