#!/usr/bin/env bash
# Benchmarks the postgresql exporter against a throw-away PostgreSQL cluster
# (initdb in a temp dir, Unix socket only, removed at exit).
# Usage: bench/postgresql.sh [BUILD_DIR] [NAME=BASELINE_BUILD_DIR ...]   (default: build)
# Each BASELINE_BUILD_DIR: a build of an earlier main with this bench's source
# (bench/postgresql_bench.cpp copied in), run in the same session; NAME tags
# its figures (bench/run.sh compares "before" and "start" with "after").
# Writes bench/results/postgresql.all (text and JSON lines, read by bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
baselines=("${@:2}")
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/conduit-pgbench-XXXXXX)
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  id -u conduit-test >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin conduit-test
  chown conduit-test: "$dir"
  as_user=(runuser -u conduit-test --)
fi
cleanup() {
  "${as_user[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as_user[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C -N >/dev/null
# Durable commits (fsync on), as a production server would run.
"${as_user[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-k $dir -p 5432 -c listen_addresses=''" start >/dev/null
conninfo="host=$dir port=5432 user=postgres dbname=postgres"
fixtures=${CONDUIT_FIXTURES:-../shared/fixtures/conduit-blocks}
# Tags each JSON line with the build.
tag() { sed -u "s/^{/{\"build\": \"$1\", /"; }
mkdir -p bench/results
exec > >(tee bench/results/postgresql.all)
echo "load before: $(uptime)"
echo "== this tree ($build)"
"$build/bench/postgresql_bench" "$conninfo" "$fixtures" | tag after
for entry in "${baselines[@]}"; do
  echo "== ${entry%%=*} (${entry#*=})"
  "${entry#*=}/bench/postgresql_bench" "$conninfo" "$fixtures" --throughput-only | tag "${entry%%=*}"
done

# End to end: the conduit daemon, generator -> postgresql, for a few seconds each.
for txns in 100 1000; do
  data=$(mktemp -d /tmp/conduit-pgbench-data-XXXXXX)
  "${as_user[@]}" "$bindir/psql" -qX -h "$dir" -U postgres -c "DROP DATABASE IF EXISTS e2e" -c "CREATE DATABASE e2e" >/dev/null 2>&1
  cat >"$data/conduit.toml" <<TOML
[importer]
name = "generator"
[importer.config]
txns-per-round = $txns
[exporter]
name = "postgresql"
[exporter.config]
connection-string = "host=$dir port=5432 user=postgres dbname=e2e"
TOML
  echo "conduit generator($txns txns/round) -> postgresql, 8 s:"
  timeout -s TERM 8 "$build/src/conduit" -d "$data" --bus none 2>&1 | grep -E "rounds/s" | tail -3 | sed 's/^/  /' || true
  rm -rf "$data"
done

# Peak RSS of the daemon, generator -> postgresql (flat over 100,000
# rounds, bounded by the unit budget). Each run ends when the database's next
# round passes the generator's last round; VmHWM is read before the SIGTERM.
peak_rss_kib() {  # TXNS LAST_ROUND [GROUP_COMMIT_BYTES]
  local data pid next
  data=$(mktemp -d /tmp/conduit-pgbench-data-XXXXXX)
  "${as_user[@]}" "$bindir/psql" -qX -h "$dir" -U postgres -c "DROP DATABASE IF EXISTS rss" -c "CREATE DATABASE rss" >/dev/null 2>&1
  {
    echo "log-level = \"warn\""
    [ -n "${3:-}" ] && echo "group-commit-bytes = $3"
    printf '[importer]\nname = "generator"\n[importer.config]\ntxns-per-round = %s\nlast-round = %s\n' "$1" "$2"
    printf '[exporter]\nname = "postgresql"\n[exporter.config]\nconnection-string = "host=%s port=5432 user=postgres dbname=rss"\n' "$dir"
  } >"$data/conduit.toml"
  "$build/src/conduit" -d "$data" --bus none >"$data/log" 2>&1 &
  pid=$!
  while :; do
    sleep 1  # a benchmark polling the database, not a test
    next=$("${as_user[@]}" "$bindir/psql" -qtAX -h "$dir" -U postgres -d rss \
      -c "SELECT v->>'next_account_round' FROM metastate WHERE k = 'state'" 2>/dev/null || true)
    [ -n "$next" ] && [ "$next" -gt "$2" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$data/log" >&2; return 1; }
  done
  awk '/^VmHWM/ {print $2}' "/proc/$pid/status"
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$data"
}
echo "peak RSS, conduit generator -> postgresql:"
rss_10k=$(peak_rss_kib 100 10000)
rss_100k=$(peak_rss_kib 100 100000)
printf '  %-58s %8s KiB\n' "100-txn rounds, 10,000 rounds" "$rss_10k" \
  "100-txn rounds, 100,000 rounds" "$rss_100k"
python3 -c "print('  100,000 / 10,000 rounds: %.2fx' % ($rss_100k / $rss_10k))"
emit() { echo "{\"build\": \"after\", \"bench\": \"postgresql\", \"name\": \"$1\", \"value\": $2, \"unit\": \"$3\"}"; }
emit pg-peak-rss-10k-rounds "$rss_10k" KiB
emit pg-peak-rss-100k-rounds "$rss_100k" KiB
emit ratio-pg-rss-100k-vs-10k "$(python3 -c "print(round($rss_100k / $rss_10k, 3))")" "x baseline"
for budget in 16 64 256; do
  rss=$(peak_rss_kib 10000 200 $((budget << 20)))
  printf '  %-58s %8s KiB\n' "10,000-txn rounds x 200, group-commit-bytes $budget MiB" "$rss"
  emit "pg-peak-rss-10k-txn-rounds-budget-${budget}MiB" "$rss" KiB
done
echo "load after: $(uptime)"
