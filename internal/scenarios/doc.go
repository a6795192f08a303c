// Package scenarios is weft's catalogue of NetworkPolicy test scenarios on the
// standard model of the Kubernetes network policy tests: namespaces x, y and z
// (labelled ns=<name>), each with pods a, b and c (labelled pod=<name>) that
// serve TCP and UDP on ports 80 and 81 through container ports named
// serve-80-tcp, serve-81-tcp, serve-80-udp and serve-81-udp. Pods a and b run
// on node-1, pods c on node-2, and every pod has an IPv4 and an IPv6 address.
//
// A Scenario is a set of NetworkPolicy objects, optional changes to the model,
// and for each probe (protocol, port, IP family) the reachability Matrix that
// the NetworkPolicy specification demands. Matrices are written by hand as
// text (see ParseMatrix) and never computed by the code they check.
//
// The package has no dependency on weft's own code, so the policy evaluator
// tests, the compiler tests, the real-kernel end-to-end suite and the demo all
// run the same scenarios: build the objects with Scenario.Model, apply
// Scenario.Policies, probe every (from, to) pair of each Probe.Expect and
// compare the result with Diff.
package scenarios
