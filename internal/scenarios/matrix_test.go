package scenarios

import (
	"testing"

	"github.com/weftnet/weft/internal/reach"
)

// TestMatrixStringRoundTrip reads back the text form of every expected matrix.
func TestMatrixStringRoundTrip(t *testing.T) {
	for _, s := range All() {
		for _, p := range s.Probes {
			back, err := reach.ParseMatrix(p.Expect.String())
			if err != nil {
				t.Fatalf("%s %s: String() does not parse: %v\n%s", s.Name, p.ProbeKey, err, p.Expect)
			}
			if d := reach.Diff(p.Expect, back); d != "" {
				t.Fatalf("%s %s: round trip changed the matrix:\n%s", s.Name, p.ProbeKey, d)
			}
		}
	}
}
