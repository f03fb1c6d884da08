#!/bin/sh
# Builds conduit with the libraries that have our wraps built from source
# instead of the system's packages (needs network access: meson downloads the
# release archives named in subprojects/*.wrap and checks their hashes), then
# runs the suites that need no container. For a distribution that lacks one
# of them; Debian's build never does this (--wrap-mode=nodownload).
#   scripts/build-fallback.sh [BUILD_DIR]    (default build-fallback)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-fallback}
wrapped=libdeflate,msgpack-cxx,re2,yaml-cpp,sdbus-c++
[ -d "$build" ] || meson setup "$build" --wrap-mode=default --force-fallback-for="$wrapped" \
  -Dbuildtype=debugoptimized -Dtest_plugins=true
ninja -C "$build" -j"$(nproc)"
# The binary must not link the system's copies of the wrapped libraries.
if ldd "$build/src/conduit" | grep -E 'libsdbus-c\+\+|libre2|libyaml-cpp|libdeflate'; then
  echo "build-fallback: conduit links a system copy of a wrapped library" >&2
  exit 1
fi
meson test -C "$build" --no-rebuild --no-suite e2e --num-processes 2 --print-errorlogs
