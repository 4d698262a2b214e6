#!/usr/bin/env bash
# abi_test.sh LIBRILL_SO ABI_LIST — librill exports exactly the functions api/abi.txt lists,
# under the SONAME it lists, so that no release drops or adds a symbol by accident:
# a removal without a SOVERSION bump, an internal function leaking out, or a new one
# nobody meant to make public (docs/versioning.md).
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 <librill.so> <abi.txt>" >&2
    exit 2
fi
LIB=$1
LIST=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0
want_soname=$(sed -n 's/^soname //p' "$LIST")
soname=$(readelf -d "$LIB" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "$want_soname" ]; then
    echo "FAIL SONAME is '$soname', $LIST says '$want_soname'"
    failed=1
else
    echo "PASS SONAME $soname"
fi
grep -v '^#' "$LIST" | grep -v '^soname ' | grep . | sort >"$T/want"
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TWDBRiu]$/ {print $3}' | sort >"$T/have"
missing=$(comm -23 "$T/want" "$T/have")
extra=$(comm -13 "$T/want" "$T/have")
if [ -n "$missing" ]; then
    echo "FAIL exported no more (an ABI break: bump SOVERSION, or restore them):"
    printf '    %s\n' $missing
    failed=1
else
    echo "PASS every listed function is exported ($(wc -l <"$T/want"))"
fi
if [ -n "$extra" ]; then
    echo "FAIL exported but not in $LIST (add deliberate additions; internal ones must stay hidden):"
    printf '    %s\n' $extra
    failed=1
else
    echo "PASS nothing else is exported"
fi
bad=$(grep -v '^rill_[a-z]' "$T/have")
if [ -n "$bad" ]; then
    echo "FAIL exported names outside the rill_ prefix:"
    printf '    %s\n' $bad
    failed=1
else
    echo "PASS every exported name starts with rill_"
fi
exit $failed
