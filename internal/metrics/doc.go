// Package metrics exports weft's Prometheus metrics: syncs and their cost,
// the size of the ruleset in force, readiness and policy problems.
package metrics
