package lab

import (
	"fmt"
	"strings"
)

// Cell marks in a matrix's text.
const (
	markConnects = '.'
	markBlocked  = 'X'
)

// Matrix is a reachability matrix: for each source (row) and destination
// (column), whether a connection got through. Its text form has a header of
// destination names, then one line per source with '.' for connects and 'X'
// for blocked:
//
//	    x/a x/b
//	x/a  .   X
//	x/b  .   .
type Matrix struct {
	From []string
	To   []string
	ok   [][]bool
}

// NewMatrix returns a matrix with every cell blocked.
func NewMatrix(from, to []string) *Matrix {
	m := &Matrix{From: append([]string(nil), from...), To: append([]string(nil), to...)}
	m.ok = make([][]bool, len(from))
	for i := range m.ok {
		m.ok[i] = make([]bool, len(to))
	}
	return m
}

// AllConnect returns a matrix in which every cell connects.
func AllConnect(from, to []string) *Matrix {
	m := NewMatrix(from, to)
	for i := range m.ok {
		for j := range m.ok[i] {
			m.ok[i][j] = true
		}
	}
	return m
}

func index(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// Set records whether from reaches to. It panics on names the matrix lacks:
// that is a bug in the caller.
func (m *Matrix) Set(from, to string, connects bool) {
	i, j := index(m.From, from), index(m.To, to)
	if i < 0 || j < 0 {
		panic(fmt.Sprintf("lab: matrix has no cell %s -> %s", from, to))
	}
	m.ok[i][j] = connects
}

// Connects reports whether from reaches to; false for unknown names.
func (m *Matrix) Connects(from, to string) bool {
	i, j := index(m.From, from), index(m.To, to)
	return i >= 0 && j >= 0 && m.ok[i][j]
}

// Equal reports whether both matrices have the same names in the same order
// and the same cells.
func (m *Matrix) Equal(o *Matrix) bool {
	if m == nil || o == nil {
		return m == o
	}
	if strings.Join(m.From, "\x00") != strings.Join(o.From, "\x00") || strings.Join(m.To, "\x00") != strings.Join(o.To, "\x00") {
		return false
	}
	for i := range m.ok {
		for j := range m.ok[i] {
			if m.ok[i][j] != o.ok[i][j] {
				return false
			}
		}
	}
	return true
}

// String renders the matrix as text; ParseMatrix reads it back.
func (m *Matrix) String() string {
	return m.render(func(i, j int) byte {
		if m.ok[i][j] {
			return markConnects
		}
		return markBlocked
	})
}

func (m *Matrix) render(cell func(i, j int) byte) string {
	rowWidth := 0
	for _, n := range m.From {
		rowWidth = max(rowWidth, len(n))
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", rowWidth))
	for _, n := range m.To {
		b.WriteString(" ")
		b.WriteString(n)
	}
	b.WriteString("\n")
	for i, from := range m.From {
		b.WriteString(from)
		b.WriteString(strings.Repeat(" ", rowWidth-len(from)))
		for j, to := range m.To {
			// The mark sits under the middle of the column's name.
			pad := len(to) / 2
			b.WriteString(" ")
			b.WriteString(strings.Repeat(" ", pad))
			b.WriteByte(cell(i, j))
			b.WriteString(strings.Repeat(" ", len(to)-pad-1))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ParseMatrix reads a matrix from its text form: a header line of
// destination names, then one line per source: its name and one mark per
// destination ('.' connects, 'X' or 'x' blocked), separated by blanks.
// Blank lines are ignored.
func ParseMatrix(text string) (*Matrix, error) {
	var lines [][]string
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	if len(lines) < 2 {
		return nil, fmt.Errorf("parse matrix: need a header of destinations and at least one source line, got %d non-empty lines", len(lines))
	}
	to := lines[0]
	var from []string
	for _, l := range lines[1:] {
		from = append(from, l[0])
	}
	m := NewMatrix(from, to)
	for i, l := range lines[1:] {
		if len(l)-1 != len(to) {
			return nil, fmt.Errorf("parse matrix: row %q has %d marks, the header names %d destinations", l[0], len(l)-1, len(to))
		}
		for j, mark := range l[1:] {
			switch mark {
			case string(markConnects):
				m.ok[i][j] = true
			case string(markBlocked), "x":
			default:
				return nil, fmt.Errorf("parse matrix: row %q column %q: mark %q is neither '.' (connects) nor 'X' (blocked)", l[0], to[j], mark)
			}
		}
	}
	return m, nil
}

// MustParseMatrix is ParseMatrix for matrices written in code; it panics on
// a malformed one.
func MustParseMatrix(text string) *Matrix {
	m, err := ParseMatrix(text)
	if err != nil {
		panic(err)
	}
	return m
}

// Changes renders after with every cell that differs from before marked:
// '+' connects now but did not before, '-' is blocked now but connected
// before. Unchanged cells show '.' or 'X'. Both matrices must have the same
// names; otherwise Changes says so.
func Changes(before, after *Matrix) string {
	if strings.Join(before.From, " ") != strings.Join(after.From, " ") || strings.Join(before.To, " ") != strings.Join(after.To, " ") {
		return fmt.Sprintf("matrices have different pods:\nbefore:\n%safter:\n%s", before, after)
	}
	return after.render(func(i, j int) byte {
		switch {
		case after.ok[i][j] && !before.ok[i][j]:
			return '+'
		case !after.ok[i][j] && before.ok[i][j]:
			return '-'
		case after.ok[i][j]:
			return markConnects
		}
		return markBlocked
	})
}

// Diff explains how got differs from want, or returns "" when they are equal.
func Diff(want, got *Matrix) string {
	if want.Equal(got) {
		return ""
	}
	return fmt.Sprintf("want:\n%sgot:\n%sdifference ('+' connects but should be blocked, '-' blocked but should connect):\n%s",
		want, got, Changes(want, got))
}
