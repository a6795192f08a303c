// Package cni is the wire protocol between the weft-cni plugin and the weft
// daemon on the same node.
//
// The container runtime runs weft-cni for every pod sandbox it sets up or
// tears down. The plugin tells the local weft the pod's identity and addresses
// over a unix socket and, on ADD, waits until weft says the pod's isolation is
// programmed, so that a pod a policy selects never sends or receives a packet
// before its rules exist ("never open").
//
// One request per connection: the client writes one JSON [Request], the server
// answers with one JSON [Response] and closes the connection. [Serve] is the
// daemon's side, [Call] the plugin's; the daemon supplies a [Handler] that does
// the work.
package cni
