// Package scenarios is weft's catalogue of NetworkPolicy test scenarios on the
// standard model of the Kubernetes network policy tests: namespaces x, y and z
// (labelled ns=<name>), each with pods a, b and c (labelled pod=<name>) that
// serve TCP and UDP on ports 80 and 81 through container ports named
// serve-80-tcp, serve-81-tcp, serve-80-udp and serve-81-udp. Pods a and b run
// on node-1, pods c on node-2, and every pod has an IPv4 and an IPv6 address
// (see NewModel for the address plan).
//
// A Scenario is a set of NetworkPolicy objects, optional changes to the model
// (Setup), and for each probe (protocol, port, IP family) the reachability
// reach.Matrix that the NetworkPolicy specification demands. Matrices are written by
// hand as text (see reach.ParseMatrix) and never computed by the code they check.
//
// The package depends on no other weft package but reach (the matrix), so the evaluator and
// compiler tests, the real-kernel end-to-end suite and the demo run the same
// scenarios. A runner does, for each scenario of All:
//
//	m := sc.Model()                 // fresh objects: m.Namespaces, m.Pods, m.Nodes
//	// create m's objects and sc.Policies (or build a snapshot of them)
//	for _, p := range sc.Probes {
//		got := reach.NewMatrix(p.Expect.From, p.Expect.To, false)
//		for _, from := range p.Expect.From {
//			for _, to := range p.Expect.To {
//				src, _ := m.Endpoint(from)
//				dst, _ := m.Endpoint(to)
//				// connect from src to dst's address of p.Family with
//				// p.Protocol on p.Port; record whether it got through
//				got.Set(from, to, connected)
//			}
//		}
//		if d := reach.Diff(p.Expect, got); d != "" { /* fail with d */ }
//	}
//
// Rows and columns name pods ("namespace/name") and sometimes nodes ("node-1"):
// every pod of the model is a row and a column; nodes appear where a scenario
// is about node traffic. A NodeEndpoint sends from the node's root network
// namespace, a HostNetworkEndpoint too (it has its node's addresses). The
// diagonal is always allowed: a pod cannot block access to itself.
// Scenario.Errors lists the errors weft must report for policies it cannot
// understand. SCTP probes need SCTP sockets; a runner without them skips
// those probes and says so.
package scenarios
