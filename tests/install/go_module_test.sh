#!/usr/bin/env bash
# go_module_test.sh BUILD_DIR IO_URING_PROBE REPO — the Go package as a user consumes it:
# `cmake --install BUILD_DIR --prefix P` into a temporary prefix, then tests/install/goapp
# (its own module, outside rill's tree, importing rill.dev/rill) built offline the two
# ways docs/go-api.md documents, with PKG_CONFIG_PATH=P/lib/pkgconfig:
#   - a replace directive to the checkout's api/go, default link: librill.a inside the
#     binary, which runs with no LD_LIBRARY_PATH and needs no librill.so
#   - a go.work file using the checkout's api/go, -tags rill_dynamic: the binary needs
#     P's librill.so and runs with LD_LIBRARY_PATH=P/lib
# Prints PASS/FAIL per check and "go module: N passed, N failed"; exits 1 on any failure,
# 77 when io_uring is unavailable (the app cannot run).
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 <build-dir> <io_uring_probe> <repo>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
REPO=$(cd "$3" && pwd)
"$2" install
case $? in
0) ;;
77) exit 77 ;;
*) exit 1 ;;
esac
if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/lib/go-1.23/bin/go ]; then
        export PATH="/usr/lib/go-1.23/bin:$PATH"
    else
        echo "go_module_test: no Go toolchain (scripts/setup installs golang-1.23-go)" >&2
        exit 1
    fi
fi
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(cd "$(dirname "$0")" && pwd)/../lib/check.sh" # check, check_summary
runs()
{
    "$1" | grep -q '^app: ok ' || { "$1"; return 1; }
}

P=$T/prefix
check "cmake --install into a temporary prefix" cmake --install "$BUILD" --prefix "$P"
PC=$(dirname "$(find "$P" -name rill-static.pc | head -1)")
LIB=$(dirname "$PC")
# Offline, as a user without network access would build: nothing is downloaded.
export PKG_CONFIG_PATH=$PC GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
unset LD_LIBRARY_PATH GOWORK GOFLAGS
# Go's build cache never looks at librill or its headers: the documented key makes it
# notice this install (its place and its files).
key=$( (echo "$P"; cat "$LIB/librill.a" "$LIB/librill.so" "$P/include/rill/rill.h") | sha256sum | cut -c1-16)
export CGO_CFLAGS="-O2 -g -DRILL_LIB_HASH=$key"

A=$T/replace
mkdir -p "$A" && cp "$HERE/goapp/main.go" "$A/"
cat >"$A/go.mod" <<MOD
module example.com/rillapp

go 1.21

require rill.dev/rill v0.0.0

replace rill.dev/rill => $REPO/api/go
MOD
check "replace directive: go build (default: static librill)" \
    sh -c "cd '$A' && go build -o app ."
check "static: the binary needs no librill.so" sh -c "test -x '$A/app' && ! ldd '$A/app' | grep -q librill"
check "static: runs without LD_LIBRARY_PATH" runs "$A/app"

B=$T/work
mkdir -p "$B" && cp "$HERE/goapp/main.go" "$B/"
printf 'module example.com/rillapp\n\ngo 1.21\n' >"$B/go.mod"
printf 'go 1.21\n\nuse (\n\t.\n\t%s/api/go\n)\n' "$REPO" >"$B/go.work"
check "go.work: go build -tags rill_dynamic" \
    sh -c "cd '$B' && go build -tags rill_dynamic -o app ."
check "rill_dynamic: the binary needs the installed librill.so" \
    sh -c "LD_LIBRARY_PATH='$LIB' ldd '$B/app' | grep -q '$LIB/librill.so'"
check "rill_dynamic: runs with LD_LIBRARY_PATH=prefix/lib" \
    env LD_LIBRARY_PATH="$LIB" "$B/app"
check_summary "go module"
