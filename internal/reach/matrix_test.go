package reach

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMatrix(t *testing.T) {
	m, err := ParseMatrix(`
	        x/a x/b node-1
	x/a      .   X    .
	node-1   .X.
	`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"x/a", "node-1"}, m.From); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"x/a", "x/b", "node-1"}, m.To); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"x/a", "x/a", true}, {"x/a", "x/b", false}, {"x/a", "node-1", true},
		{"node-1", "x/a", true}, {"node-1", "x/b", false}, {"node-1", "node-1", true},
	} {
		got, ok := m.Allowed(c.from, c.to)
		if !ok || got != c.want {
			t.Errorf("Allowed(%s, %s) = %v, %v; want %v, true", c.from, c.to, got, ok, c.want)
		}
	}
	if _, ok := m.Allowed("x/b", "x/a"); ok {
		t.Errorf("Allowed of a row the matrix lacks: ok = true")
	}
	if a, b := m.Count(); a != 4 || b != 2 {
		t.Errorf("Count() = %d allowed, %d blocked; want 4, 2", a, b)
	}
}

func TestParseMatrixErrors(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"empty", "  \n \n", "empty"},
		{"no rows", "x/a x/b", "no rows"},
		{"short row", "x/a x/b\nx/a .", "1 cells, want 2"},
		{"long row", "x/a x/b\nx/a . . X", "3 cells, want 2"},
		{"bad cell", "x/a x/b\nx/a . x", `cell 'x'`},
		{"duplicate column", "x/a x/a\nx/b . .", "column x/a appears twice"},
		{"duplicate row", "x/a x/b\nx/b X .\nx/b X .", "row x/b appears twice"},
		{"blocked from itself", "x/a x/b\nx/a X .", "cannot block access to itself"},
		{"header missing", "x/a . X\nx/b X .", "looks like cells"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMatrix(c.text)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseMatrix error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	want := MustParseMatrix("x/a x/b\nx/a . .\nx/b X .")
	if d := Diff(want, want.Clone()); d != "" {
		t.Errorf("Diff of equal matrices = %q, want empty", d)
	}
	got := want.Clone()
	got.Set("x/a", "x/b", false)
	got.Set("x/b", "x/a", true)
	d := Diff(want, got)
	for _, s := range []string{
		"2 of 4 cells differ",
		"x/a -> x/b: want allowed, got blocked",
		"x/b -> x/a: want blocked, got allowed",
		"X*",
		".*",
	} {
		if !strings.Contains(d, s) {
			t.Errorf("Diff does not say %q:\n%s", s, d)
		}
	}
	if a, _ := want.Allowed("x/a", "x/b"); !a {
		t.Errorf("Set on a clone changed the original")
	}
	other := NewMatrix([]string{"x/a"}, []string{"x/a", "x/b"}, true)
	if d := Diff(want, other); !strings.Contains(d, "different endpoints") {
		t.Errorf("Diff of differently shaped matrices = %q, want a shape report", d)
	}
}

func TestMatrixSetUnknownCellPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Set of a cell the matrix lacks did not panic")
		}
	}()
	NewMatrix([]string{"x/a"}, []string{"x/a"}, true).Set("x/a", "y/a", false)
}

func TestMatrixChangesAndEqual(t *testing.T) {
	before := MustParseMatrix(`
     x/a x/b
x/a   .   .
x/b   X   .
`)
	after := MustParseMatrix(`
     x/a x/b
x/a   .   X
x/b   .   .
`)
	want := "    x/a x/b\nx/a  .   -\nx/b  +   .\n"
	if got := Changes(before, after); got != want {
		t.Errorf("Changes:\n%q\nwant\n%q", got, want)
	}
	if before.Equal(after) || !after.Equal(after.Clone()) {
		t.Error("Equal is wrong")
	}
	if other := NewMatrix([]string{"x/a"}, []string{"x/a"}, true); other.Equal(before) {
		t.Error("matrices of other endpoints are not equal")
	}
}
