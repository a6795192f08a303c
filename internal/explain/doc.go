// Package explain says in plain words why the policy evaluator allowed or
// blocked a flow: which policies isolate which pod, which rule allows, or that
// none does. `weft explain` prints it; the blocked-connection log uses the
// one-line Summary.
package explain
