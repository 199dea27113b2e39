#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: builds build/keychest-lined_<version>_<arch>.deb with nfpm (a Go
# module run with go run: no Debian build tools needed), and prints its path.
#   packaging/build-deb.sh VERSION     VERSION is make's, from git describe
# The binary is built again, stripped, with the same stamp; it links the C
# library (cgo), and the package depends on the newest glibc symbol
# version it uses. keychest-amp is built the same way and goes in too;
# keychest-agent is static (CGO off; a Go PIE would need the dynamic loader).
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0
version=${1:?usage: packaging/build-deb.sh VERSION}

# debian_version turns git describe into a Debian version, which must start
# with a digit: v1.2.3 -> 1.2.3, v1.2.3-4-gabc-dirty -> 1.2.3+4.gabc.dirty,
# and without a tag abc1234 -> 0.0.0+git.abc1234.
debian_version() {
	local v=$1 base rest
	if [[ $v =~ ^v?[0-9]+\.[0-9]+ ]]; then
		v=${v#v}
	else
		v=0.0.0+git.$v
	fi
	base=${v%%-*} rest=${v#"${v%%-*}"}
	[ -z "$rest" ] && { echo "$base"; return; }
	rest=${rest#-}
	case $base in
	*+*) echo "$base.${rest//-/.}" ;;
	*) echo "$base+${rest//-/.}" ;;
	esac
}

out=build/deb
rm -rf "$out"
mkdir -p "$out/bin" "$out/doc"
CGO_ENABLED=1 go build -trimpath -buildmode=pie -ldflags "-s -w -X main.version=$version -extldflags=-Wl,-z,relro,-z,now" -o "$out/bin/keychest-lined" ./cmd/keychest-lined
if [ -d cmd/keychest-amp ]; then
	CGO_ENABLED=1 go build -trimpath -buildmode=pie -ldflags "-s -w -X main.version=$version -extldflags=-Wl,-z,relro,-z,now" -o "$out/bin/keychest-amp" ./cmd/keychest-amp
fi
if [ -d cmd/keychest-agent ]; then
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/bin/keychest-agent" ./cmd/keychest-agent
fi
"$out/bin/keychest-lined" env-template >"$out/keychest-lined.default"

DEB_VERSION=$(debian_version "$version")
DEB_ARCH=$(go env GOARCH)
GLIBC_MIN=$(objdump -T "$out"/bin/keychest-lined "$out"/bin/keychest-amp | grep -o 'GLIBC_[0-9.]*' | cut -d_ -f2 | sort -uV | tail -n 1)
export DEB_VERSION DEB_ARCH GLIBC_MIN
cp README.md docs/operations.md docs/protocol.md docs/log-codes.md docs/amp.md docs/agent.md packaging/copyright "$out/doc/"
printf '%s\n' \
	"keychest-lined ($DEB_VERSION) unstable; urgency=medium" "" \
	"  * Built from $version; see the project's git history." "" \
	" -- KeyChest team <keychest@keychest.net>  $(date -uR -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" |
	gzip -n -9 >"$out/doc/changelog.gz"

deb=build/keychest-lined_${DEB_VERSION}_$(dpkg --print-architecture 2>/dev/null || echo "$DEB_ARCH").deb
rm -f "$deb"
go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
