package iptables

import (
	"bufio"
	"fmt"
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

// parseSetHeaders reads `ipset list -t` output and returns weft's sets, with
// their type, family and capacity; their members are unknown.
func parseSetHeaders(list string) (map[string]*ipset, error) {
	sets := map[string]*ipset{}
	var cur *ipset
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch key {
		case "Name":
			cur = nil
			if ownedSet(value) {
				cur = &ipset{Name: value}
				sets[value] = cur
			}
		case "Type":
			if cur != nil {
				cur.Type = value
			}
		case "Header":
			if cur == nil {
				continue
			}
			words := strings.Fields(value)
			for i := 0; i+1 < len(words); i++ {
				switch words[i] {
				case "family":
					cur.Family = ir.IPv4
					if words[i+1] == "inet6" {
						cur.Family = ir.IPv6
					}
				case "maxelem":
					cur.MaxElem, _ = strconv.Atoi(words[i+1])
				case "hashsize":
					cur.HashSize, _ = strconv.Atoi(words[i+1])
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ipset list output: %w", err)
	}
	return sets, nil
}
