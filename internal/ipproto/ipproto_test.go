package ipproto

import (
	"strconv"
	"testing"
)

func TestTable(t *testing.T) {
	for p := 0; p < 256; p++ {
		want := p == 6 || p == 17 || p == 132
		if got := HasPorts(uint8(p)); got != want {
			t.Errorf("HasPorts(%d) = %v, want %v", p, got, want)
		}
		name := Name(uint8(p))
		switch p {
		case 1, 6, 17, 132:
			if _, err := strconv.Atoi(name); err == nil {
				t.Errorf("Name(%d) = %q, want a name", p, name)
			}
		default:
			if name != strconv.Itoa(p) {
				t.Errorf("Name(%d) = %q, want %q", p, name, strconv.Itoa(p))
			}
		}
	}
}
