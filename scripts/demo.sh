#!/usr/bin/env bash
# Installs the dependencies, builds conduit and runs the embedded default
# pipeline (generator -> noop -> file_writer) in a throw-away data dir, showing
# progress. Ctrl-C stops it (mode `now`); the checkpoint is printed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --wrap-mode=nodownload -Dbuildtype=release >/dev/null
ninja -C build -j"${JOBS:-2}" src/conduit
dir=$(mktemp -d /tmp/conduit-demo-XXXXXX)
build/src/conduit init -d "$dir" -i generator -p noop
# 100 rounds a second, so the demo's block files do not fill the disk.
sed -i 's/^round-interval = .*/round-interval = "10ms"/' "$dir/conduit.toml"
echo "data dir: $dir   (Ctrl-C to stop; 'build/src/conduit stop -d $dir end-of-round' from another shell)"
set +e
build/src/conduit -d "$dir"
status=$?
set -e
echo "conduit exited with status $status; checkpoint:"
cat "$dir/metadata.json"
