package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/lab"
)

// env is the package's one lab and weft binary, made by the first test that
// needs them and removed by TestMain.
type env struct {
	lab  *lab.Lab
	weft string
}

var (
	envOnce  sync.Once
	theEnv   *env
	envError error
	buildDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		if err := theEnv.lab.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close lab: %v\n", err)
			code = 1
		}
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needEnv returns the lab with weft built, or skips the test saying what is
// missing (root, tools, the kube-apiserver binary).
func needEnv(tb testing.TB) *env {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: no lab")
	}
	if reason := lab.Missing(); reason != "" {
		tb.Skip(reason)
	}
	envOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", lab.TempPrefix()+"bin-")
		if err != nil {
			envError = err
			return
		}
		buildDir = dir
		bin, err := lab.BuildWeft(ctx, dir)
		if err != nil {
			envError = err
			return
		}
		l, err := lab.Start(ctx, lab.Config{Nodes: 2, ProbeTimeout: 600 * time.Millisecond, ProbeParallelism: 64})
		if err != nil {
			envError = err
			return
		}
		l.CloseOnSignal()
		theEnv = &env{lab: l, weft: filepath.Clean(bin)}
	})
	if envError != nil {
		tb.Fatalf("set up the lab: %v", envError)
	}
	return theEnv
}
