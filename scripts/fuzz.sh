#!/usr/bin/env bash
# Bounded libFuzzer run of the block decoders (msgpack and JSON), the configuration
# reader (conduit.toml), the checkpoint reader (metadata.json) and the Go conduit.yml
# converter (init --from-yaml) under ASan+UBSan,
# seeded with Go Conduit's fixture blocks and sample files. Fails on any crash or
# sanitizer report.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30; env FUZZ_SECONDS too)
#        FUZZ_RUNS=N scripts/fuzz.sh             (a fixed, seeded number of runs: what CI uses,
#                                                 so a run is reproducible and not time-dependent)
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
ninja -C "$build" -j"${JOBS:-2}" fuzz/fuzz_block_msgpack fuzz/fuzz_block_json fuzz/fuzz_config \
  fuzz/fuzz_checkpoint fuzz/fuzz_yaml_import

# Seeds: the fixture blocks (msgpack) and small JSON blocks.
mkdir -p "$work/msgpack" "$work/json" "$work/config" "$work/checkpoint" "$work/yaml_import"
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
# conduit.toml seeds: every key of the format, and the nesting shapes of issue 14.
cat >"$work/config/full.toml" <<'TOML'
log-level = "info"
retry-count = 10
retry-delay = "1s"
stop-timeout = "30s"
pid-file = ""
[api]
addr = "127.0.0.1:8981"
[metrics]
mode = "ON"
addr = "127.0.0.1:9999"
prefix = "conduit"
[importer]
name = "generator"
[importer.config]
txns-per-round = 10
[[processors]]
name = "filter_processor"
[processors.config]
search-inner = true
[[processors.config.filters]]
any = [ { tag = "txn.type", expression-type = "equal", expression = "pay" } ]
[exporter]
name = "file_writer"
[exporter.config]
block-dir = "/tmp/out"
filename-pattern = "%[1]d_block.json"
TOML
printf '[a.b.c.d]\nx.y.z = {a = {b = [[1], [2]]}}\ns = """ "[" %s """\n' "'''" >"$work/config/nesting.toml"
# metadata.json seeds.
printf '{"genesis-hash":"aGFzaA==","network":"mainnet","next-round":7,"telemetry-id":"x"}\n' \
  >"$work/checkpoint/metadata.json"
printf '{"next-round":18446744073709551615,"x":{"n":[1,2,{"k":null}]}}' >"$work/checkpoint/max.json"

# conduit.yml seeds: Go's shape with every top-level key, anchors and aliases
# (shared, cyclic, nested), and a small alias bomb.
cat >"$work/yaml_import/conduit.yml" <<'YAML'
log-level: info
retry-count: 10
retry-delay: "1s"
hide-banner: false
pid-filepath: /tmp/conduit.pid
cpu-profile: /tmp/cpu
api: {addr: ":8981"}
metrics: {mode: ON, addr: ":9999", prefix: conduit}
telemetry: {enabled: false}
importer:
  name: algod
  config: &shared
    mode: follower
    netaddr: "http://127.0.0.1:8080"
    catchup-config: {admin-token: ""}
processors:
  - name: filter_processor
    config:
      filters:
        - any:
          - tag: txn.type
            expression-type: equal
            expression: "pay"
exporter:
  name: file_writer
  config: *shared
YAML
printf 'x: &a [*a]\nimporter: &i\n  name: noop\n  config: *i\n' >"$work/yaml_import/cycle.yml"
printf 'importer:\n  name: noop\n  config:\n    a: &a [x, x, x]\n    b: &b [*a, *a, *a]\n    c: [*b, *b, *b]\n' \
  >"$work/yaml_import/laughs.yml"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ -n "${FUZZ_RUNS:-}" ]; then
  bound="-seed=1 -runs=$FUZZ_RUNS"
else
  bound="-max_total_time=$seconds"
fi
for target in block_msgpack block_json config checkpoint yaml_import; do
  corpus=${target#block_}
  echo "== fuzz_$target ($bound)"
  mkdir -p "$work/artifacts-$target"
  rc=0
  "$build/fuzz/fuzz_$target" "$work/$corpus" \
    $bound -max_len=$((512 * 1024)) -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts-$target/" >"$work/$target.log" 2>&1 || rc=$?
  tail -n 12 "$work/$target.log"
  if [ "$rc" -ne 0 ] || compgen -G "$work/artifacts-$target/*" >/dev/null; then
    grep -m1 -A30 "ERROR\|runtime error" "$work/$target.log" >&2 || true
    mkdir -p fuzz-artifacts
    cp "$work/artifacts-$target/"* fuzz-artifacts/ 2>/dev/null || true
    echo "fuzz.sh: fuzz_$target found a crash; inputs copied to fuzz-artifacts/" >&2
    exit 1
  fi
done
echo "fuzz.sh: no crash, no sanitizer report"
