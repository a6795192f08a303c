// Package clustergen makes clusters for tests and benchmarks: random clusters
// and policies that exercise every corner of NetworkPolicy (for differential
// tests of the compiler and the backends against the evaluator), and large,
// realistic clusters for benchmarks. Everything is deterministic for a seed.
package clustergen
