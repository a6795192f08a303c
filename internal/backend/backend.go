// Package backend is what weft's kernel backends (iptables+ipset, nftables)
// have in common: the interface the syncer drives and the names they share.
package backend

import (
	"context"

	"github.com/weftnet/weft/internal/ir"
)

// Backend programs the kernel's packet filter of the network namespace weft
// runs in.
type Backend interface {
	// Name is "iptables" or "nftables".
	Name() string
	// Apply makes the kernel hold exactly rs, atomically: on error the rules
	// that were in place stay whole, and the error says what the kernel or
	// the tool refused. The first Apply of a process adopts and replaces what
	// an earlier weft left, without a moment in which isolated pods are open.
	Apply(ctx context.Context, rs *ir.Ruleset) error
	// Cleanup removes every chain, rule, set and table weft owns, and
	// nothing else. It succeeds when there is nothing to remove.
	Cleanup(ctx context.Context) error
}

// Forgetter is implemented by backends that can forget what they believe the
// kernel holds, so that their next Apply reads the kernel again and rewrites
// all they own. The syncer uses it to repair, now and then, rules changed or
// removed behind weft's back.
type Forgetter interface {
	Forget()
}

// HookChecker is implemented by backends whose hook into the kernel's
// chains can be displaced by other tools (iptables: a rule inserted before
// weft's jump in FORWARD). The syncer calls CheckHooks on every sync that
// applies nothing; it puts the hook back and says what stood in front. An
// error means the backend forgot its view: the next Apply must run even for
// an unchanged ruleset.
type HookChecker interface {
	CheckHooks(ctx context.Context) (repaired []string, err error)
}
