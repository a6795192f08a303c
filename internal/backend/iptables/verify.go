package iptables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftnet/weft/internal/backend"
)

var _ backend.Verifier = (*Backend)(nil)

// Verify reads weft's chains, its jumps from the built-in chains and its
// ipsets back from the kernel (iptables-save and ipset save, as adoption
// does) and compares them with what Apply wrote last: rules with
// iptables-save's reading of them right after the apply that wrote them
// (the baseline), set members with the rendered ones, in canonical form. With repair, the apply planner then goes from
// what the kernel holds to the ruleset applied last, changing only what
// differs (patching sets, restoring the chains that changed, putting the
// jump back on top) with the same never-more-open ordering as any apply.
func (b *Backend) Verify(ctx context.Context, repair bool) ([]backend.Drift, error) {
	// Read beside Apply, compared under the lock (see backend.ReadBeside).
	have, err := backend.ReadBeside(&b.mu, &b.writes, func() error {
		if b.applied == nil || b.lastRS == nil || b.baseline[0] == nil || b.baseline[1] == nil {
			return errors.New("iptables backend: nothing applied yet to compare the kernel with")
		}
		return ctxErr(ctx, "iptables verify")
	}, b.readKernel)
	if err != nil {
		if errors.Is(err, backend.ErrBusy) {
			err = fmt.Errorf("iptables backend: %w", err)
		}
		return nil, err
	}
	defer b.mu.Unlock()
	drift := compareStates(&state{tables: b.baseline, sets: b.applied.sets}, have)
	if !repair || len(drift) == 0 {
		return drift, nil
	}
	if err := b.apply(ctx, b.lastRS, asRendered(have, b.baseline, b.applied)); err != nil {
		b.applied = nil
		return drift, fmt.Errorf("iptables backend: repair what changed behind weft's back: %w (the next sync reads and replaces all weft owns)", err)
	}
	return drift, nil
}

// compareStates lists every difference of have (read from the kernel) from
// want: its tables as iptables-save printed them after weft wrote them
// (iptables-save puts a rule's matches in its own order and words), its
// sets as rendered.
func compareStates(want, have *state) []backend.Drift {
	var drift []backend.Drift
	for fi, fam := range families {
		w, h := want.tables[fi], have.tables[fi]
		prefix := fmt.Sprintf("IPv%d ", fam)
		for _, name := range sortedUnion(w.chains, h.chains) {
			wr, wok := w.chains[name]
			hr, hok := h.chains[name]
			switch {
			case !hok:
				drift = append(drift, backend.Drift{Kind: "chain", Object: prefix + name, Change: "missing"})
			case !wok:
				drift = append(drift, backend.Drift{Kind: "chain", Object: prefix + name, Change: "extra"})
			default:
				drift = append(drift, backend.SequenceDrift(prefix+name, wr, hr, func(r string) string { return r })...)
			}
		}
		for _, hook := range builtinChains {
			wj, hj := w.hooks[hook], h.hooks[hook]
			switch {
			case len(wj) > 0 && len(hj) == 0:
				drift = append(drift, backend.Drift{Kind: "hook", Object: prefix + hook, Change: "missing", Detail: "-A " + hook + " " + wj[0]})
			case !slices.Equal(wj, hj):
				drift = append(drift, backend.Drift{Kind: "hook", Object: prefix + hook, Change: "changed", Detail: strings.Join(hj, "; ")})
			case len(wj) > 0 && slices.Contains(hooks[:], hook) && !h.hookFirst[hook]:
				drift = append(drift, backend.Drift{Kind: "hook", Object: prefix + hook, Change: "displaced", Detail: h.front[hook]})
			}
		}
	}
	for _, name := range sortedUnion(want.sets, have.sets) {
		ws, hs := want.sets[name], have.sets[name]
		switch {
		case hs == nil:
			drift = append(drift, backend.Drift{Kind: "set", Object: name, Change: "missing"})
			continue
		case ws == nil:
			drift = append(drift, backend.Drift{Kind: "set", Object: name, Change: "extra"})
			continue
		case ws.Type != hs.Type || ws.Family != hs.Family:
			drift = append(drift, backend.Drift{Kind: "set", Object: name, Change: "changed",
				Detail: fmt.Sprintf("%s family %s, weft wrote %s family %s", hs.Type, hs.familyName(), ws.Type, ws.familyName())})
			continue
		}
		wm, hm := slices.Sorted(slices.Values(ws.Members)), slices.Sorted(slices.Values(hs.Members))
		for _, m := range without(wm, hm) {
			drift = append(drift, backend.Drift{Kind: "element", Object: name, Change: "missing", Detail: m})
		}
		for _, m := range without(hm, wm) {
			drift = append(drift, backend.Drift{Kind: "element", Object: name, Change: "extra", Detail: m})
		}
	}
	return drift
}

// asRendered returns the kernel's state with every chain and hook list that
// still equals the baseline written as the renderer writes it, so that the
// apply planner, which compares rendered text, rewrites only the chains
// that changed (iptables-save words a rule otherwise than weft does).
func asRendered(have *state, baseline [2]*table, applied *state) *state {
	out := &state{sets: have.sets}
	for fi := range families {
		h, base, ren := have.tables[fi], baseline[fi], applied.tables[fi]
		t := &table{chains: map[string][]string{}, hooks: h.hooks, hookFirst: h.hookFirst, front: h.front}
		for name, rules := range h.chains {
			if r, ok := ren.chains[name]; ok && slices.Equal(rules, base.chains[name]) {
				rules = r
			}
			t.chains[name] = rules
		}
		hooks := map[string][]string{}
		for hook, specs := range h.hooks {
			if slices.Equal(specs, base.hooks[hook]) {
				specs = ren.hooks[hook]
			}
			hooks[hook] = specs
		}
		t.hooks = hooks
		out.tables[fi] = t
	}
	return out
}

// mergeBaseline is the baseline after an apply from prev to next (both
// rendered): for each chain and hook list next holds, as read now where the
// apply changed it, else as before — also when it is gone from the kernel
// meanwhile, so that Verify still finds it missing.
func mergeBaseline(old, read, prev, next *table) *table {
	t := &table{chains: map[string][]string{}, hooks: map[string][]string{}, hookFirst: read.hookFirst, front: read.front}
	for name, rules := range next.chains {
		o, had := old.chains[name]
		switch {
		case had && prev.chains[name] != nil && slices.Equal(prev.chains[name], rules):
			t.chains[name] = o
		default:
			if r, ok := read.chains[name]; ok {
				t.chains[name] = r
			}
		}
	}
	for hook, specs := range next.hooks {
		o, had := old.hooks[hook]
		switch {
		case had && slices.Equal(prev.hooks[hook], specs):
			t.hooks[hook] = o
		default:
			if r, ok := read.hooks[hook]; ok {
				t.hooks[hook] = r
			}
		}
	}
	return t
}

func sortedUnion[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

var _ backend.Reader = (*Backend)(nil)

// Lookup reads weft's ipsets back and says, for each address, which group
// sets (the dispatch of FORWARD's jump into weft's group chains) and which
// other sets hold it.
func (b *Backend) Lookup(ctx context.Context, addrs []netip.Addr) ([]backend.AddressView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctxErr(ctx, "iptables lookup"); err != nil {
		return nil, err
	}
	have, err := b.readKernel()
	if err != nil {
		return nil, err
	}
	dispatch := map[string]string{} // group set -> "ingress GROUP"
	for fi := range families {
		for _, dir := range []string{"INGRESS", "EGRESS"} {
			for _, e := range dispatchEntries(have.tables[fi], "WEFT-"+dir) {
				if e.group != "" {
					dispatch[e.set] = strings.ToLower(dir) + " " + e.group
				}
			}
		}
	}
	views := make([]backend.AddressView, len(addrs))
	for i, a := range addrs {
		v := backend.AddressView{Addr: a.String(), Groups: []string{}, Sets: []string{}}
		for _, name := range sortedUnion(have.sets, nil) {
			for _, m := range have.sets[name].Members {
				if !backend.ElementHolds(m, a) {
					continue
				}
				if g, ok := dispatch[name]; ok {
					v.Groups = append(v.Groups, g)
				} else {
					v.Sets = append(v.Sets, name)
				}
				break
			}
		}
		views[i] = v
	}
	return views, nil
}
