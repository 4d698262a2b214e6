#!/usr/bin/env bash
# install_test.sh BUILD_DIR — rill as a user consumes it: `cmake --install BUILD_DIR
# --prefix P` into a temporary prefix, then tests/install/app.c built outside the tree
#   - with pkg-config, shared: cc app.c $(pkg-config --cflags --libs rill)
#   - with pkg-config, static: cc -static app.c $(pkg-config --static --cflags --libs rill)
#   - with CMake: find_package(rill), rill::rill and rill::rill_static
# and each run (a worker on a loopback port runs a frame sent to it). The prefix is
# chosen at install time, so rill.pc must be relocatable and rillConfig.cmake must find
# every dependency of the static library itself.
# Prints PASS/FAIL per check and "install: N passed, N failed"; exits 1 on any failure,
# 77 when io_uring is unavailable (the app cannot run).
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 <build-dir> <io_uring_probe>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
"$2" install
case $? in
0) ;;
77) exit 77 ;;
*) exit 1 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
failed=0
check()
{
    local what=$1
    shift
    if "$@" >"$T/out" 2>&1; then
        echo "PASS $what"
        pass=$((pass + 1))
    else
        echo "FAIL $what"
        sed 's/^/    /' "$T/out" | tail -20
        failed=$((failed + 1))
    fi
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
}

P=$T/prefix
check "cmake --install into a prefix chosen at install time" \
    cmake --install "$BUILD" --prefix "$P"
PC=$(dirname "$(find "$P" -name rill.pc | head -1)")
LIB=$(dirname "$PC")
export PKG_CONFIG_PATH=$PC
check "rill.pc names the install prefix" \
    test "$(cd "$(pkg-config --variable=includedir rill)" && pwd)" = "$P/include"

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
echo "install: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
