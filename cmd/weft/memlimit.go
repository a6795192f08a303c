package main

import (
	"bufio"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// memoryLimitShare is the share of the cgroup's memory limit that weft
// gives the Go runtime as its soft limit when GOMEMLIMIT is not set: the
// garbage collector works harder as the heap nears it, instead of the
// kernel killing weft at the cgroup's limit. The rest is for what the Go
// heap does not hold: stacks, the binary, and nft, iptables-restore and
// ipset, which weft runs in its own cgroup.
const memoryLimitShare = 0.75

// unlimited is the smallest cgroup limit read as no limit (cgroup v1 says
// "no limit" with the largest multiple of the page size).
const unlimited = 1 << 60

// setMemoryLimit sets the Go runtime's soft memory limit to
// memoryLimitShare of the memory limit of weft's cgroup, unless GOMEMLIMIT
// is set (the runtime has read it) or there is no limit; it never fails,
// and says what it did.
func setMemoryLimit(log *slog.Logger) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "GOMEMLIMIT", env)
		return
	}
	limit, file := cgroupMemoryLimit("/")
	if limit <= 0 {
		log.Debug("no cgroup memory limit: the Go runtime has no memory limit (set GOMEMLIMIT to give one)")
		return
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("Go memory limit set to 3/4 of the cgroup's (GOMEMLIMIT overrides it)", "cgroupLimitMiB", limit>>20, "goMemoryLimitMiB", soft>>20, "file", file)
}

// cgroupMemoryLimit returns the memory limit of this process's cgroup, the
// lowest of its own and its ancestors' that root (the file system root:
// "/" but in tests) shows, and the file it was read from; 0 when there is
// none or it cannot be read. It reads cgroup v2 (memory.max) and v1
// (memory.limit_in_bytes).
func cgroupMemoryLimit(root string) (int64, string) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	var best int64
	var bestFile string
	consider := func(dir, controller, file string) {
		// From the cgroup up to the mount's root: a limit anywhere above
		// applies too. Inside a container the mount's root is often the
		// container's own cgroup, and the path /proc/self/cgroup gives is
		// not under it: then the root's file is the one there.
		base := filepath.Join(root, "sys/fs/cgroup", controller)
		for p := path.Clean("/" + dir); ; p = path.Dir(p) {
			name := filepath.Join(base, p, file)
			if v, ok := readLimit(name); ok && (best == 0 || v < best) {
				best, bestFile = v, name
			}
			if p == "/" {
				return
			}
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			consider(parts[2], "", "memory.max")
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			consider(parts[2], "memory", "memory.limit_in_bytes")
		}
	}
	return best, bestFile
}

// readLimit reads a cgroup memory limit file; false when it is missing,
// says "max" or holds no number below unlimited.
func readLimit(name string) (int64, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= unlimited {
		return 0, false
	}
	return v, true
}
