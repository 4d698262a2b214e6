#!/usr/bin/env bash
# module_graph_test.sh SOURCE_DIR — the include graph between core/'s modules has no cycle,
# and docs/architecture.md's "Who includes whom" table lists exactly its edges.
# A module is a folder of core/; core/worker_internal.h (the config and worker structs)
# is the node "worker_internal" and the other files at core/'s top the node "worker".
set -u
src=${1:?usage: module_graph_test.sh SOURCE_DIR}
cd "$src" || exit 2
passed=0
failed=0
check() { # check NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
    fi
}

node_of() { # path relative to core/ -> module
    case "$1" in
    worker_internal.h) echo worker_internal ;;
    */*) echo "${1%%/*}" ;;
    *) echo worker ;;
    esac
}

edges=$(
    for f in $(cd core && ls ./*.[ch] ./*/*.[ch] | sed 's|^\./||'); do
        from=$(node_of "$f")
        sed -n 's/^#include "\([^"]*\)".*/\1/p' "core/$f" | while read -r inc; do
            case "$inc" in rill/*) continue ;; esac
            to=$(node_of "$inc")
            [ "$to" != "$from" ] && echo "$from $to"
        done
    done | sort -u
)
[ -n "$edges" ] || { echo "FAIL no includes found under core/"; exit 1; }

# tsort reports a loop on stderr; the graph must have none.
loops=$(echo "$edges" | tsort 2>&1 >/dev/null)
[ -z "$loops" ] || echo "$loops"
check "no include cycle between core/ modules ($(echo "$edges" | wc -l) edges)" "$([ -z "$loops" ]; echo $?)"

# The doc's table: | module | includes headers of | with comma-separated modules.
documented=$(
    awk '/^Who includes whom/ { on = 1 } on && /^\|/ { t = 1; print; next } t { exit }' \
        docs/architecture.md | grep '^| `' |
        sed 's/`//g' | awk -F'|' '{gsub(/ /, "", $2); n = split($3, to, ","); for (i = 1; i <= n; i++) { gsub(/ /, "", to[i]); if (to[i] != "" && to[i] != "—") print $2, to[i] } }' |
        sort -u
)
missing=$(comm -23 <(echo "$edges") <(echo "$documented"))
extra=$(comm -13 <(echo "$edges") <(echo "$documented"))
[ -z "$missing" ] || printf 'in the includes, not in docs/architecture.md: %s\n' "$(echo $missing)"
[ -z "$extra" ] || printf 'in docs/architecture.md, not in the includes: %s\n' "$(echo $extra)"
check "docs/architecture.md lists the include graph" "$([ -z "$missing$extra" ]; echo $?)"

echo "module_graph: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
