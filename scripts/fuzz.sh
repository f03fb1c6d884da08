#!/usr/bin/env bash
# Bounded libFuzzer run of the block decoders (msgpack and JSON) under ASan+UBSan,
# seeded with Go Conduit's fixture blocks. Fails on any crash or sanitizer report.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30; env FUZZ_SECONDS too)
# Needs clang (Debian's clang + libclang-rt-14-dev, in scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-30}}
fixtures=${CONDUIT_FIXTURES:-../shared/fixtures/conduit-blocks}
build=build-fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$build/build.ninja" ]; then
  CXX=clang++ CC=clang meson setup "$build" --wrap-mode=nodownload -Dfuzz=true -Dtests=false \
    -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$build" -j"${JOBS:-2}" fuzz/fuzz_block_msgpack fuzz/fuzz_block_json

# Seeds: the fixture blocks (msgpack) and small JSON blocks.
mkdir -p "$work/msgpack" "$work/json"
if [ -d "$fixtures" ]; then
  for f in "$fixtures"/*_block.msgp.gz; do
    gunzip -c "$f" >"$work/msgpack/$(basename "$f" .gz)"
  done
else
  echo "fuzz.sh: no fixtures at $fixtures; starting from an empty corpus" >&2
fi
cat >"$work/json/block.json" <<'JSON'
{
  "block": {"fees": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAVIOOBQA", "gen": "net-v1",
            "gh": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAM=", "rnd": 7, "tc": 12},
  "payset": [
    {"hgi": true, "sig": "AAAA", "txn": {"amt": 5, "fee": 1000, "grp": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
     "rcv": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ", "note": "aGk=",
     "snd": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ", "type": "pay"},
     "dt": {"gd": {"k": {"at": 1, "bs": "v\udc80"}}, "ld": {"0": {}}, "lg": ["log"],
            "itx": [{"txn": {"type": "appl", "apaa": ["AQ=="], "apid": 3}}]}}
  ],
  "delta": {"Creatables": {"12": {"Creator": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ"}},
            "Txids": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=": {"Intra": 1, "LastValid": 9}},
            "KvMods": {"bx:\u0000\udcff": {"Data": "AQI=", "OldData": null}}, "PrevTimestamp": -5},
  "cert": {"rnd": 7, "prop": {"dig": "AQ=="}, "vote": [{"snd": "AQ==", "sig": {"s": "AQ=="}}]}
}
JSON
echo '{"block": {"rnd": 1}}' >"$work/json/min.json"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for target in msgpack json; do
  echo "== fuzz_block_$target for ${seconds}s"
  mkdir -p "$work/artifacts-$target"
  rc=0
  "$build/fuzz/fuzz_block_$target" "$work/$target" \
    -max_total_time="$seconds" -max_len=$((512 * 1024)) -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts-$target/" >"$work/$target.log" 2>&1 || rc=$?
  tail -n 12 "$work/$target.log"
  if [ "$rc" -ne 0 ] || compgen -G "$work/artifacts-$target/*" >/dev/null; then
    grep -m1 -A30 "ERROR\|runtime error" "$work/$target.log" >&2 || true
    mkdir -p fuzz-artifacts
    cp "$work/artifacts-$target/"* fuzz-artifacts/ 2>/dev/null || true
    echo "fuzz.sh: fuzz_block_$target found a crash; inputs copied to fuzz-artifacts/" >&2
    exit 1
  fi
done
echo "fuzz.sh: no crash, no sanitizer report"
