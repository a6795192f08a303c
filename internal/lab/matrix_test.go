package lab

import (
	"strings"
	"testing"
)

func TestMatrixTextRoundTrip(t *testing.T) {
	m := NewMatrix([]string{"x/a", "y/bb"}, []string{"x/a", "y/bb", "z/c"})
	m.Set("x/a", "x/a", true)
	m.Set("x/a", "z/c", true)
	m.Set("y/bb", "y/bb", true)
	text := m.String()
	want := "     x/a y/bb z/c\n" +
		"x/a   .    X   . \n" +
		"y/bb  X    .   X \n"
	if text != want {
		t.Fatalf("String():\n%q\nwant\n%q", text, want)
	}
	back, err := ParseMatrix(text)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(m) {
		t.Fatalf("parsed back:\n%s\nwant:\n%s", back, m)
	}
	if !m.Connects("x/a", "z/c") || m.Connects("y/bb", "z/c") || m.Connects("nope", "x/a") {
		t.Fatal("Connects disagrees with the cells set")
	}
}

func TestParseMatrixErrors(t *testing.T) {
	for name, tc := range map[string]struct{ text, wantErr string }{
		"no rows":      {"a b", "at least one source line"},
		"short row":    {"a b\na .", `row "a" has 1 marks`},
		"unknown mark": {"a b\na . ?", `mark "?"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseMatrix(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseMatrix(%q) error = %v, want one containing %q", tc.text, err, tc.wantErr)
			}
		})
	}
}

func TestDiffMarksChangedCells(t *testing.T) {
	want := MustParseMatrix(`
	    a b c
	a   . X .
	b   . . X`)
	got := MustParseMatrix(`
	    a b c
	a   . . .
	b   X . X`)
	if d := Diff(want, want); d != "" {
		t.Fatalf("Diff of equal matrices = %q, want empty", d)
	}
	// Compare cell by cell, independent of spacing.
	lines := strings.Split(Changes(want, got), "\n")
	if strings.Join(strings.Fields(lines[1]), " ") != "a . + ." || strings.Join(strings.Fields(lines[2]), " ") != "b - . X" {
		t.Fatalf("Changes marks wrong cells:\n%s", Changes(want, got))
	}
	d := Diff(want, got)
	if !strings.Contains(d, "want:") || !strings.Contains(d, "got:") {
		t.Fatalf("Diff lacks want/got:\n%s", d)
	}
	other := NewMatrix([]string{"a"}, []string{"a"})
	if want.Equal(other) {
		t.Fatal("matrices with different names compare equal")
	}
}
