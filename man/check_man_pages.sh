#!/bin/sh
# Usage: check_man_pages.sh SOURCE_ROOT PAGE...
# Fails on any warning from groff or man while rendering each page, and on
# anything the code defines that conduit(1) or conduit.toml(5) leaves out.
set -eu
source_root=$1
shift
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

for page in "$@"; do
  warnings=$(groff -man -ww -z "$page" 2>&1) || fail "groff failed on $page"
  [ -z "$warnings" ] || fail "groff warnings in $page: $warnings"
  # man-db: -l renders a local file; --warnings passes -w warnings to groff.
  warnings=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null) ||
    fail "man -l failed on $page"
  [ -z "$warnings" ] || fail "man warnings in $page: $warnings"
  [ -n "$(MANWIDTH=80 man -l "$page" 2>/dev/null | grep -c NAME)" ] || fail "$page renders empty"
done

page_named() { for p in $PAGES; do case $p in */$1) echo "$p";; esac; done; }
PAGES="$*"
conduit1=$(page_named conduit.1)
toml5=$(page_named conduit.toml.5)
text1=$(MANWIDTH=200 man -l "$conduit1" 2>/dev/null)
text5=$(MANWIDTH=200 man -l "$toml5" 2>/dev/null)

# Journal MESSAGE_IDs defined by the daemon.
for id in $(grep -o 'k[A-Za-z]*StopId = "[0-9a-f]*"' "$source_root/src/service/daemon.cpp" |
            sed 's/.*"\(.*\)"/\1/'); do
  echo "$text1" | grep -q "$id" || fail "conduit(1) lacks MESSAGE_ID $id"
done

# Every long option the binary accepts.
if [ -n "${CONDUIT_BIN:-}" ]; then
  for cmd in "" init list plugin-check stop status; do
    for opt in $("$CONDUIT_BIN" $cmd --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u); do
      echo "$text1" | grep -q -- "$opt" || fail "conduit(1) lacks option $opt (conduit $cmd)"
    done
  done
fi

# Every top-level key read by the configuration parser.
for key in $(sed -n 's/.*top\.get_[a-z]*("\([a-z-]*\)".*/\1/p' "$source_root/src/core/config.cpp"); do
  echo "$text5" | grep -q -- "$key" || fail "conduit.toml(5) lacks key $key"
done

# Every stop reason token.
for reason in stop-requested importer-error processor-error exporter-error checkpoint-error \
              internal-error; do
  echo "$text1" | grep -q -- "$reason" || fail "conduit(1) lacks stop reason $reason"
done
exit $status
