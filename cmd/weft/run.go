package main

import (
	"context"
	"io"
)

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	return usagef("not built yet")
}

func cleanupCommand(ctx context.Context, args []string, stderr io.Writer) error {
	return usagef("not built yet")
}
