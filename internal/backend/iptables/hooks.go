package iptables

import (
	"context"
	"fmt"
	"strings"
)

// CheckHooks makes sure that weft's jump is the first rule of FORWARD in
// both families. It is cheap enough for every sync: it reads only rule 1
// (`iptables -w -S FORWARD 1`, one short command per family). Where another
// rule stands first (say another tool inserted `-I FORWARD 1 -j ACCEPT`) or
// the jump is gone, it puts the jump back on top in one iptables-restore
// --noflush (deleting it where it is and inserting it first: no moment
// lacks it), logs what stood in front and returns it, one entry per family
// repaired, e.g. "IPv4: -A FORWARD -j ACCEPT"; HookRepairs counts the
// repairs. Apply does the same first, also when its ruleset changes nothing,
// so a caller need not call CheckHooks before an Apply: call it on the
// syncs that do not apply.
//
// Before the first Apply, or after Forget, there is nothing to check (the
// next Apply reads the kernel and puts the jump first). When the jump cannot
// be put back (weft's chains are gone too), CheckHooks forgets its view and
// says so: the next Apply, which the caller should then run even for an
// unchanged ruleset, reads the kernel and rewrites all weft owns.
func (b *Backend) CheckHooks(ctx context.Context) (repaired []string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctxErr(ctx, "iptables hook check"); err != nil {
		return nil, err
	}
	if b.applied == nil {
		return nil, nil
	}
	return b.checkHooks()
}

// HookRepairs is the number of times, since New, that weft's jump was not
// the first rule of FORWARD in a family and was put back on top.
func (b *Backend) HookRepairs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hookRepairs
}

// checkHooks is CheckHooks with b.mu held and b.applied set. The commands
// run one after the other from the calling goroutine: a caller that entered
// a network namespace on its own thread (setns) keeps them there.
func (b *Backend) checkHooks() (repaired []string, err error) {
	for _, h := range hooks {
		for fi, fam := range families {
			out, err := b.run(b.tools.list[fi], []string{"-w", "-S", h, "1"}, "")
			if err != nil {
				b.applied = nil
				return repaired, fmt.Errorf("iptables backend: read the first rule of IPv%d %s: %w; the next apply reads and replaces the whole state", fam, h, err)
			}
			first := strings.TrimSpace(out)
			if first == "-A "+h+" "+hookRuleArg {
				continue
			}
			what, err := b.putHookFirst(fi, h, first)
			if err != nil {
				b.applied = nil
				return repaired, fmt.Errorf("iptables backend: put weft's jump back on top of IPv%d %s: %w; the next apply reads and replaces the whole state", fam, h, err)
			}
			b.hookRepairs++
			repaired = append(repaired, fmt.Sprintf("IPv%d: %s", fam, what))
			b.log.Warn("weft's jump was not the first rule of "+h+": put it back on top", "family", fmt.Sprintf("IPv%d", fam),
				"first", what, "repairs", b.hookRepairs)
		}
	}
	return repaired, nil
}

// putHookFirst deletes weft's jumps from built-in chain h of family fi and
// inserts one on top, in one restore, and describes what stood first.
func (b *Backend) putHookFirst(fi int, h, first string) (what string, err error) {
	out, err := b.run(b.tools.list[fi], []string{"-w", "-S", h}, "")
	if err != nil {
		return "", err
	}
	var payload strings.Builder
	payload.WriteString("*filter\n")
	found := false
	for _, line := range strings.Split(out, "\n") {
		spec, ok := strings.CutPrefix(line, "-A "+h+" ")
		if !ok {
			continue
		}
		if f, err := splitRule(spec); err == nil && ownedChain(ruleTarget(f)) {
			fmt.Fprintf(&payload, "-D %s %s\n", h, spec)
			found = true
		}
	}
	fmt.Fprintf(&payload, "-I %s 1 %s\nCOMMIT\n", h, hookRuleArg)
	if _, err := b.run(b.tools.restore[fi], []string{"-w", "--noflush"}, payload.String()); err != nil {
		return "", err
	}
	what = first
	if what == "" {
		what = "(no rule)"
	}
	if !found {
		what += " (weft's jump was gone)"
	}
	return what, nil
}
