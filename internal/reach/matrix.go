package reach

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Matrix is a reachability matrix: for every source (row, From) and
// destination (column, To), whether a new connection is allowed.
//
// Its text form, read by ParseMatrix and written by String, is a header line
// of destination names followed by one line per source: the source's name and
// one cell per destination, '.' for allowed and 'X' for blocked:
//
//	     x/a x/b x/c
//	x/a   .   X   .
//	x/b   .   .   .
//
// Cells may be separated by blanks or written together ("x/a .X."). Names are
// "namespace/pod" for pods and the node name for nodes.
type Matrix struct {
	From, To []string
	cells    [][]bool // [from][to], true = allowed
}

// NewMatrix returns a matrix with every cell set to allowed.
func NewMatrix(from, to []string, allowed bool) *Matrix {
	m := &Matrix{From: slices.Clone(from), To: slices.Clone(to), cells: make([][]bool, len(from))}
	for i := range m.cells {
		m.cells[i] = make([]bool, len(to))
		for j := range m.cells[i] {
			m.cells[i][j] = allowed
		}
	}
	return m
}

// ParseMatrix reads the text form (see Matrix). Blank lines and leading
// indentation are ignored. A source may not be blocked from itself: a pod
// cannot block access to itself.
func ParseMatrix(text string) (*Matrix, error) {
	var lines []string
	for l := range strings.Lines(text) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("matrix: empty")
	}
	to := strings.Fields(lines[0])
	if err := checkNames("column", to); err != nil {
		return nil, err
	}
	m := &Matrix{To: to}
	for _, l := range lines[1:] {
		fields := strings.Fields(l)
		from := fields[0]
		cells := strings.Join(fields[1:], "")
		if len(cells) != len(to) {
			return nil, fmt.Errorf("matrix: row %s has %d cells, want %d (one per column)", from, len(cells), len(to))
		}
		row := make([]bool, len(to))
		for j, c := range cells {
			switch c {
			case '.':
				row[j] = true
			case 'X':
				if to[j] == from {
					return nil, fmt.Errorf("matrix: row %s blocks itself: a pod cannot block access to itself", from)
				}
			default:
				return nil, fmt.Errorf("matrix: row %s: cell %q for %s, want '.' (allowed) or 'X' (blocked)", from, c, to[j])
			}
		}
		m.From = append(m.From, from)
		m.cells = append(m.cells, row)
	}
	if len(m.From) == 0 {
		return nil, fmt.Errorf("matrix: no rows")
	}
	if err := checkNames("row", m.From); err != nil {
		return nil, err
	}
	return m, nil
}

// MustParseMatrix is ParseMatrix for matrices written in code; it panics on
// a malformed matrix.
func MustParseMatrix(text string) *Matrix {
	m, err := ParseMatrix(text)
	if err != nil {
		panic(err)
	}
	return m
}

// Clone returns a copy that shares nothing with m.
func (m *Matrix) Clone() *Matrix {
	c := &Matrix{From: slices.Clone(m.From), To: slices.Clone(m.To), cells: make([][]bool, len(m.cells))}
	for i, row := range m.cells {
		c.cells[i] = slices.Clone(row)
	}
	return c
}

func checkNames(what string, names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if n == "." || n == "X" || strings.Trim(n, ".X") == "" {
			return fmt.Errorf("matrix: %s name %q looks like cells (is the header line missing?)", what, n)
		}
		if seen[n] {
			return fmt.Errorf("matrix: %s %s appears twice", what, n)
		}
		seen[n] = true
	}
	return nil
}

func (m *Matrix) index(from, to string) (int, int, bool) {
	i, j := slices.Index(m.From, from), slices.Index(m.To, to)
	return i, j, i >= 0 && j >= 0
}

// Allowed returns the cell for (from, to); ok is false when the matrix has
// no such row or column.
func (m *Matrix) Allowed(from, to string) (allowed, ok bool) {
	i, j, ok := m.index(from, to)
	if !ok {
		return false, false
	}
	return m.cells[i][j], true
}

// Set sets the cell for (from, to); it panics if the matrix has no such cell.
func (m *Matrix) Set(from, to string, allowed bool) {
	i, j, ok := m.index(from, to)
	if !ok {
		panic(fmt.Sprintf("matrix: no cell %s -> %s", from, to))
	}
	m.cells[i][j] = allowed
}

// Count returns the number of allowed and blocked cells.
func (m *Matrix) Count() (allowed, blocked int) {
	for _, row := range m.cells {
		for _, c := range row {
			if c {
				allowed++
			} else {
				blocked++
			}
		}
	}
	return allowed, blocked
}

func cell(allowed bool) string {
	if allowed {
		return "."
	}
	return "X"
}

// String returns the text form, aligned; ParseMatrix reads it back.
func (m *Matrix) String() string {
	return m.format(nil)
}

// format writes the matrix; mark, if set, flags cells with a '*'.
func (m *Matrix) format(mark func(i, j int) bool) string {
	return m.render(func(i, j int) string {
		c := cell(m.cells[i][j])
		if mark != nil && mark(i, j) {
			c += "*"
		}
		return c
	})
}

// render writes the matrix with each cell's text from cellText.
func (m *Matrix) render(cellText func(i, j int) string) string {
	rowWidth := 0
	for _, f := range m.From {
		rowWidth = max(rowWidth, len(f))
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", rowWidth))
	for _, t := range m.To {
		fmt.Fprintf(&b, " %s", t)
	}
	b.WriteByte('\n')
	for i, f := range m.From {
		fmt.Fprintf(&b, "%-*s", rowWidth, f)
		for j, t := range m.To {
			c := cellText(i, j)
			// Centre the cell under its column name.
			left := (len(t) + 1) / 2
			fmt.Fprintf(&b, " %*s%-*s", left, c, len(t)-left, "")
		}
		trimmed := strings.TrimRight(b.String(), " ")
		b.Reset()
		b.WriteString(trimmed)
		b.WriteByte('\n')
	}
	return b.String()
}

// Equal reports whether o has the same rows, columns and cells.
func (m *Matrix) Equal(o *Matrix) bool {
	if !slices.Equal(m.From, o.From) || !slices.Equal(m.To, o.To) {
		return false
	}
	for i := range m.cells {
		if !slices.Equal(m.cells[i], o.cells[i]) {
			return false
		}
	}
	return true
}

// Legend explains the text form's cells, for a title line.
const Legend = "rows connect to columns, '.' allowed, 'X' blocked"

// ChangesLegend explains the cells Changes marks, for a title line.
const ChangesLegend = "'-' blocked now, allowed before; '+' allowed now, blocked before"

// Changes renders after with the cells that differ from before marked: '+'
// allowed now but blocked before, '-' blocked now but allowed before.
// Unchanged cells show '.' or 'X'.
func Changes(before, after *Matrix) string {
	if !slices.Equal(before.From, after.From) || !slices.Equal(before.To, after.To) {
		return fmt.Sprintf("matrices have different endpoints:\nbefore:\n%safter:\n%s", before, after)
	}
	return after.render(func(i, j int) string {
		switch a, b := after.cells[i][j], before.cells[i][j]; {
		case a && !b:
			return "+"
		case !a && b:
			return "-"
		}
		return cell(after.cells[i][j])
	})
}

// Diff returns "" when got has the rows, columns and cells of want, and
// otherwise a readable report: the differing cells, one per line, and got
// with those cells marked '*'.
func Diff(want, got *Matrix) string {
	if !slices.Equal(want.From, got.From) || !slices.Equal(want.To, got.To) {
		return fmt.Sprintf("matrices have different endpoints:\nwant rows %v\n got rows %v\nwant columns %v\n got columns %v",
			want.From, got.From, want.To, got.To)
	}
	var b strings.Builder
	n := 0
	for i, f := range want.From {
		for j, t := range want.To {
			if w, g := want.cells[i][j], got.cells[i][j]; w != g {
				n++
				fmt.Fprintf(&b, "  %s -> %s: want %s, got %s\n", f, t, verdict(w), verdict(g))
			}
		}
	}
	if n == 0 {
		return ""
	}
	cells := len(want.From) * len(want.To)
	return fmt.Sprintf("%d of %d cells differ (rows: from, columns: to):\n%sgot ('*' marks a wrong cell):\n%s",
		n, cells, b.String(), got.format(func(i, j int) bool { return want.cells[i][j] != got.cells[i][j] }))
}

func verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "blocked"
}

// Cell is one cell of a matrix.
type Cell struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Allowed bool   `json:"allowed"`
}

// Changed returns the cells of after that differ from before, row by row;
// the matrices must have the same rows and columns (nil otherwise).
func Changed(before, after *Matrix) []Cell {
	if !slices.Equal(before.From, after.From) || !slices.Equal(before.To, after.To) {
		return nil
	}
	var out []Cell
	for i, f := range after.From {
		for j, t := range after.To {
			if a := after.cells[i][j]; a != before.cells[i][j] {
				out = append(out, Cell{From: f, To: t, Allowed: a})
			}
		}
	}
	return out
}

// matrixJSON is the JSON form: rows in the text form's cells ("." and "X").
type matrixJSON struct {
	From []string `json:"from"`
	To   []string `json:"to"`
	// Rows has one string per source, one character per destination.
	Rows []string `json:"rows"`
}

// MarshalJSON writes {"from": [...], "to": [...], "rows": [".X.", ...]}.
func (m *Matrix) MarshalJSON() ([]byte, error) {
	j := matrixJSON{From: m.From, To: m.To, Rows: make([]string, len(m.cells))}
	for i, row := range m.cells {
		var b strings.Builder
		for _, c := range row {
			b.WriteString(cell(c))
		}
		j.Rows[i] = b.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Matrix) UnmarshalJSON(data []byte) error {
	var j matrixJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if len(j.Rows) != len(j.From) {
		return fmt.Errorf("matrix: %d rows for %d sources", len(j.Rows), len(j.From))
	}
	out := NewMatrix(j.From, j.To, false)
	for i, row := range j.Rows {
		if len(row) != len(j.To) {
			return fmt.Errorf("matrix: row %s has %d cells, want %d", j.From[i], len(row), len(j.To))
		}
		for k, c := range row {
			switch c {
			case '.':
				out.cells[i][k] = true
			case 'X':
			default:
				return fmt.Errorf("matrix: row %s: cell %q, want '.' or 'X'", j.From[i], c)
			}
		}
	}
	*m = *out
	return nil
}
