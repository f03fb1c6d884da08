#!/usr/bin/env bash
# Installs the dependencies, builds conduit with sanitizers and runs every test:
#   - all suites under ASan+UBSan (build-asan/)
#   - the end-to-end suite against a real systemd in systemd-nspawn (build-e2e/)
#   - a seeded libFuzzer run of the block decoders, the configuration reader and the
#     checkpoint reader (build-fuzz/)
#   - the pipeline and postgresql suites (threads, stop paths) under TSan (build-tsan/)
# Usage: scripts/test.sh [--quick]   (--quick: ASan+UBSan only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=${JOBS:-2}
quick=0
[ "${1:-}" = "--quick" ] && quick=1

setup() {  # dir, extra meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" --wrap-mode=nodownload -Dwerror=true -Dbuildtype=debug -Doptimization=1 \
      -Dtest_plugins=true "$@"
  fi
}

setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan -j"$jobs"
meson test -C build-asan --no-rebuild --num-processes "$jobs" --print-errorlogs --no-suite e2e

if [ "$quick" = 0 ]; then
  # End-to-end against a real systemd, journald and system bus (systemd-nspawn;
  # builds and installs its own unsanitized build-e2e/ with --prefix=/usr).
  CONDUIT_E2E_REQUIRE=${CONDUIT_E2E_REQUIRE:-1} meson test -C build-asan --no-rebuild --suite e2e \
    --print-errorlogs

  # A bounded, seeded libFuzzer run of the block decoders (clang, ASan+UBSan).
  FUZZ_RUNS=${FUZZ_RUNS:-20000} bash scripts/fuzz.sh

  # TSan: the pipeline suite, and the postgresql exporter's (its second
  # connection commits on a thread of its own), plus the binary its crash matrix
  # runs. A threaded stop path is where races hide.
  setup build-tsan -Db_sanitize=thread -Db_lundef=false
  ninja -C build-tsan -j"$jobs" src/conduit $(meson introspect build-tsan --tests |
    python3 -c 'import json,sys,os; print(" ".join(os.path.relpath(t["cmd"][0], "build-tsan") for t in json.load(sys.stdin) if {"conduit:pipeline", "conduit:postgresql"} & set(t["suite"])))')
  # TSan needs the classic address space layout on kernels with high mmap entropy.
  setarch "$(uname -m)" -R meson test -C build-tsan --no-rebuild --suite pipeline \
    --suite postgresql --num-processes "$jobs" --print-errorlogs
fi
