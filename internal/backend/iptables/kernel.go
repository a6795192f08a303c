package iptables

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftnet/weft/internal/ir"
)

// parseFilter reads the *filter section of iptables-save output and returns
// what of it is weft's: its chains with their rules, and the rules of
// FORWARD and INPUT that jump into them.
func parseFilter(save string) (*table, error) {
	t := newTable()
	in := false
	seen := map[string]bool{} // built-in chains whose first rule was read
	isHook := map[string]bool{}
	for _, h := range builtinChains {
		isHook[h] = true
	}
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			in = line == "*filter"
			continue
		case !in:
			continue
		case line == "COMMIT":
			in = false
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if ownedChain(name) {
				if _, ok := t.chains[name]; !ok {
					t.chains[name] = []string{}
				}
			}
		case strings.HasPrefix(line, "-A "):
			fields, err := splitRule(line)
			if err != nil || len(fields) < 2 {
				return nil, fmt.Errorf("iptables-save line %d %q: cannot read it: %v", n, line, err)
			}
			chain := fields[1]
			if ownedChain(chain) {
				t.chains[chain] = append(t.chains[chain], line)
				continue
			}
			if !isHook[chain] {
				continue
			}
			first := !seen[chain]
			seen[chain] = true
			if first {
				t.front[chain] = line
			}
			if ownedChain(ruleTarget(fields)) {
				if first {
					t.hookFirst[chain] = true
				}
				spec := strings.TrimPrefix(line, "-A "+chain+" ")
				t.hooks[chain] = append(t.hooks[chain], spec)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read iptables-save output: %w", err)
	}
	for _, h := range builtinChains {
		if len(t.hooks[h]) != 1 {
			t.hookFirst[h] = false
		}
	}
	return t, nil
}

// ruleTarget returns the chain or target a rule jumps or goes to.
func ruleTarget(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" || fields[i] == "-g" || fields[i] == "--jump" || fields[i] == "--goto" {
			return fields[i+1]
		}
	}
	return ""
}

// splitRule splits a saved rule into words the way iptables-restore does:
// double quotes group words, a backslash escapes the next character.
func splitRule(line string) ([]string, error) {
	var (
		out    []string
		cur    strings.Builder
		quoted bool
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '"':
			quoted = !quoted
			inWord = true
		case (c == ' ' || c == '\t') && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// parseSetSave reads `ipset save` output and returns weft's sets with their
// type, family, capacity and members, written as the renderer writes them.
func parseSetSave(save string) (map[string]*ipset, error) {
	sets := map[string]*ipset{}
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !ownedSet(f[1]) {
			continue
		}
		switch f[0] {
		case "create":
			s := &ipset{Name: f[1], Type: f[2], Family: ir.IPv4}
			for i := 3; i+1 < len(f); i++ {
				switch f[i] {
				case "family":
					if f[i+1] == "inet6" {
						s.Family = ir.IPv6
					}
				case "maxelem":
					s.MaxElem, _ = strconv.Atoi(f[i+1])
				case "hashsize":
					s.HashSize, _ = strconv.Atoi(f[i+1])
				}
			}
			sets[s.Name] = s
		case "add":
			s := sets[f[1]]
			if s == nil {
				return nil, fmt.Errorf("ipset save line %d: element of set %s before the set", n, f[1])
			}
			m, err := canonMember(s.Type, f[2])
			if err != nil {
				return nil, fmt.Errorf("ipset save line %d: set %s: %w", n, f[1], err)
			}
			s.Members = append(s.Members, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ipset save output: %w", err)
	}
	return sets, nil
}

// canonMember writes a set element as the renderer does (and as ipset lists
// it): addresses and prefixes in their canonical text, a prefix of a single
// address as that address, then ",proto:port" for the types with a port.
func canonMember(typ, m string) (string, error) {
	addr, rest, _ := strings.Cut(m, ",")
	if rest != "" {
		rest = "," + rest
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.String() + rest, nil
	}
	if p, err := netip.ParsePrefix(addr); err == nil && typ != "hash:ip" && typ != "hash:ip,port" {
		if p.Masked().IsSingleIP() {
			return p.Addr().String() + rest, nil
		}
		return p.Masked().String() + rest, nil
	}
	return "", fmt.Errorf("element %q is not a %s element weft writes", m, typ)
}
