// Package e2e is weft's end-to-end suite: weft runs on the nodes of a real
// lab (internal/lab: etcd, kube-apiserver, pods as network namespaces, the
// real kernel) and the tests probe which connections get through.
//
// One suite, parametrised by backend: TestBackends runs every scenario of the
// catalogue (internal/scenarios) and the stories of stories_test.go (changes
// over time: policy create/update/delete, label changes, pods re-created with
// a reused IP, the three-tier demo) once with `weft run --backend iptables`
// and once with `--backend nftables`. The package's benchmarks measure
// enforcement latency, full-sync time and connection rate on the same lab.
//
// Run: `make e2e` or `go test ./test/e2e/` as root, after hack/install-deps.sh
// and hack/build-kube-apiserver.sh. Without root or those, the tests skip and
// say which is missing.
package e2e
