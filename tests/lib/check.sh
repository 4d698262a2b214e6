# The PASS/FAIL lines of the shell tests. Sourced (bash).
#
# check WHAT CMD [ARGS...]: runs CMD with its output captured; prints "PASS WHAT", or
# "FAIL WHAT" and the last 20 lines of the output. Counts in pass and failed.
# check_summary NAME: prints "NAME: N passed, N failed"; true when none failed.
pass=0
failed=0

check()
{
    local what=$1 out
    shift
    out=$(mktemp "${TMPDIR:-/tmp}/check.XXXXXX")
    if "$@" >"$out" 2>&1; then
        echo "PASS $what"
        pass=$((pass + 1))
    else
        echo "FAIL $what"
        sed 's/^/    /' "$out" | tail -20
        failed=$((failed + 1))
    fi
    rm -f "$out"
}

check_summary()
{
    echo "$1: $pass passed, $failed failed"
    [ "$failed" -eq 0 ]
}
