package iptables

import (
	"fmt"
	"os/exec"
	"strings"
)

// Mode is the iptables variant weft drives: iptables-nft (the nf_tables
// kernel API) or iptables-legacy (the x_tables API).
type Mode string

// The modes. ModeAuto picks the variant that holds the node's existing rules.
const (
	ModeAuto   Mode = "auto"
	ModeNFT    Mode = "nft"
	ModeLegacy Mode = "legacy"
)

// ParseMode reads auto, nft or legacy ("" means auto).
func ParseMode(s string) (Mode, error) {
	switch Mode(strings.ToLower(s)) {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeNFT:
		return ModeNFT, nil
	case ModeLegacy:
		return ModeLegacy, nil
	}
	return "", fmt.Errorf("unknown iptables mode %q: want auto, nft or legacy", s)
}

// DetectMode decides between iptables-nft and iptables-legacy from what each
// variant's save command printed (all tables, both families, concatenated):
// the one holding more rules is the one the node uses; with no rules in
// either, nft. It returns the mode and why, for the log.
func DetectMode(legacySave, nftSave string) (Mode, string) {
	legacy, nft := countRules(legacySave), countRules(nftSave)
	switch {
	case legacy > nft:
		return ModeLegacy, fmt.Sprintf("iptables-legacy holds %d rules, iptables-nft %d", legacy, nft)
	case nft > 0:
		return ModeNFT, fmt.Sprintf("iptables-nft holds %d rules, iptables-legacy %d", nft, legacy)
	}
	return ModeNFT, "no rules in either variant: nft is the default"
}

func countRules(save string) int {
	n := 0
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A ") {
			n++
		}
	}
	return n
}

// toolset names the binaries of one mode.
type toolset struct {
	save, restore, list [2]string // per family: IPv4, IPv6; list is iptables itself
}

func toolsFor(m Mode) toolset {
	return toolset{
		save:    [2]string{"iptables-" + string(m) + "-save", "ip6tables-" + string(m) + "-save"},
		restore: [2]string{"iptables-" + string(m) + "-restore", "ip6tables-" + string(m) + "-restore"},
		list:    [2]string{"iptables-" + string(m), "ip6tables-" + string(m)},
	}
}

// missing returns the binaries of names that are not on PATH.
func missing(names ...string) []string {
	var out []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			out = append(out, n)
		}
	}
	return out
}

func (t toolset) all() []string {
	return []string{t.save[0], t.restore[0], t.list[0], t.save[1], t.restore[1], t.list[1]}
}

// MissingToolsError says which binaries weft needs and did not find.
type MissingToolsError struct {
	Missing []string
}

func (e *MissingToolsError) Error() string {
	return fmt.Sprintf("iptables backend: %s not found on PATH: install them with `apt-get install iptables ipset` (Debian, Ubuntu) or run hack/install-deps.sh",
		strings.Join(e.Missing, ", "))
}
