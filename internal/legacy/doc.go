// Package legacy tells operators about the pre-v1 NetworkPolicy isolation
// annotation. Before networking.k8s.io/v1, a namespace turned on default
// deny for ingress with the annotation
// net.beta.kubernetes.io/network-policy: {"ingress":{"isolation":"DefaultDeny"}},
// and weave-npc enforced it. Kubernetes dropped it with v1, and weft does
// not enforce it: a namespace that relies on it is open. weft says so once
// per namespace, with the v1 policy that does the same.
package legacy
