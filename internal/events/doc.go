// Package events reports policies weft cannot fully understand as
// Kubernetes Events (type Warning, reason PolicyNotUnderstood) on the
// policy, so that `kubectl describe` and `kubectl events` show them beside
// the policy, not only in the logs of every node.
//
// Every node's weft sees the same problems, but the cluster gets one Event
// per problem, not one per node:
//
//   - One writer per policy, chosen by rendezvous hashing of the policy over
//     the Node names of the snapshot: every weft computes the same ranking
//     without talking to the others. The first ranked node writes at once;
//     the second writes only after BackupDelay, in case the first one's
//     weft is not running. The others never write.
//   - The Event's name is derived from the policy (name and UID) and the
//     problem (field and message), so every writer creates the same object:
//     the API server accepts the first create and answers AlreadyExists to
//     the rest. Two wefts that disagree on the node list for a moment, or
//     the backup after the writer, make no second Event.
//
// Writes are rate-limited (a token bucket per weft) and each problem is
// created again only every Resend while it lasts, which brings it back
// after the API server has expired the Event (--event-ttl, 1 h by default).
// weft only creates Events (events.k8s.io/v1): it never reads, updates or
// deletes them.
package events
