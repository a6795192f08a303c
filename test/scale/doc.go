// Package scale is weft's end-to-end scale benchmark (`make bench-scale`):
// a one-node lab (internal/lab: real etcd, kube-apiserver and kernel
// netfilter) whose API server is loaded with a generated cluster
// (internal/clustergen.Scale) at three scales:
//
//	S1    1,000 pods /    100 namespaces /    200 policies,  60 local pods
//	S2   10,000 pods /  1,000 namespaces /  2,000 policies,  60 local pods
//	S3  100,000 pods / 10,000 namespaces / 10,000 policies, 100 local pods
//
// The local pods are real (network namespaces on node-1 serving TCP); the
// others are API objects only, Running with addresses on 19 other nodes
// that exist as Node objects. weft runs on node-1 with each backend and the
// benchmark measures, by probes between the real pods: start → enforcing,
// API write → enforced for policy create and delete and pod relabel in and
// out (also under background churn of 50 writes a second), peak RSS, CPU
// seconds and the size of the ruleset in force.
//
// Run as root: `make bench-scale` (every scale and backend) or
// `make bench-scale SCALE=S2 BACKEND=nftables`, i.e.
// `go test -run '^$' -bench 'Scale/S2/nftables' -benchtime 1x ./test/scale/`.
// WEFT_SCALE_CHANGES sets the changes timed per kind (default 40, at least 30
// for figures worth quoting). `go test` without -bench runs only the pure
// checks of the plan, never the lab.
package scale
