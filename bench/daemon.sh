#!/usr/bin/env bash
# The conduit daemon as users run it (bench/daemon.cpp): file pipelines against
# the codec floors, and (with PG=1) file_reader -> postgresql per
# group-commit-bytes in a throw-away cluster (as bench/postgresql.sh makes it).
# Usage: bench/daemon.sh [ROUNDS (2000)] [REPEATS (3)]
# BUILD=DIR (default build-release): the release build measured ("after").
# BEFORE_BUILD=DIR: another version's release build; its conduit is run by
#   this tree's bench_daemon, interleaved, for "before" figures.
# PG=1: also the postgresql runs (PG_ROUNDS, default 600; PG_BYTES: the
#   group-commit-bytes values, default "4194304 8388608 16777216 33554432").
# PLOT_ONLY=1 redoes daemon.md and the plot from daemon.all.
# Writes bench/results/daemon.all (text and JSON lines) and daemon.md, and
# bench/results/daemon.png when gnuplot is present.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-release}
rounds=${1:-2000}
repeats=${2:-3}
out=bench/results
work=$(mktemp -d /var/tmp/conduit-daemon-bench-XXXXXX)
fixtures=${CONDUIT_FIXTURES:-$PWD/../shared/fixtures/conduit-blocks}
pgdir=""
as_user=()
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
cleanup() {
  [ -n "$pgdir" ] && { "${as_user[@]}" "$bindir/pg_ctl" -D "$pgdir/data" -m immediate -w stop \
    >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
  rm -rf "$work"
}
trap cleanup EXIT
tag() { sed -u "s/^{/{\"build\": \"$1\", /"; }
builds=("after:$build")
[ -n "${BEFORE_BUILD:-}" ] && builds=("before:$BEFORE_BUILD" "${builds[@]}")

start_cluster() {
  pgdir=$(mktemp -d /tmp/conduit-daemon-pg-XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then
    id -u conduit-test >/dev/null 2>&1 || useradd --system --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin conduit-test
    chown conduit-test: "$pgdir"
    as_user=(runuser -u conduit-test --)
  fi
  "${as_user[@]}" "$bindir/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C -N \
    >/dev/null
  "${as_user[@]}" "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-k $pgdir -p 5432 -c listen_addresses=''" start >/dev/null
}

mkdir -p "$out"
# The cluster is started here, not inside the pipeline below (a subshell), so
# that cleanup sees $pgdir and stops it.
[ -n "${PG:-}" ] && [ -z "${PLOT_ONLY:-}" ] && start_cluster
# PLOT_ONLY=1: redo daemon.md and the plot from bench/results/daemon.all.
[ -n "${PLOT_ONLY:-}" ] || {
  echo "load before: $(uptime)"
  for entry in "${builds[@]}"; do
    echo "== ${entry%%:*} (${entry#*:}), $rounds rounds, best of $repeats"
    "$build/bench/bench_daemon" "${entry#*:}/src/conduit" "$work" "$rounds" "$fixtures" "$repeats" |
      tag "${entry%%:*}"
  done
  echo "load after file pipelines: $(uptime)"
  if [ -n "${PG:-}" ]; then
    for entry in "${builds[@]}"; do
      echo "== postgresql, ${entry%%:*} (${entry#*:}), ${PG_ROUNDS:-600} rounds, best of $repeats"
      # shellcheck disable=SC2086
      "$build/bench/bench_daemon" "${entry#*:}/src/conduit" "$work" "${PG_ROUNDS:-600}" \
        "$fixtures" "$repeats" --postgresql "host=$pgdir port=5432 user=postgres dbname=postgres" \
        ${PG_BYTES:-4194304 8388608 16777216 33554432} | tag "${entry%%:*}"
    done
    echo "load after postgresql: $(uptime)"
  fi
} | tee "$out/daemon.all"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/daemon.all") if l.startswith("{")]
loads = [l.strip() for l in open(f"{out}/daemon.all") if l.startswith("load")]
builds = [b for b in ("before", "after") if any(r["build"] == b for r in rows)]
def value(build, name):
    return next((r["value"] for r in rows if r["build"] == build and r["name"] == name), None)
with open(f"{out}/daemon.md", "w") as md:
    md.write("# The daemon as users run it (bench/daemon.sh)\n\n" + "; ".join(loads) + "\n\n")
    md.write("| figure | target | " + " | ".join(builds) + " |\n|---|---|" + "---|" * len(builds) + "\n")
    targets = {"ratio-daemon-filter-drop-pay-vs-zlib-floor": ">= 2.0",
               "ratio-daemon-pass-through-vs-zlib-floor": ">= 4.0"}
    names = sorted({r["name"] for r in rows}, key=lambda n: (not n.startswith("ratio"), n))
    for name in names:
        cells = " | ".join("-" if value(b, name) is None else f"{value(b, name):g}" for b in builds)
        md.write(f"| {name} | {targets.get(name, '')} | {cells} |\n")
    md.write("\nEach thread's CPU seconds (best run), from /proc/PID/task:\n\n```\n")
    md.writelines(l for l in open(f"{out}/daemon.all") if l.startswith(("#", "==")))
    md.write("```\n")
with open(f"{out}/daemon.dat", "w") as f:
    for p in ("pass-through", "filter-drop-pay", "filter-drop-acfg"):
        cols = [value(b, f"ratio-daemon-{p}-vs-zlib-floor") or 0 for b in ("before", "after")]
        cores = [value(b, f"daemon-{p}-cores") or 0 for b in ("before", "after")]
        f.write(f"\"{p}\" {cols[0]} {cols[1]} {cores[0]} {cores[1]}\n")
PY
cat "$out/daemon.md"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1000,500 noenhanced font ",10"
set output "$out/daemon.png"
set multiplot layout 1,2 title "conduit -d DIR, file_reader -> [filter] -> file_writer (msgp.gz, durable), same run"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set yrange [0:*]
set title "rounds/s / single-thread zlib floor"
plot "$out/daemon.dat" using 2:xtic(1) title "before", "" using 3 title "after"
set title "cores used (user+sys / wall)"
set yrange [0:2.2]
plot "$out/daemon.dat" using 4:xtic(1) title "before", "" using 5 title "after"
unset multiplot
GP
fi
