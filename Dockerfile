# weft's image: weft and weft-cni, static, on a small Debian with the packet
# filter tools weft runs (iptables, ipset, nft) and conntrack.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t REGISTRY/weft:VERSION .
#
# deploy/weft.yaml runs /usr/local/bin/weft and /usr/local/bin/weft-cni from it.

FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: static binaries, independent of the runtime image's libc
# (weft-cni is copied onto the node and run there by the container runtime).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/weft ./cmd/weft \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/weft-cni ./cmd/weft-cni

FROM debian:trixie-slim
# iptables brings both variants (iptables-nft and iptables-legacy); weft
# picks the one holding the node's rules (--iptables-mode auto).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ipset nftables conntrack \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/weft /out/weft-cni /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["run"]
