package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps the bind mounts of named network namespaces.
const netnsDir = "/run/netns"

// netNS is a named network namespace the lab created.
type netNS struct {
	name string
	file *os.File // keeps a handle for setns
}

func createNetNS(ctx context.Context, name string) (*netNS, error) {
	if err := runIP(ctx, "", "netns", "add", name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		_ = runIP(context.Background(), "", "netns", "del", name)
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	return &netNS{name: name, file: f}, nil
}

func (n *netNS) delete() error {
	if n == nil || n.file == nil {
		return nil
	}
	n.file.Close()
	n.file = nil
	return deleteNetNS(n.name)
}

// deleteNetNS ends the processes still inside the namespace (they were
// started by a lab in it), then removes the namespace.
func deleteNetNS(name string) error {
	var errs []error
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err == nil {
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == os.Getpid() {
				continue
			}
			slog.Debug("lab: ending process left in namespace", "netns", name, "pid", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("delete network namespace %s: %v: %s", name, err, bytes.TrimSpace(out)))
	}
	return errors.Join(errs...)
}

// Do runs fn on an OS thread that has entered the namespace, so the sockets
// fn creates belong to it (a socket keeps the namespace it was created in).
// The thread returns to its own namespace afterwards; if it cannot, it stays
// locked and dies with the goroutine rather than serve others from the wrong
// namespace.
func (n *netNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(n.file.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", n.name, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return from network namespace %s: %w", n.name, err))
			return // the thread stays locked and exits with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// runIP runs one ip(8) command, inside netns when it is not empty.
func runIP(ctx context.Context, netns string, args ...string) error {
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipBatch runs ip(8) commands as one batch inside netns; it stops at the
// first failing command.
func ipBatch(ctx context.Context, netns string, cmds []string) error {
	return runBatch(ctx, netns, cmds, false)
}

// ipBatchForce runs every command of the batch, also after failures.
func ipBatchForce(ctx context.Context, netns string, cmds []string) error {
	return runBatch(ctx, netns, cmds, true)
}

func runBatch(ctx context.Context, netns string, cmds []string, force bool) error {
	if len(cmds) == 0 {
		return nil
	}
	args := []string{"-n", netns, "-batch", "-"}
	if force {
		args = append([]string{"-force"}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch (%d commands, first %q): %v: %s", netns, len(cmds), cmds[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// sysctl sets kernel parameters inside netns.
func sysctl(ctx context.Context, netns string, settings ...string) error {
	args := append([]string{"netns", "exec", netns, "sysctl", "-q", "-w"}, settings...)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysctl in %s (%s): %v: %s", netns, strings.Join(settings, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeStale deletes network namespaces and folders that earlier labs of
// processes no longer alive left behind: names "<prefix><pid>-…" whose pid
// does not exist. It returns what it removed.
func removeStale(prefix string, dirs ...string) ([]string, error) {
	var removed []string
	var errs []error
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	for _, e := range entries {
		if staleName(prefix, e.Name()) {
			if err := deleteNetNS(e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, e.Name())
		}
	}
	for _, dir := range dirs {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if staleName(prefix, e.Name()) {
				p := filepath.Join(dir, e.Name())
				if err := os.RemoveAll(p); err != nil {
					errs = append(errs, fmt.Errorf("remove stale lab folder: %w", err))
					continue
				}
				removed = append(removed, p)
			}
		}
	}
	return removed, errors.Join(errs...)
}

// staleName reports whether name is "<prefix><pid>-…" for a pid that is not
// a live process.
func staleName(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return !processAlive(pid)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
