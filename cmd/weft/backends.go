package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/weftnet/weft/internal/backend"
	"github.com/weftnet/weft/internal/backend/iptables"
	"github.com/weftnet/weft/internal/backend/nftables"
	"github.com/weftnet/weft/internal/syncer"
)

// chooseBackend returns the backend to run and, when the other one can run
// here too, that one, so its leftover rules can be removed once the chosen
// backend enforces (switching backends never leaves a moment unenforced).
func chooseBackend(ctx context.Context, name, iptablesMode string, log *slog.Logger) (chosen, other backend.Backend, err error) {
	newNFT := func() (backend.Backend, error) { return nftables.New(nftables.Config{Logger: log}) }
	newIPT := func() (backend.Backend, error) {
		mode, err := iptables.ParseMode(iptablesMode)
		if err != nil {
			return nil, usageError{err}
		}
		return iptables.New(iptables.Config{Mode: mode, Logger: log})
	}
	switch name {
	case "nftables":
		if chosen, err = newNFT(); err != nil {
			return nil, nil, err
		}
		other, _ = newIPT()
	case "iptables":
		if chosen, err = newIPT(); err != nil {
			return nil, nil, err
		}
		other, _ = newNFT()
	default: // auto
		if nftErr := nftables.Available(ctx); nftErr == nil {
			if chosen, err = newNFT(); err != nil {
				return nil, nil, err
			}
			other, _ = newIPT()
			log.Info("backend auto: nftables is available; using it")
		} else {
			log.Warn("backend auto: nftables unavailable, falling back to iptables", "reason", nftErr)
			if chosen, err = newIPT(); err != nil {
				return nil, nil, fmt.Errorf("no backend can run here: nftables: %v; iptables: %w", nftErr, err)
			}
		}
	}
	return chosen, other, nil
}

// cleanupOther removes the other backend's rules once the chosen one enforces.
func cleanupOther(ctx context.Context, s *syncer.Syncer, other backend.Backend, log *slog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	if err := other.Cleanup(ctx); err != nil {
		log.Warn("could not remove the rules of the backend not in use", "backend", other.Name(), "error", err)
		return
	}
	log.Debug("removed any rules of the backend not in use", "backend", other.Name())
}

func cleanupCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("cleanup", stderr)
	name := fs.String("backend", "auto", "whose rules to remove: auto (both backends'), nftables or iptables")
	mode := fs.String("iptables-mode", "auto", "iptables variant: auto, nft or legacy")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := oneOf("backend", *name, "auto", "nftables", "iptables"); err != nil {
		return err
	}
	if err := oneOf("iptables-mode", *mode, "auto", "nft", "legacy"); err != nil {
		return err
	}
	log := newLogger(stderr, "text")
	var backends []backend.Backend
	var errs []error
	if *name != "iptables" {
		b, err := nftables.New(nftables.Config{Logger: log})
		if err != nil {
			errs = append(errs, err)
		} else {
			backends = append(backends, b)
		}
	}
	if *name != "nftables" {
		m, err := iptables.ParseMode(*mode)
		if err != nil {
			return usageError{err}
		}
		b, err := iptables.New(iptables.Config{Mode: m, Logger: log})
		if err != nil {
			errs = append(errs, err)
		} else {
			backends = append(backends, b)
		}
	}
	if len(backends) == 0 {
		return fmt.Errorf("no backend available to clean up: %v", errs)
	}
	for _, b := range backends {
		if err := b.Cleanup(ctx); err != nil {
			return fmt.Errorf("cleanup %s: %w", b.Name(), err)
		}
		log.Info("removed every rule and set weft owns", "backend", b.Name())
	}
	return nil
}
