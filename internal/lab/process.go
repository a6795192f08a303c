package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program the lab started inside a node's network namespace,
// with its output in a log file.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	mu      sync.Mutex
	stopped bool
	// metricsAddr is weft's --metrics-addr, for WaitWeftReady.
	metricsAddr string
}

// startProcess runs argv inside netns (ip netns exec, which execs the
// program: the PID is the program's) with stdout and stderr to logPath.
func startProcess(name, netns, logPath string, argv []string, env []string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: log file: %w", name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	// The program dies with the lab even when the lab is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	slog.Debug("lab: started", "process", name, "pid", cmd.Process.Pid, "netns", netns)
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop asks the process to end (SIGTERM) and kills it after grace. It
// returns the exit error when the process ended on its own before Stop,
// nil when it ended because of Stop.
func (p *Process) Stop(grace time.Duration) error {
	p.mu.Lock()
	already := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if exited, err := p.Exited(); exited {
		if already {
			return nil
		}
		return fmt.Errorf("%s had exited before it was stopped: %v", p.Name, err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// Kill kills the process outright (SIGKILL), as a crash or `kill -9` would,
// and waits until it is gone.
func (p *Process) Kill() error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	if exited, _ := p.Exited(); exited {
		return fmt.Errorf("%s had exited before it was killed", p.Name)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// Log returns the process's output so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log of %s: %v)", p.Name, err)
	}
	return string(b)
}

// waitFor polls check every 200ms until it succeeds, the process exits,
// or ctx ends.
func (p *Process) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	return p.pollFor(ctx, what, 200*time.Millisecond, check)
}

func (p *Process) pollFor(ctx context.Context, what string, every time.Duration, check func(context.Context) error) error {
	var last error
	for {
		if err := check(ctx); err == nil {
			return nil
		} else {
			last = err
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while waiting for %s (%v); its log %s ends:\n%s", p.Name, what, p.waitErr, p.LogPath, tail(p.Log(), 20))
		case <-ctx.Done():
			return fmt.Errorf("%s: %s: %w (last check: %v); its log %s ends:\n%s", p.Name, what, ctx.Err(), last, p.LogPath, tail(p.Log(), 20))
		case <-time.After(every):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNotReady = errors.New("not ready")
