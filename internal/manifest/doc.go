// Package manifest reads Kubernetes manifests from files and folders
// (multi-document YAML or JSON, List objects) into the Namespaces, Pods,
// Nodes, NetworkPolicies and ClusterNetworkPolicies weft understands, for
// weft explain and weft matrix; objects of other kinds are listed as
// Ignored. Errors name the file and the document; an unquoted YAML 1.1
// boolean (y, no, on, ...) where the API wants a string is refused with the
// field and the fix, instead of silently becoming "true" or "false".
// Objects.WhatIf puts what-if manifests on top of a cluster's objects.
package manifest
