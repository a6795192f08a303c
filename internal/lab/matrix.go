package lab

import "github.com/weftnet/weft/internal/reach"

// Matrix is the reachability matrix of the scenario catalogue ('.' connects,
// 'X' blocked; rows are sources, columns destinations): the lab fills it by
// probing, so expected and probed matrices are one type.
type Matrix = reach.Matrix

// allConnect returns a matrix of ids in which every cell connects.
func allConnect(ids []string) *Matrix { return reach.NewMatrix(ids, ids, true) }

// connects reports whether m lets from reach to; false for unknown names.
func connects(m *Matrix, from, to string) bool {
	ok, known := m.Allowed(from, to)
	return ok && known
}
