#!/usr/bin/env bash
# install_test.sh BUILD_DIR IO_URING_PROBE cluster|no-cluster — rill as a user consumes
# it: `cmake --install BUILD_DIR --prefix P` into a temporary prefix, then
# tests/install/app.c built outside the tree
#   - with pkg-config, shared: cc app.c $(pkg-config --cflags --libs rill)
#   - with pkg-config, static: cc -static app.c $(pkg-config --static --cflags --libs rill)
#   - with CMake: find_package(rill), rill::rill and rill::rill_static
# and each run (a worker on a loopback port runs a frame sent to it). The prefix is
# chosen at install time, so rill.pc must be relocatable and rillConfig.cmake must find
# every dependency of the static library itself. The third argument is the build's
# RILL_CLUSTER: with cluster support the installed files name libzookeeper_mt; without
# it nothing installed needs it (librill.so, rill.pc, rillConfig.cmake, the programs).
# Prints PASS/FAIL per check and "install: N passed, N failed"; exits 1 on any failure,
# 77 when io_uring is unavailable (the app cannot run).
set -u
if [ $# -ne 3 ] || { [ "$3" != cluster ] && [ "$3" != no-cluster ]; }; then
    echo "usage: $0 <build-dir> <io_uring_probe> cluster|no-cluster" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
FLAVOUR=$3
"$2" install
case $? in
0) ;;
77) exit 77 ;;
*) exit 1 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(cd "$(dirname "$0")" && pwd)/../lib/check.sh" # check, check_summary
# no_zookeeper APP: without cluster support, a program loads no libzookeeper_mt at all.
no_zookeeper()
{
    [ "$FLAVOUR" = cluster ] || ! LD_LIBRARY_PATH=$LIB ldd "$1" 2>/dev/null | grep -qi zookeeper
}
# The app ran its frame, against the library it should have used.
runs()
{
    local app=$1 want=$2
    "$app" | grep -q '^app: ok ' || { "$app"; return 1; }
    case $want in
    shared) ldd "$app" | grep -q "$P/lib[^ ]*/librill.so" || { ldd "$app"; return 1; } ;;
    static) ! ldd "$app" 2>/dev/null | grep -q librill || { ldd "$app"; return 1; } ;;
    esac
    no_zookeeper "$app" || { echo "loads libzookeeper_mt:"; ldd "$app"; return 1; }
}

P=$T/prefix
check "cmake --install into a prefix chosen at install time" \
    cmake --install "$BUILD" --prefix "$P"
PC=$(dirname "$(find "$P" -name rill.pc | head -1)")
LIB=$(dirname "$PC")
export PKG_CONFIG_PATH=$PC
check "rill.pc names the install prefix" \
    test "$(cd "$(pkg-config --variable=includedir rill)" && pwd)" = "$P/include"

CFG=$(find "$P" -name rillConfig.cmake | head -1)
if [ "$FLAVOUR" = cluster ]; then
    check "rill.pc lists -lzookeeper_mt for static links" \
        sh -c "pkg-config --static --libs rill | grep -q -e -lzookeeper_mt"
    check "rillConfig.cmake finds ZooKeeper through the FindZooKeeper.cmake beside it" \
        sh -c "grep -q 'find_dependency(ZooKeeper)' '$CFG' && test -f '$(dirname "$CFG")/FindZooKeeper.cmake'"
else
    # Each reads its file first: a check that read nothing would pass for nothing.
    check "no cluster support: rill.pc does not name libzookeeper_mt" \
        sh -c "libs=\$(pkg-config --static --libs rill) && test -n \"\$libs\" && ! printf '%s' \"\$libs\" | grep -qi zookeeper"
    check "no cluster support: rillConfig.cmake looks for no ZooKeeper" \
        sh -c "test -f '$CFG' && ! grep -q 'ZooKeeper)' '$CFG' && ! test -e '$(dirname "$CFG")/FindZooKeeper.cmake'"
    check "no cluster support: the installed librill.so needs no libzookeeper_mt" \
        sh -c "readelf -d '$LIB/librill.so' | grep -q NEEDED && ! readelf -d '$LIB/librill.so' | grep -qi zookeeper"
fi

cd "$T"
check "pkg-config shared: builds" \
    sh -c "cc -Wall -o app_pc '$HERE/app.c' \$(pkg-config --cflags --libs rill)"
# Not in a system path: the loader is told where (docs/c-api.md says so too).
export LD_LIBRARY_PATH=$LIB
check "pkg-config shared: runs against the installed librill.so" runs ./app_pc shared
unset LD_LIBRARY_PATH
check "pkg-config --static: builds a static program" \
    sh -c "cc -Wall -static -o app_pc_static '$HERE/app.c' \$(pkg-config --static --cflags --libs rill)"
check "pkg-config --static: runs" runs ./app_pc_static static

check "CMake find_package(rill): configures" \
    cmake -S "$HERE" -B "$T/consumer" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release
check "CMake: builds rill::rill and rill::rill_static" cmake --build "$T/consumer"
check "CMake rill::rill: runs" runs "$T/consumer/app_shared" shared
check "CMake rill::rill_static: runs without librill.so" runs "$T/consumer/app_static" static
check_summary "install"
