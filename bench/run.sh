#!/usr/bin/env bash
# Runs the benchmarks on a release build (bench/daemon.sh: the daemon alone) and writes
#   bench/results/results.json   one JSON object per line (machine-readable), each
#                                tagged with the build ("after" = this tree,
#                                "before" = BEFORE_BUILD, when given)
#   bench/results/results.md     the ratios against their targets, and every figure
#   bench/results/ratios.png     each ratio / its target, before and after (1 = target met)
#   bench/results/throughput.png each pipeline's rounds/s beside its baseline's
#   bench/results/stop_latency.png
# with bench/postgresql.sh's figures (bench/results/postgresql.all) when present.
# Every figure is judged as a ratio to a baseline measured in the same run.
# Usage: bench/run.sh [STOP_RUNS (default 200)]
# BEFORE_BUILD=DIR: a release build dir of another version (same bench sources)
#   whose bench binaries are run the same way, interleaved, for "before" figures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
# PLOT_ONLY=1: redo the tables and plots from bench/results/results.all.
if [ -z "${PLOT_ONLY:-}" ]; then
bash scripts/install-deps.sh
[ -f build-release/build.ninja ] || meson setup build-release --wrap-mode=nodownload \
  -Dbuildtype=release -Dtests=false >/dev/null
# The test-only wedge processor: the stop latency of a round blocked until cancelled.
meson configure build-release -Dtest_plugins=true >/dev/null
ninja -C build-release -j"${JOBS:-2}"
mkdir -p "$out"
runs=${1:-200}
work=$(mktemp -d /var/tmp/conduit-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
fixtures=${CONDUIT_FIXTURES:-$PWD/../shared/fixtures/conduit-blocks}

builds=("after:build-release")
[ -n "${BEFORE_BUILD:-}" ] && builds=("before:$BEFORE_BUILD" "${builds[@]}")

# Tags each JSON line with the build.
tag() { sed -u "s/^{/{\"build\": \"$1\", /"; }

{
  echo "load before: $(uptime)"
  for entry in "${builds[@]}"; do
    name=${entry%%:*} b=${entry#*:}/bench
    $b/bench_overhead "$work/overhead" 3000 3 | tag "$name"
    $b/bench_file_pipeline "$work" 300 "$fixtures" | tag "$name"
    $b/bench_block_codec "$fixtures" 1 | tag "$name"
    # The daemon as users run it (this tree's bench, each build's conduit).
    build-release/bench/bench_daemon "${entry#*:}/src/conduit" "$work" 2000 "$fixtures" 3 |
      tag "$name"
  done
  echo "load during: $(uptime)"
  b=build-release/bench
  $b/bench_stop_latency build-release/src/conduit "$runs" "$work/stop" | tag after
  echo "load after: $(uptime)"
} | tee "$out/results.all"
fi
grep '^{' "$out/results.all" > "$out/results.json"
grep '^load' "$out/results.all" > "$out/load.txt"
[ -f "$out/postgresql.all" ] && grep '^load' "$out/postgresql.all" | sed 's/^/postgresql /' >> "$out/load.txt"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/results.json") if l.startswith("{")]
# bench/postgresql.sh's figures (its own run: it needs a throw-away cluster).
try:
    rows += [json.loads(l) for l in open(f"{out}/postgresql.all") if l.startswith("{")]
except FileNotFoundError:
    pass
def value(build, name):
    for r in rows:
        if r.get("build") == build and r["name"] == name:
            return r.get("value")
    return None
# The issue's postgresql target is against the exporter of its day ("start").
for b in ("session3", "after"):
    chain, start = value(b, "pg-fixture-chain"), value("start", "pg-fixture-chain")
    if chain and start:
        rows.append({"build": b, "bench": "postgresql", "name": "ratio-pg-chain-vs-start",
                     "value": round(chain / start, 3), "unit": "x baseline"})
# (label, figure, target, higher is better)
targets = [
    ("file pipeline filter / zlib floor", "ratio-filter-vs-zlib-floor-disk", 1.2, True),
    ("file pipeline filter / libdeflate floor", "ratio-filter-vs-libdeflate-floor-disk", 1.0, True),
    ("pass-through / zlib floor", "ratio-pass-through-vs-zlib-floor-disk", 1.2, True),
    ("pass-through / libdeflate floor", "ratio-pass-through-vs-libdeflate-floor-disk", 1.0, True),
    ("file pipeline filter dropping pay / zlib floor", "ratio-filter-drop-pay-vs-zlib-floor-disk", 2.0, True),
    ("daemon filter dropping pay / zlib floor", "ratio-daemon-filter-drop-pay-vs-zlib-floor", 2.0, True),
    ("daemon filter dropping acfg / zlib floor", "ratio-daemon-filter-drop-acfg-vs-zlib-floor", 2.0, True),
    ("daemon pass-through / zlib floor", "ratio-daemon-pass-through-vs-zlib-floor", 4.0, True),
    ("durable backlog / replace loop", "ratio-backlog-vs-replace-loop", 2.0, True),
    ("tip latency / one replace", "ratio-tip-latency-vs-replace", 1.2, False),
    ("filtering / evaluate-only", "ratio-filtering-vs-evaluate-only", 0.9, True),
    ("peak RSS 100k / 10k rounds", "ratio-rss-100k-vs-10k", 1.1, False),
    ("pg chain / starting exporter", "ratio-pg-chain-vs-start", 10.0, True),
    ("pg chain / raw COPY (ceiling)", "ratio-pg-chain-vs-raw-copy", 1.0, True),
    ("pg 10k-txn rounds / raw COPY", "ratio-pg-10k-vs-raw-copy", 0.7, True),
    ("pg peak RSS 100k / 10k", "ratio-pg-rss-100k-vs-10k", 1.1, False),
]
builds = [b for b in ("before", "after") if any(r.get("build") == b for r in rows)]
with open(f"{out}/results.md", "w") as md:
    md.write("Load: " + "; ".join(l.strip() for l in open(f"{out}/load.txt")) + "\n\n")
    md.write("| figure | target | " + " | ".join(builds) + " | met (after) |\n")
    md.write("|---|---|" + "---|" * len(builds) + "---|\n")
    for label, name, target, higher in targets:
        vals = [value(b, name) for b in builds]
        after = value("after", name)
        met = after is not None and (after >= target if higher else after <= target)
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in vals)
        md.write(f"| {label} | {'>=' if higher else '<='} {target} | {cells} | {'yes' if met else 'no'} |\n")
    pg_builds = [b for b in ("start", "session3", "after") if value(b, "pg-fixture-chain")]
    if pg_builds:
        md.write("\npostgresql (bench/postgresql.sh; start = the exporter when the issue was filed, "
                 "its own 2-table schema; session3 = main before this session):\n\n")
        md.write("| figure | " + " | ".join(pg_builds) + " |\n|---|" + "---|" * len(pg_builds) + "\n")
        for name in ("pg-fixture-chain", "ratio-pg-chain-vs-start", "pg-fixture-chain-raw-copy",
                     "ratio-pg-chain-vs-raw-copy",
                     "pg-10k-txn-rounds", "pg-10k-txn-rounds-raw-copy", "ratio-pg-10k-vs-raw-copy"):
            # The starting exporter wrote its own two tables: no raw COPY ceiling to compare.
            shown = lambda b: None if b == "start" and "raw-copy" in name else value(b, name)
            cells = " | ".join("-" if shown(b) is None else f"{shown(b):g}" for b in pg_builds)
            md.write(f"| {name} | {cells} |\n")
    md.write("\n| build | bench | name | figure |\n|---|---|---|---|\n")
    for r in rows:
        if "median_ms" in r:
            fig = f"median {r['median_ms']} ms, p99 {r['p99_ms']} ms over {r['runs']} stops"
        elif "max_rss_kb" in r:
            fig = f"peak RSS {r['max_rss_kb']} KiB"
        else:
            fig = f"{r.get('value')} {r.get('unit', '')}"
        md.write(f"| {r.get('build', '')} | {r['bench']} | {r['name']} | {fig} |\n")
# ratios.dat: label, before/target, after/target (scaled so 1 = target met exactly)
with open(f"{out}/ratios.dat", "w") as f:
    for label, name, target, higher in targets:
        cols = []
        for b in ("before", "after"):
            v = value(b, name)
            cols.append("0" if v is None else f"{(v / target) if higher else (target / v if v else 0):.3f}")
        f.write(f"\"{label} ({'>=' if higher else '<='}{target})\" {' '.join(cols)}\n")
# throughput.dat: each pipeline beside its baseline, after build
pairs = [
    ("filter, disk", "filter-reencode-disk", "floor-zlib-gunzip+gzip"),
    ("pass-through, disk", "pass-through-disk", "floor-zlib-gunzip+gzip"),
    ("durable backlog", "pipeline-empty-durable-backlog", "replace-loop"),
    ("postgresql fixture chain", "pg-fixture-chain", "pg-fixture-chain-raw-copy"),
]
with open(f"{out}/throughput.dat", "w") as f:
    for label, name, base in pairs:
        # postgresql's earlier build is main at the start of the session (bench/postgresql.sh).
        for b in (["session3", "after"] if name.startswith("pg-") else builds):
            if value(b, name) is not None:
                f.write(f"\"{label} ({b})\" {value(b, name) or 0} {value(b, base) or 0}\n")
with open(f"{out}/stop_latency.dat", "w") as f:
    for i, r in enumerate(x for x in rows if "median_ms" in x):
        f.write(f"{i} \"{r['name']}\" {r['median_ms']} {r['p99_ms']}\n")
PY
cat "$out/results.md"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1300,650 noenhanced font ",10"
set termoption noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -25 left
set key top right
set grid ytics
set bmargin 10
set rmargin 16
set output "$out/ratios.png"
set title "Issue 18 figures: ratio to the same-run baseline, divided by the target (>= 1 meets the target)"
set ylabel "ratio / target (log scale)"
set logscale y
set yrange [0.05:200]
plot "$out/ratios.dat" using 2:xtic(1) title "before", "" using 3 title "after", \
     1 with lines lw 2 lc rgb "red" title "target"
set output "$out/throughput.png"
set title "rounds/s: each pipeline beside the baseline it is judged against (same run)"
set ylabel "rounds/s (log scale)"
set yrange [10:*]
plot "$out/throughput.dat" using 2:xtic(1) title "pipeline", \
     "" using 3 title "baseline (file pipelines: zlib floor; durable backlog: replace loop; postgresql: raw COPY)"
unset logscale y
set output "$out/stop_latency.png"
set title "conduit stop latency (signal to exit)"
set ylabel "ms"
set yrange [0:*]
plot "$out/stop_latency.dat" using 3:xtic(2) title "median", "" using 4 title "p99"
GP
fi
