package nftables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/weftnet/weft/internal/backend"
)

// Reading back: what the kernel holds of table inet weft.
//
// Verify compares two things with two references. Set and map elements are
// compared with what weft rendered (the desired members, typed): both sides
// are brought to one canonical text (an address, a masked prefix, a range
// only where no prefix says it, protocol names and port numbers as nft
// prints them). Chains, rules and the definitions of sets and maps are
// compared with what nft listed right after weft last wrote them (the
// baseline), because nft prints a rule in its own words, not in weft's: the
// baseline is nft's own reading of weft's rules, taken after every apply
// that wrote a chain or added or removed an object.

var _ backend.Verifier = (*Backend)(nil)

// kernelView is table inet weft as `nft -j list table` shows it.
type kernelView struct {
	// structure holds one canonical line per chain definition, rule, and
	// set or map definition, grouped by object ("chain X", "set Y").
	structure map[string][]string
	// elems holds the canonical elements of each set and map.
	elems map[string][]string
}

// nftJSON runs nft with args and returns its output (New sets it; nil with
// knftables' fake, which cannot be read back this way).
type nftJSON func(ctx context.Context, args ...string) ([]byte, error)

func runNFT(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nft", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// readKernel lists table inet weft; terse leaves the elements out. It returns
// nil and no error when there is no such table.
func (b *Backend) readKernel(ctx context.Context, terse bool) (*kernelView, error) {
	if b.list == nil {
		return nil, errors.New("nftables: this backend cannot read the kernel back (a test fake)")
	}
	// The terse listing of the whole ruleset is what nft lists fastest
	// (8 ms at 10,000 pods, where the terse listing of one table takes
	// 130 ms: nft fetches the table's elements for it anyway).
	args := []string{"-j", "list", "table", "inet", tableName}
	if terse {
		args = []string{"-t", "-j", "list", "ruleset"}
	}
	out, err := b.list(ctx, args...)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, nil
		}
		return nil, fmt.Errorf("nftables: read table inet %s back: %w", tableName, err)
	}
	return parseKernelView(out)
}

func parseKernelView(out []byte) (*kernelView, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nftables: read table inet %s back: nft -j gave what weft cannot read: %w", tableName, err)
	}
	v := &kernelView{structure: map[string][]string{}, elems: map[string][]string{}}
	found := false
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var fields map[string]any
			if err := json.Unmarshal(raw, &fields); err != nil {
				return nil, fmt.Errorf("nftables: read %s back: %w", kind, err)
			}
			// Only table inet weft (a ruleset listing has the others).
			if fields["family"] != "inet" {
				continue
			}
			if kind == "table" {
				found = found || fields["name"] == tableName
				continue
			}
			if fields["table"] != tableName {
				continue
			}
			switch kind {
			case "chain":
				name, _ := fields["name"].(string)
				delete(fields, "handle")
				v.structure["chain "+name] = append([]string{canonJSON(fields)}, v.structure["chain "+name]...)
			case "rule":
				chain, _ := fields["chain"].(string)
				delete(fields, "handle")
				v.structure["chain "+chain] = append(v.structure["chain "+chain], canonJSON(fields))
			case "set", "map":
				name, _ := fields["name"].(string)
				elems, _ := fields["elem"].([]any)
				delete(fields, "handle")
				delete(fields, "elem")
				v.structure[kind+" "+name] = []string{canonJSON(fields)}
				keys := make([]string, 0, len(elems))
				for _, e := range elems {
					k, err := canonElem(kind, e)
					if err != nil {
						return nil, fmt.Errorf("nftables: read %s %s back: %w", kind, name, err)
					}
					keys = append(keys, k)
				}
				slices.Sort(keys)
				v.elems[name] = keys
			}
		}
	}
	if !found {
		return nil, nil
	}
	return v, nil
}

func canonJSON(v any) string {
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}

// canonElem returns the canonical text of a set element or map element
// ("key : verdict") as nft -j gives it.
func canonElem(kind string, e any) (string, error) {
	if kind == "map" {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return "", fmt.Errorf("map element %v is not a [key, value] pair", e)
		}
		k, err := canonPart(pair[0])
		if err != nil {
			return "", err
		}
		val, ok := pair[1].(map[string]any)
		if !ok || len(val) != 1 {
			return "", fmt.Errorf("map element %v: value not understood", e)
		}
		for verdict, t := range val {
			target, _ := t.(map[string]any)
			name, _ := target["target"].(string)
			return k + " : " + verdict + " " + name, nil
		}
	}
	return canonPart(e)
}

func canonPart(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return canonScalar(v), nil
	case float64:
		return strconv.FormatInt(int64(v), 10), nil
	case map[string]any:
		if el, ok := v["elem"].(map[string]any); ok {
			return canonPart(el["val"])
		}
		if p, ok := v["prefix"].(map[string]any); ok {
			addr, _ := p["addr"].(string)
			n, _ := p["len"].(float64)
			return canonScalar(addr + "/" + strconv.Itoa(int(n))), nil
		}
		if r, ok := v["range"].([]any); ok && len(r) == 2 {
			lo, err := canonPart(r[0])
			if err != nil {
				return "", err
			}
			hi, err := canonPart(r[1])
			if err != nil {
				return "", err
			}
			return canonRange(lo, hi), nil
		}
		if c, ok := v["concat"].([]any); ok {
			parts := make([]string, len(c))
			for i, x := range c {
				p, err := canonPart(x)
				if err != nil {
					return "", err
				}
				parts[i] = p
			}
			return strings.Join(parts, " . "), nil
		}
	}
	return "", fmt.Errorf("element %v not understood", v)
}

// canonScalar writes an address or prefix one way: a full-length prefix as
// its address, other prefixes masked. Anything else stays as it is.
func canonScalar(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String()
		}
		return p.Masked().String()
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		return canonRange(canonScalar(lo), canonScalar(hi))
	}
	return s
}

// canonRange writes lo-hi as one value where it is one, as a prefix where
// it is exactly one, else as lo-hi.
func canonRange(lo, hi string) string {
	if lo == hi {
		return lo
	}
	a, errA := netip.ParseAddr(lo)
	z, errZ := netip.ParseAddr(hi)
	if errA == nil && errZ == nil {
		for bits := 0; bits <= a.BitLen(); bits++ {
			p := netip.PrefixFrom(a, bits)
			if p.Masked().Addr() == a && lastAddr(p) == z {
				return canonScalar(p.String())
			}
		}
	}
	return lo + "-" + hi
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// desiredElems returns the canonical elements of each set and map of d,
// and for each the text weft writes for it (to add it back).
func desiredElems(d *desired) (map[string][]string, map[string]map[string][]string) {
	canon := map[string][]string{}
	write := map[string]map[string][]string{}
	for name, s := range d.sets {
		if s.kind == logSources {
			continue // filled by packets, not by weft
		}
		keys, _ := setKeyDiff(nil, s)
		w := make(map[string][]string, len(keys))
		c := make([]string, 0, len(keys))
		for _, k := range keys {
			parts := make([]string, len(k))
			for i, p := range k {
				parts[i] = canonScalar(p)
			}
			text := strings.Join(parts, " . ")
			c = append(c, text)
			w[text] = k
		}
		slices.Sort(c)
		canon[name], write[name] = c, w
	}
	for name, m := range d.maps {
		c := make([]string, 0, len(m.elems))
		for _, e := range m.elems {
			c = append(c, e.addr.String()+" : jump "+e.chain)
		}
		slices.Sort(c)
		canon[name] = c
	}
	return canon, write
}

// Verify compares table inet weft in the kernel with what Apply wrote last
// (see the comment at the top of this file) and, with repair, writes one
// transaction that puts back exactly what differs: missing or extra
// elements, chains whose rules changed (flushed and refilled), objects
// added or removed. When an object's definition changed, or the table is
// gone, the repair rewrites the whole table, as Forget does.
func (b *Backend) Verify(ctx context.Context, repair bool) ([]backend.Drift, error) {
	// Read beside Apply, compared under the lock (see backend.ReadBeside).
	got, err := backend.ReadBeside(&b.mu, &b.writes, func() error {
		if b.applied == nil || b.baseline == nil {
			return errors.New("nftables: nothing applied yet to compare the kernel with")
		}
		return nil
	}, func() (*kernelView, error) { return b.readKernel(ctx, false) })
	if err != nil {
		if errors.Is(err, backend.ErrBusy) {
			err = fmt.Errorf("nftables: %w", err)
		}
		return nil, err
	}
	defer b.mu.Unlock()
	if got == nil {
		drift := []backend.Drift{{Kind: "table", Object: "inet " + tableName, Change: "missing"}}
		if repair {
			return drift, b.rewriteAll(ctx)
		}
		return drift, nil
	}
	var drift []backend.Drift
	rewrite := false // a definition changed: only a full sync can fix it
	rechain := map[string]bool{}
	for _, key := range sortedKeys(union(b.baseline.structure, got.structure)) {
		want, have := b.baseline.structure[key], got.structure[key]
		kind, name, _ := strings.Cut(key, " ")
		switch {
		case want == nil:
			drift = append(drift, backend.Drift{Kind: kind, Object: name, Change: "extra"})
			rewrite = true
		case have == nil:
			drift = append(drift, backend.Drift{Kind: kind, Object: name, Change: "missing"})
			rewrite = true
		case want[0] != have[0]:
			drift = append(drift, backend.Drift{Kind: kind, Object: name, Change: "changed", Detail: "definition"})
			rewrite = true
		case kind == "chain":
			if d := backend.SequenceDrift(name, want[1:], have[1:], ruleSummary); len(d) > 0 {
				drift = append(drift, b.ruleTexts(ctx, name, d)...)
				rechain[name] = true
			}
		}
	}
	wantElems, writeKeys := desiredElems(b.applied)
	type elemFix struct {
		name          string
		missing, more []string
	}
	var fixes []elemFix
	for _, name := range sortedKeys(wantElems) {
		have, ok := got.elems[name]
		if !ok {
			continue // the object itself is missing: reported above
		}
		missing, more := diffSorted(have, wantElems[name], strings.Compare)
		kind := "element"
		if b.applied.maps[name] != nil {
			kind = "map-element"
		}
		for _, e := range missing {
			drift = append(drift, backend.Drift{Kind: kind, Object: name, Change: "missing", Detail: e})
		}
		for _, e := range more {
			drift = append(drift, backend.Drift{Kind: kind, Object: name, Change: "extra", Detail: e})
		}
		if len(missing)+len(more) > 0 {
			fixes = append(fixes, elemFix{name, missing, more})
		}
	}
	if !repair || len(drift) == 0 {
		return drift, nil
	}
	if rewrite {
		return drift, b.rewriteAll(ctx)
	}
	tx := b.nft.NewTransaction()
	for _, f := range fixes {
		if m := b.applied.maps[f.name]; m != nil {
			for _, e := range f.more {
				key, _, _ := strings.Cut(e, " : ")
				tx.Delete(&knftables.Element{Map: f.name, Key: []string{key}})
			}
			var add []mapElem
			for _, e := range m.elems {
				if slices.Contains(f.missing, e.addr.String()+" : jump "+e.chain) {
					add = append(add, e)
				}
			}
			writeMapElements(tx, false, f.name, add, b.batch)
			continue
		}
		more := make([][]string, len(f.more))
		for i, e := range f.more {
			more[i] = strings.Split(e, " . ")
		}
		writeSetElements(tx, true, f.name, more, b.batch)
		missing := make([][]string, len(f.missing))
		for i, e := range f.missing {
			missing[i] = writeKeys[f.name][e]
		}
		writeSetElements(tx, false, f.name, missing, b.batch)
	}
	for _, name := range sortedKeys(rechain) {
		tx.Flush(&knftables.Chain{Name: name})
		addRules(tx, name, b.applied.chains[name].rules)
	}
	if err := b.nft.Run(ctx, tx); err != nil {
		b.applied = nil
		return drift, fmt.Errorf("nftables: repair what changed behind weft's back: %s (the next sync rewrites the whole table)", explainError(err, tx.String()))
	}
	if len(rechain) > 0 {
		if err := b.takeBaseline(ctx); err != nil {
			return drift, err
		}
	}
	return drift, nil
}

// ruleTexts rewrites the details of a chain's rule drift in nft's words: a
// missing rule as weft wrote it, an extra one as nft lists it now. Where
// that cannot be done the JSON summary stays.
func (b *Backend) ruleTexts(ctx context.Context, chain string, drift []backend.Drift) []backend.Drift {
	var listed []string
	if out, err := b.list(ctx, "list", "chain", "inet", tableName, chain); err == nil {
		listed = chainRuleLines(string(out))
	}
	for i, d := range drift {
		var n int
		if _, err := fmt.Sscanf(d.Detail, "rule %d:", &n); err != nil || n < 1 {
			continue
		}
		switch {
		case d.Change == "missing" && b.applied.chains[chain] != nil && n <= len(b.applied.chains[chain].rules):
			r := b.applied.chains[chain].rules[n-1]
			drift[i].Detail = fmt.Sprintf("rule %d: %s", n, r.rule)
			if r.comment != "" {
				drift[i].Detail += fmt.Sprintf(" comment %q", r.comment)
			}
		case d.Change == "extra" && n <= len(listed):
			drift[i].Detail = fmt.Sprintf("rule %d: %s", n, listed[n-1])
		}
	}
	return drift
}

// chainRuleLines returns the rule lines of `nft list chain` output: the
// lines inside the chain's braces but its hook and comment lines.
func chainRuleLines(out string) []string {
	var rules []string
	depth := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(line, "{"):
			depth++
		case line == "}":
			depth--
		case depth == 2 && line != "" && !strings.HasPrefix(line, "type ") && !strings.HasPrefix(line, "comment \""):
			rules = append(rules, line)
		}
	}
	return rules
}

// ruleSummary shortens a rule's canonical JSON for a drift line: its
// comment when it has one, else its expressions.
func ruleSummary(canon string) string {
	var r struct {
		Comment string `json:"comment"`
		Expr    any    `json:"expr"`
	}
	if json.Unmarshal([]byte(canon), &r) == nil {
		if r.Comment != "" {
			return strconv.Quote(r.Comment)
		}
		if s := canonJSON(r.Expr); len(s) <= 200 {
			return s
		}
		return canonJSON(r.Expr)[:200] + "…"
	}
	return canon
}

// rewriteAll replaces the whole table with what was applied last.
func (b *Backend) rewriteAll(ctx context.Context) error {
	tx := b.nft.NewTransaction()
	var st SyncStats
	writeFull(tx, b.applied, &st, b.batch)
	if err := b.nft.Run(ctx, tx); err != nil {
		b.applied = nil
		return fmt.Errorf("nftables: rewrite the table changed behind weft's back: %s", explainError(err, tx.String()))
	}
	return b.takeBaseline(ctx)
}

// refreshBaseline updates the baseline after an apply from prev to want:
// the chains the apply wrote and the objects it added as nft reads them
// now, the rest as before — so a change made behind weft's back in a chain
// the apply left alone is still found. A full apply takes it all anew.
func (b *Backend) refreshBaseline(ctx context.Context, prev, want *desired, full bool) {
	old := b.baseline
	if err := b.takeBaseline(ctx); err != nil {
		b.log.Warn("nftables: could not read back the rules just written; drift checks wait for the next sync", "error", err)
		return
	}
	if full || old == nil || prev == nil {
		return
	}
	read := b.baseline
	merged := &kernelView{structure: map[string][]string{}}
	keep := func(key string, unchanged bool) {
		if o, ok := old.structure[key]; ok && unchanged {
			merged.structure[key] = o
		} else if r, ok := read.structure[key]; ok {
			merged.structure[key] = r
		}
	}
	for name, c := range want.chains {
		o := prev.chains[name]
		keep("chain "+name, o != nil && slices.Equal(o.rules, c.rules))
	}
	for name := range want.sets {
		keep("set "+name, prev.sets[name] != nil)
	}
	for name := range want.maps {
		keep("map "+name, prev.maps[name] != nil)
	}
	b.baseline = merged
}

// takeBaseline records nft's reading of the chains, rules and object
// definitions weft just wrote.
func (b *Backend) takeBaseline(ctx context.Context) error {
	if b.list == nil {
		return nil
	}
	v, err := b.readKernel(ctx, true)
	if err != nil {
		b.baseline = nil
		return err
	}
	if v == nil {
		b.baseline = nil
		return fmt.Errorf("nftables: table inet %s is gone right after weft wrote it", tableName)
	}
	b.baseline = v
	return nil
}

func union[V any](a, b map[string]V) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// Lookup reads table inet weft back and says, for each address, which
// group the dispatch maps send it to and which other sets hold it.
func (b *Backend) Lookup(ctx context.Context, addrs []netip.Addr) ([]backend.AddressView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	got, err := b.readKernel(ctx, false)
	if err != nil {
		return nil, err
	}
	views := make([]backend.AddressView, len(addrs))
	for i, a := range addrs {
		v := backend.AddressView{Addr: a.String(), Groups: []string{}, Sets: []string{}}
		if got != nil {
			for _, name := range sortedKeys(got.elems) {
				for _, e := range got.elems[name] {
					key, verdict, isMap := strings.Cut(e, " : ")
					if !backend.ElementHolds(key, a) {
						continue
					}
					if isMap {
						dir := "ingress"
						if strings.HasPrefix(name, "egress") {
							dir = "egress"
						}
						_, group, _ := strings.Cut(verdict, " ")
						v.Groups = append(v.Groups, dir+" "+group)
					} else if !slices.Contains(v.Sets, name) {
						v.Sets = append(v.Sets, name)
					}
				}
			}
		}
		views[i] = v
	}
	return views, nil
}
