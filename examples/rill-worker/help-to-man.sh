#!/usr/bin/env bash
# help-to-man.sh RILL_WORKER OUT — writes rill-worker(1) (man(7) macros) to OUT from
# `RILL_WORKER --help` and `--version`, so the man page says what the binary does and
# never drifts from it. The --help layout it reads:
#   "usage: ..." first; a description paragraph; "Built-in computations:" and its rows;
#   "Options:" with "  --flag ARGS   text" rows (continuations indented further, and
#   two-space notes that are not flags); then free text whose "Output on stderr:",
#   "SIGINT or SIGTERM:" and "Exit status:" paragraphs become sections.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 <rill-worker> <out>" >&2
    exit 2
fi
help=$("$1" --help)
version=$("$1" --version | awk '{print $NF; exit}')
printf '%s\n' "$help" | awk -v version="$version" '
# Roff escapes: backslashes first, then hyphens (so that --flag stays ASCII in
# copy-and-paste), and a leading dot or quote that roff would take for a request.
function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    if (s ~ /^[.'\'']/)
        s = "\\&" s
    return s
}
function trim(s) { sub(/^ +/, "", s); sub(/ +$/, "", s); return s }
BEGIN { sect = "head" }
NR == 1 {
    sub(/^usage: /, "")
    print ".TH RILL\\-WORKER 1 \"\" \"rill " version "\" \"User Commands\""
    print ".SH NAME"
    print "rill\\-worker \\- run a rill stream\\-processing worker"
    print ".SH SYNOPSIS"
    print ".B rill\\-worker"
    print "[\\fIoptions\\fR]"
    print ".SH DESCRIPTION"
    sect = "desc"
    next
}
/^$/ { if (sect != "opts") print ".PP"; next }
/^Built-in computations:/ { print ".SS \"Built\\-in computations\""; sect = "comps"; next }
/^Options:/ { print ".SH OPTIONS"; sect = "opts"; next }
sect == "comps" && /^  [0-9]/ {
    # "  1  passthrough  text": the id and name as the tag
    line = $0; sub(/^ +/, "", line)
    id = line; sub(/ .*/, "", id)
    rest = line; sub(/^[0-9]+ +/, "", rest)
    name = rest; sub(/ .*/, "", name)
    text = rest; sub(/^[^ ]+ +/, "", text)
    print ".TP"; print ".B " id " " esc(name); print esc(text); next
}
sect == "opts" && /^  --/ {
    # "  --flag ARGS    text": the text starts in column 23, so the tag ends at a run of
    # two or more spaces before it, or at the one space there (a 19-character tag), or,
    # for a longer tag, at the first run of two or more spaces after it.
    line = substr($0, 3)
    tag = line; text = ""
    gap = match(line, /   *[^ ]/) ? RSTART : 0
    if (gap && gap <= 20) {
        tag = substr(line, 1, gap - 1); text = substr(line, gap + RLENGTH - 1)
    } else if (substr(line, 20, 1) == " " && substr(line, 19, 1) != " ") {
        tag = substr(line, 1, 19); text = substr(line, 21)
    } else if (gap) {
        tag = substr(line, 1, gap - 1); text = substr(line, gap + RLENGTH - 1)
    }
    print ".TP"; print ".B " esc(trim(tag)); if (text != "") print esc(text); next
}
sect == "opts" && /^  [^ ]/ { print ".PP"; print esc(trim($0)); next }
sect == "opts" && /^      / { print esc(trim($0)); next }
sect == "opts" && /^[^ ]/ { sect = "tail" }
sect == "tail" && /^Output on stderr:/ { print ".SH OUTPUT"; print esc($0); next }
sect == "tail" && /^SIGINT or SIGTERM:/ { print ".SH SIGNALS"; print esc($0); next }
sect == "tail" && /^Exit status:/ {
    print ".SH \"EXIT STATUS\""
    sub(/^Exit status: */, ""); n = split($0, st, /, /)
    for (i = 1; i <= n; i++) {
        s = st[i]; sub(/\.$/, "", s)
        code = s; sub(/ .*/, "", code); what = s; sub(/^[0-9]+ /, "", what)
        print ".TP"; print ".B " code; print esc(what)
    }
    next
}
{ print esc(trim($0)) }
END {
    print ".SH \"SEE ALSO\""
    print "The protocol, operations and API documents in the rill source tree:"
    print ".IR docs/protocol.md ,"
    print ".IR docs/operations.md ,"
    print ".IR docs/c\\-api.md ."
}
' >"$2"
