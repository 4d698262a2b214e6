#!/usr/bin/env bash
# man_page_test.sh RILL_WORKER MAN_PAGE — the generated rill-worker(1) is well-formed and
# complete: groff formats it without a warning, it names every flag --help lists (each
# as a tagged paragraph), the version --version prints, and the exit statuses.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 <rill-worker> <rill-worker.1>" >&2
    exit 2
fi
W=$1
PAGE=$2
. "$(cd "$(dirname "$0")" && pwd)/../lib/check.sh" # check, check_summary
command -v groff >/dev/null || { echo "man_page_test: groff missing (scripts/setup installs groff-base)" >&2; exit 1; }
warnings=$(groff -man -Tutf8 -ww -z "$PAGE" 2>&1)
check "groff -man -ww formats it without warnings" test -z "$warnings"
[ -z "$warnings" ] || printf '    %s\n' "$warnings"
flags=$("$W" --help | sed -n 's/^  \(--[a-z-]*\).*/\1/p' | sort -u)
check "--help lists flags" test "$(printf '%s\n' "$flags" | wc -l)" -ge 20
missing=""
for f in $flags; do
    esc=$(printf '%s' "$f" | sed 's/-/\\\\-/g')
    grep -q "^\.B $esc\( \|$\)" "$PAGE" || missing="$missing $f"
done
check "every flag of --help has its own paragraph" test -z "$missing"
[ -z "$missing" ] || echo "    missing:$missing"
version=$("$W" --version | awk '{print $NF; exit}')
check "the page carries the version ($version)" grep -q "^\.TH RILL\\\\-WORKER 1 \"\" \"rill $version\"" "$PAGE"
for s in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS '"EXIT STATUS"'; do
    check "section $s" grep -q "^\.SH $s\$" "$PAGE"
done
check "exit status 3 (the drain dropped frames)" sh -c "grep -A2 '^\.B 3\$' '$PAGE' | grep -q 'drain dropped frames'"
check_summary "man page"
