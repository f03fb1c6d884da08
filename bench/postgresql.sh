#!/usr/bin/env bash
# Benchmarks the postgresql exporter against a throw-away PostgreSQL cluster
# (initdb in a temp dir, Unix socket only, removed at exit).
# Usage: bench/postgresql.sh [BUILD_DIR] [BASELINE_BUILD_DIR]   (default: build)
# BASELINE_BUILD_DIR: a build of the starting main with this bench's source
# (bench/postgresql_bench.cpp copied in), run in the same session as the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
baseline=${2:-}
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
echo "== this tree ($build)"
"$build/bench/postgresql_bench" "$conninfo" "$fixtures"
if [ -n "$baseline" ]; then
  echo "== baseline ($baseline)"
  "$baseline/bench/postgresql_bench" "$conninfo" "$fixtures"
fi

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
