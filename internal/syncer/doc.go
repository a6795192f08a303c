// Package syncer is weft's level-triggered loop: when the cluster view
// changes, it takes a snapshot, compiles the node's whole desired ruleset and
// hands it to the backend, which applies it atomically. Bursts of changes
// coalesce; syncs are rate-bounded; failures retry with exponential backoff
// and never leave a partial state (the backend keeps the previous ruleset).
package syncer
