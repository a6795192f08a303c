// Command weft-lab runs weft's cluster-in-a-box: `weft-lab demo` is
// `make demo` (the three-tier story, then teardown), `weft-lab up` keeps a
// lab with weft running until Ctrl-C. See main.go for the flags.
package main
