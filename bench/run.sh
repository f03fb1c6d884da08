#!/usr/bin/env bash
# Runs every benchmark on a release build and writes
#   bench/results/results.json   one JSON object per line (machine-readable)
#   bench/results/results.md     a short human table
#   bench/results/stop_latency.png, throughput.png   (gnuplot)
# Usage: bench/run.sh [STOP_RUNS (default 200)]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f build-release/build.ninja ] || meson setup build-release --wrap-mode=nodownload \
  -Dbuildtype=release -Dtests=false >/dev/null
ninja -C build-release -j"${JOBS:-2}"
out=bench/results
mkdir -p "$out"
runs=${1:-200}
work=$(mktemp -d /var/tmp/conduit-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

{
  build-release/bench/bench_overhead "$work/overhead" 3000 3
  build-release/bench/bench_stop_latency build-release/src/conduit "$runs" "$work/stop"
  for extra in build-release/bench/bench_*; do
    case "$(basename "$extra")" in bench_overhead|bench_stop_latency) continue ;; esac
    [ -x "$extra" ] && "$extra" "$work" || true
  done
} | tee "$out/results.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/results.json") if l.startswith("{")]
with open(f"{out}/results.md", "w") as md:
    md.write("| bench | name | figure |\n|---|---|---|\n")
    for r in rows:
        if "median_ms" in r:
            fig = f"median {r['median_ms']} ms, p99 {r['p99_ms']} ms over {r['runs']} stops"
        elif "max_rss_kb" in r:
            fig = f"peak RSS {r['max_rss_kb']} KiB"
        else:
            fig = f"{r.get('value')} {r.get('unit', '')}"
        md.write(f"| {r['bench']} | {r['name']} | {fig} |\n")
with open(f"{out}/stop_latency.dat", "w") as f:
    for i, r in enumerate(x for x in rows if "median_ms" in x):
        f.write(f"{i} \"{r['name']}\" {r['median_ms']} {r['p99_ms']}\n")
with open(f"{out}/throughput.dat", "w") as f:
    for i, r in enumerate(x for x in rows if x.get("unit") == "rounds/s"):
        f.write(f"{i} \"{r['name']}\" {r['value']}\n")
PY
cat "$out/results.md"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal png size 900,500
set style data histograms
set style fill solid 0.8
set boxwidth 0.8
set xtics rotate by -30
set output "$out/stop_latency.png"
set title "conduit stop latency (signal to exit)"
set ylabel "ms"
plot "$out/stop_latency.dat" using 3:xtic(2) title "median", "" using 4 title "p99"
set output "$out/throughput.png"
set title "rounds per second"
set ylabel "rounds/s"
set logscale y
plot "$out/throughput.dat" using 3:xtic(2) title "rounds/s"
GP
fi
