#!/usr/bin/env bash
# Installs everything conduit needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are left alone. Used by README and .ci/run.
set -euo pipefail

packages=(
  # build
  build-essential g++ clang meson ninja-build pkg-config git
  # libraries (CONTRACT section 8: Debian packages only)
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libmsgpack-cxx-dev
  zlib1g-dev libssl-dev libsystemd-dev libsdbus-c++-dev libsdbus-c++-bin
  libpq-dev libcurl4-openssl-dev libcpp-httplib-dev
  libre2-dev libyaml-cpp-dev libdeflate-dev
  # tests
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  dbus dbus-daemon systemd systemd-container postgresql util-linux procps
  dbus-bin passwd
  libclang-rt-14-dev
  # docs and tooling
  scdoc man-db groff-base clang-format gnuplot-nox
  # packaging (debian/)
  debhelper dpkg-dev fakeroot lintian
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
