// Package reach holds the reachability matrix — for every source (row) and
// destination (column), whether a new connection is allowed — and its text
// form, the one the Kubernetes network policy e2e suite prints ('.' connects,
// 'X' blocked). The scenario catalogue writes its expected matrices in it,
// the lab fills it by probing, and `weft matrix` and the demo print it, with
// the cells a change flips marked.
package reach
