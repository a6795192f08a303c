package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/lab"
)

var (
	buildOnce  sync.Once
	weftBinary string
	weftCommit string
	buildErr   error
	buildDir   string

	rowsMu sync.Mutex
	rows   []string
)

// TestMain prints the markdown rows of the benchmarks that ran, after
// them, so the README's table can be pasted from the output.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if len(rows) > 0 {
		fmt.Println()
		fmt.Println(tableHeader)
		for _, r := range rows {
			fmt.Println(r)
		}
	}
	os.Exit(code)
}

func addRow(r string) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

// needWeft builds weft once, or skips saying why the lab cannot run.
func needWeft(tb testing.TB) (binary, commit string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: no lab")
	}
	if reason := lab.Missing(); reason != "" {
		tb.Skip(reason)
	}
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildDir, buildErr = os.MkdirTemp("", lab.TempPrefix()+"bin-")
		if buildErr != nil {
			return
		}
		// The commit first: a commit made while weft builds is not in it.
		weftCommit = commitOf(ctx)
		var bin string
		bin, buildErr = lab.BuildWeft(ctx, buildDir)
		weftBinary = filepath.Clean(bin)
	})
	if buildErr != nil {
		tb.Fatalf("build weft: %v", buildErr)
	}
	return weftBinary, weftCommit
}

// commitOf is the short commit of the checkout weft was built from, with
// "-dirty" when it has changes not committed outside test/ (the benchmark's
// own files are not weft's).
func commitOf(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)test").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += "-dirty"
	}
	return commit
}
