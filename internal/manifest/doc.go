// Package manifest reads Kubernetes manifests from files and folders
// (multi-document YAML or JSON, List objects) into the Namespaces, Pods and
// NetworkPolicies weft understands, for offline use such as `weft explain
// --files`. Errors name the file and the document.
package manifest
