#!/usr/bin/env bash
# Builds a pinned, real kube-apiserver from the Go module proxy into a cache outside the repo.
# Idempotent: a cached binary is reused. The first build takes 12-20 minutes on 2 cores.
#
#   WEFT_CACHE_DIR   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/weft)
#   KUBE_VERSION     k8s.io/kubernetes version (default v1.37.2)
#
# Prints the path of the binary on its last line.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
cache=${WEFT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft}
bin="$cache/kube-apiserver-$KUBE_VERSION"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "hack/build-kube-apiserver: cached $("$bin" --version)" >&2
  echo "$bin"
  exit 0
fi
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "hack/build-kube-apiserver: go is not on PATH (install Go 1.26 from the Go distribution)" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/build-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

staging_version="v0.${KUBE_VERSION#v1.}"
proxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -v -e '^direct$' -e '^off$' | head -n1)
echo "hack/build-kube-apiserver: fetching k8s.io/kubernetes $KUBE_VERSION go.mod" >&2
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" > dl.json 2>/dev/null || true
gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' dl.json)
[ -n "$gomod" ] && [ -f "$gomod" ] || { echo "hack/build-kube-apiserver: cannot download k8s.io/kubernetes@$KUBE_VERSION from $proxy" >&2; exit 1; }

{
  echo "module weft.local/kube-apiserver-build"
  echo
  sed -n 's/^go \(.*\)/go \1/p' "$gomod"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$gomod" | sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
GO
echo "hack/build-kube-apiserver: resolving modules (go mod tidy)" >&2
GOFLAGS=-mod=mod go mod tidy -e >&2
echo "hack/build-kube-apiserver: building kube-apiserver $KUBE_VERSION (12-20 minutes on 2 cores the first time)" >&2
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin.tmp" "$bin"
echo "hack/build-kube-apiserver: built $("$bin" --version)" >&2
echo "$bin"
