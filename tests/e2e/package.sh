#!/usr/bin/env bash
# The Debian package, end to end: builds conduit_<version>_<arch>.deb
# from a clean copy of the tree with dpkg-buildpackage, checks it with lintian
# (no errors), then installs it with apt-get in a throw-away systemd container
# over the host's own tree and checks what an operator gets:
#   - the conduit user and conduit-admin group (sysusers), the units, the D-Bus
#     policy in /usr/share/dbus-1/system.d, the journal catalog (in the catalog
#     database), the man pages;
#   - conduit.service enabled, but "condition failed" (not failed) without a
#     configuration;
#   - `conduit init -d /var/lib/conduit -i generator && systemctl start conduit` runs, owns
#     its bus name and exports rounds; `systemctl reload` keeps the PID;
#     `systemctl stop` ends with exit status 0;
#   - `apt-get remove` stops the running service cleanly (exit status 0);
#     `apt-get purge` leaves /var/lib/conduit (operators' data) alone.
#
# Usage: tests/e2e/package.sh       (meson test -C BUILD --suite e2e runs it too)
# Environment:
#   CONDUIT_SOURCE_ROOT        the tree to package (default: this script's)
#   CONDUIT_PACKAGE_BUILD_DIR  where the copy is built (default SOURCE/build-package;
#                              a stable path lets ccache hit on the next run)
#   CONDUIT_PACKAGE_CHECK=1    build with the tests (dh_auto_test); default nocheck:
#                              the suites run elsewhere in CI
#   CONDUIT_E2E_REQUIRE=1      cannot build or boot: fail instead of skip (CI)
#   JOBS                       parallel build jobs (default 2)
# Exit status: 0 passed, 1 failed, 77 skipped. Prints a transcript of the steps.
# Needs root, dpkg-buildpackage + the build dependencies, lintian, systemd-nspawn,
# nsenter/unshare (util-linux).
set -uo pipefail

SOURCE_ROOT=${CONDUIT_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
readonly SOURCE_ROOT
readonly PKG_BUILD_DIR=${CONDUIT_PACKAGE_BUILD_DIR:-$SOURCE_ROOT/build-package}
readonly DATA=/var/lib/conduit
readonly BUS_NAME=org.conduit.Pipeline BUS_PATH=/org/conduit/Pipeline BUS_IFACE=org.conduit.Pipeline
readonly EXPECTED_STOP_ID=6b0a1c7e3d2f4e58a9c1b2d3e4f5a601
WORK="" NSPAWN_PID="" CONTAINER_PID=""

say() { printf '%s\n' "$*"; }
step() { printf '\n$ %s\n' "$*"; }
failed() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }
skip() {
  if [ "${CONDUIT_E2E_REQUIRE:-0}" = 1 ]; then failed "cannot run, and CONDUIT_E2E_REQUIRE=1: $*"; fi
  printf 'package: skipped: %s\n' "$*"
  exit 77
}

# ---------------------------------------------------------------- container

# cx, croot, await_container_systemd, boot_finished, stop_container, cleanup (trapped).
source "$(dirname "$0")/container.sh"
# Runs a command in the container and shows it with its output (the transcript).
run() { step "$*"; cx "$@" 2>&1 | sed 's/^/  /'; return "${PIPESTATUS[0]}"; }

wait_for() {  # timeout-seconds, description, command...
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || failed "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}

# A container over the host's tree whose /usr, /etc and /var are writable overlays
# (uppers in WORK, thrown away with it), so dpkg and apt work as on a real host.
# Same recipe as run.sh otherwise; nspawn refuses --volatile=overlay for -D /.
boot_container() {  # machine-name
  mkdir -p "$WORK/upper/usr" "$WORK/upper/etc" "$WORK/upper/var"
  unshare --mount --propagation private sh -c '
    mkdir -p /run/systemd/nspawn && mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn &&
    exec systemd-nspawn --quiet --keep-unit --register=no --volatile=yes -D / -M "$0" -b \
      --private-network \
      --overlay=/usr:"$1"/upper/usr:/usr --overlay=/etc:"$1"/upper/etc:/etc \
      --overlay=/var:"$1"/upper/var:/var --bind-ro="$1"/debs:/run/debs \
      systemd.firstboot=off systemd.show_status=false systemd.mask=postgresql.service \
      systemd.mask=console-getty.service systemd.mask=systemd-networkd-wait-online.service' "$1" "$WORK" \
    </dev/null >"$WORK/console.log" 2>&1 &
  NSPAWN_PID=$!
  await_container_systemd || return 1
  local deadline=$((SECONDS + 60))
  until boot_finished; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}


unit_prop() { cx systemctl show -P "$2" "$1"; }
expect_eq() {  # what, expected, actual
  [ "$3" = "$2" ] || failed "$1: expected '$2', got '$3'"
  say "  ok: $1 = $2"
}
next_round() {
  local out
  out=$(cx busctl --system get-property $BUS_NAME $BUS_PATH $BUS_IFACE NextRound) || return 1
  echo "${out#t }"
}
next_round_above() { local r; r=$(next_round) && [ "$r" -gt "$1" ]; }
# How the service's last run ended, recorded by the test drop-in's ExecStopPost
# (systemd forgets an inactive unit's exit status once it garbage-collects it).
last_exit() { tail -n1 "$(croot)/run/conduit-package/exit" 2>/dev/null; }

# ---------------------------------------------------------------- preconditions

[ "$(id -u)" = 0 ] || skip "needs root (dpkg-buildpackage as root, systemd-nspawn)"
for tool in dpkg-buildpackage dpkg-checkbuilddeps lintian systemd-nspawn nsenter unshare; do
  command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ -x /usr/lib/systemd/systemd ] || skip "no /usr/lib/systemd/systemd to boot"
(cd "$SOURCE_ROOT" && dpkg-checkbuilddeps -B) 2>"$PKG_BUILD_DIR.deps" \
  || skip "build dependencies missing: $(cat "$PKG_BUILD_DIR.deps")"
rm -f "$PKG_BUILD_DIR.deps"

WORK=$(mktemp -d /tmp/conduit-package.XXXXXX)
mkdir -p "$WORK/debs"

# ---------------------------------------------------------------- build

version=$(dpkg-parsechangelog -l "$SOURCE_ROOT/debian/changelog" -S Version)
tree=$PKG_BUILD_DIR/conduit-$version
say "== dpkg-buildpackage -us -uc -b in a clean copy of the tree ($tree)"
rm -rf "$PKG_BUILD_DIR" && mkdir -p "$tree"
# What git tracks (and new files it would track): no build dirs, no local state.
(cd "$SOURCE_ROOT" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$tree" || failed "copying the tree"
if [ "${CONDUIT_PACKAGE_CHECK:-0}" = 1 ]; then opts="parallel=${JOBS:-2}"; else opts="nocheck parallel=${JOBS:-2}"; fi
# debhelper (compat 13) points HOME into the build tree: keep ccache's own
# cache and configuration, if any, so a rebuild is mostly cache hits.
if command -v ccache >/dev/null; then
  CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null)}
  [ -n "$CCACHE_DIR" ] && export CCACHE_DIR
  for conf in "${CCACHE_CONFIGPATH:-}" "${XDG_CONFIG_HOME:-$HOME/.config}/ccache/ccache.conf"; do
    if [ -n "$conf" ] && [ -f "$conf" ]; then export CCACHE_CONFIGPATH=$conf; break; fi
  done
fi
started=$SECONDS
(cd "$tree" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) >"$PKG_BUILD_DIR/build.log" 2>&1 \
  || { tail -40 "$PKG_BUILD_DIR/build.log" >&2; failed "dpkg-buildpackage failed (log: $PKG_BUILD_DIR/build.log)"; }
arch=$(dpkg --print-architecture)
deb=$PKG_BUILD_DIR/conduit_${version}_${arch}.deb
[ -f "$deb" ] || failed "no $deb after the build"
say "  built $(basename "$deb") in $((SECONDS - started))s (DEB_BUILD_OPTIONS=\"$opts\")"
cp "$deb" "$WORK/debs/"

step "lintian $(basename "$deb")"
lintian --fail-on error "$deb" 2>&1 | sed 's/^/  /'
[ "${PIPESTATUS[0]}" = 0 ] || failed "lintian reports errors"
say "  ok: no lintian errors"

# ---------------------------------------------------------------- install

boot_container "conduit-pkg-$$" || { tail -5 "$WORK/console.log" >&2; skip "systemd-nspawn cannot boot a container here"; }
cx test ! -e /usr/bin/conduit || failed "the container already has a /usr/bin/conduit"
# The container's /etc is the host's: accounts a conduit test or an earlier install
# created there would hide whether the package creates them.
for account in conduit conduit-test; do cx userdel "$account" >/dev/null 2>&1; done
for group in conduit conduit-admin conduit-test; do cx groupdel "$group" >/dev/null 2>&1; done
cx getent passwd conduit >/dev/null && failed "could not remove the host's conduit user in the container"

apt_get() {  # apt-get arguments...; shows the lines that say what dpkg did
  step "apt-get $*"
  cx env DEBIAN_FRONTEND=noninteractive apt-get -y "$@" >"$WORK/apt.log" 2>&1 \
    || { sed 's/^/  /' "$WORK/apt.log"; failed "apt-get $*"; }
  grep -E '^(Setting up|Unpacking|Removing|Purging|Processing triggers|Created symlink)' "$WORK/apt.log" | sed 's/^/  /'
}
apt_get install --no-install-recommends "/run/debs/$(basename "$deb")"

run getent passwd conduit || failed "no conduit user"
run getent group conduit-admin || failed "no conduit-admin group"
for f in /lib/systemd/system/conduit.service /lib/systemd/system/conduit@.service \
         /usr/lib/sysusers.d/conduit.conf /usr/share/dbus-1/system.d/org.conduit.Pipeline.conf \
         /usr/lib/systemd/catalog/conduit.catalog /usr/share/man/man1/conduit.1.gz \
         /usr/share/man/man5/conduit.toml.5.gz /usr/share/man/man5/org.conduit.Pipeline.5.gz \
         /usr/share/man/man7/conduit-plugin.7.gz; do
  cx test -f "$f" || failed "not installed: $f"
done
say "  ok: units, sysusers.d, D-Bus policy, catalog and man pages installed"
for p in ndjson_exporter drop_type_processor strip_note_processor; do
  cx test -x "/usr/lib/conduit/plugins/$p" || failed "example plugin not installed: $p"
done
# The compiled example needs no interpreter: conduit finds it and asks it hello.
run conduit list processors strip_note_processor || failed "conduit list does not find strip_note_processor"
say "  ok: example plugins in /usr/lib/conduit/plugins, found by conduit list"
step "journalctl --list-catalog $EXPECTED_STOP_ID"
catalog=$(cx journalctl --list-catalog "$EXPECTED_STOP_ID" | grep "^$EXPECTED_STOP_ID")
say "  $catalog"
[ -n "$catalog" ] || failed "the catalog database does not know $EXPECTED_STOP_ID (no journalctl --update-catalog)"
cx man -w conduit >/dev/null 2>&1 || cx test -f /usr/share/man/man1/conduit.1.gz || failed "man conduit"

# Both shipped units pass systemd-analyze verify without a single message.
step "systemd-analyze verify conduit.service conduit@.service"
out=$(cx systemd-analyze verify /lib/systemd/system/conduit.service /lib/systemd/system/conduit@.service 2>&1)
rc=$?
[ -z "$out" ] && [ "$rc" = 0 ] || failed "systemd-analyze verify (exit $rc): $out"
say "  ok: no messages"
step "systemd-analyze security conduit.service"
cx systemd-analyze security conduit.service 2>&1 | grep -E '^✗|Overall' | sed 's/  */ /g; s/^/  /'
# --threshold is on the 0-100 scale of the printed 0.0-10.0.
for unit in conduit.service conduit@example.service; do
  cx systemd-analyze security --threshold=10 "$unit" >/dev/null 2>&1 \
    || failed "systemd-analyze security $unit scores above 1.0"
  say "  ok: $unit exposure <= 1.0"
done
# The shipped allow list leaves out link-local and multicast, keeps loopback and
# public addresses; the documented drop-in replaces it.
allow=$(unit_prop conduit.service IPAddressAllow)
for net in 0.0.0.0/1 192.0.0.0/3 ::/1 fc00::/7; do
  case " $allow " in *" $net "*) ;; *) failed "IPAddressAllow lacks $net: $allow" ;; esac
done
case " $allow " in *" 169.254."*|*" fe80:"*|*" 224."*) failed "IPAddressAllow admits link-local or multicast: $allow" ;; esac
# systemd prints these address sets in no fixed order: compare them sorted.
sorted_words() { tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort | paste -sd' '; }
expect_eq "IPAddressDeny" "0.0.0.0/0 ::/0" "$(unit_prop conduit.service IPAddressDeny | sorted_words)"
cx mkdir -p /run/systemd/system/conduit.service.d
cx sh -c 'printf "[Service]\nIPAddressAllow=\nIPAddressAllow=localhost 192.0.2.10\n" > /run/systemd/system/conduit.service.d/pin.conf'
cx systemctl daemon-reload
expect_eq "IPAddressAllow with the endpoint drop-in" "127.0.0.0/8 192.0.2.10/32 ::1/128" \
  "$(unit_prop conduit.service IPAddressAllow | sorted_words)"
cx systemd-analyze security --threshold=10 conduit.service >/dev/null 2>&1 \
  || failed "systemd-analyze security conduit.service scores above 1.0 with endpoints pinned"
say "  ok: the endpoint drop-in replaces the list"
cx rm -r /run/systemd/system/conduit.service.d
cx systemctl daemon-reload

# Enabled, started by the postinst, and its condition failed: not a failure.
run systemctl status --no-pager conduit.service
expect_eq "is-enabled conduit.service" enabled "$(cx systemctl is-enabled conduit.service)"
expect_eq "ActiveState without a configuration" inactive "$(unit_prop conduit.service ActiveState)"
expect_eq "ConditionResult without a configuration" no "$(unit_prop conduit.service ConditionResult)"
expect_eq "Result without a configuration" success "$(unit_prop conduit.service Result)"
[ -z "$(cx systemctl list-units --failed --plain --no-legend 'conduit*')" ] || failed "a conduit unit failed"

# Records how each run ends; test-only, in /run, the shipped unit untouched.
mkdir -p "$(croot)/run/systemd/system/conduit.service.d" "$(croot)/run/conduit-package"
# shellcheck disable=SC2016  # $$ is systemd's escape for a literal $
printf '[Service]\nExecStopPost=+/bin/sh -c "echo $$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS >>/run/conduit-package/exit"\n' \
  >"$(croot)/run/systemd/system/conduit.service.d/package-test.conf"
cx systemctl daemon-reload

# ---------------------------------------------------------------- run, reload, stop

# `conduit init` defaults to the algod importer, as Go Conduit does; no node
# runs in the container, so the embedded generator stands in for it.
run conduit init -d $DATA -i generator || failed "conduit init"
run systemctl start conduit.service || failed "systemctl start conduit"
wait_for 30 "rounds over the bus" next_round_above 2
run systemctl status --no-pager --lines=3 conduit.service
pid=$(unit_prop conduit.service MainPID)
expect_eq "service user" conduit "$(cx ps -o user= -p "$pid" | tr -d ' ')"

run systemctl reload conduit.service || failed "systemctl reload conduit"
expect_eq "MainPID after reload" "$pid" "$(unit_prop conduit.service MainPID)"
r=$(next_round)
wait_for 30 "rounds after the reload" next_round_above "$r"
say "  ok: NextRound $r -> $(next_round) after the reload"

run systemctl stop conduit.service || failed "systemctl stop conduit"
expect_eq "end of the run (systemctl stop)" "success exited 0" "$(last_exit)"

# ---------------------------------------------------------------- permanent errors

# An instance without a configuration: condition failed, not failed.
run systemctl start conduit@unconfigured.service || failed "start conduit@unconfigured"
expect_eq "conduit@unconfigured ConditionResult" no "$(unit_prop conduit@unconfigured.service ConditionResult)"
expect_eq "conduit@unconfigured ActiveState" inactive "$(unit_prop conduit@unconfigured.service ActiveState)"

# An error restarting cannot fix (here: corrupt block files, exit status 1 every
# run) ends in the start limit instead of a restart every RestartSec forever.
# Only RestartSec is shortened (drop-in); StartLimit* are the shipped ones.
perm=$DATA/permanent
mkdir -p "$(croot)$perm/blocks"
for r in 0 1 2 3; do printf 'not a gzip msgpack block\n' >"$(croot)$perm/blocks/${r}_block.msgp.gz"; done
printf '{"id": "v1", "network": "pkg-net", "proto": "pkg", "rwd": "pkg", "fees": "pkg", "timestamp": 0}\n' \
  >"$(croot)$perm/blocks/genesis.json"
printf '[importer]\nname = "file_reader"\n[importer.config]\nblock-dir = "%s/blocks"\n\n[exporter]\nname = "noop"\n' \
  "$perm" >"$(croot)$perm/conduit.toml"
mkdir -p "$(croot)/run/systemd/system/conduit@permanent.service.d"
printf '[Service]\nRestartSec=100ms\n' >"$(croot)/run/systemd/system/conduit@permanent.service.d/package-test.conf"
cx systemctl daemon-reload
step "systemctl start conduit@permanent.service   (corrupt blocks, RestartSec=100ms)"
cx systemctl start conduit@permanent.service >/dev/null 2>&1
# "failed" (not "activating (auto-restart)") means no further restart is scheduled.
wait_for 120 "conduit@permanent to stop restarting (ActiveState=failed)" \
  bash -c "[ \"\$(nsenter -t $CONTAINER_PID -m -u -i -p -- systemctl show -P ActiveState conduit@permanent.service)\" = failed ]"
cx journalctl --no-pager -q -u conduit@permanent.service | grep -q "Start request repeated too quickly" \
  || failed "conduit@permanent failed, but not by its start limit: $(cx journalctl --no-pager -q -n 5 -u conduit@permanent.service)"
say "  ok: $(cx journalctl --no-pager -q -o cat -u conduit@permanent.service | grep -m1 'Start request repeated too quickly')"
say "  ok: gave up after NRestarts=$(unit_prop conduit@permanent.service NRestarts) (StartLimitBurst=$(unit_prop conduit@permanent.service StartLimitBurst) in $(unit_prop conduit@permanent.service StartLimitIntervalUSec))"
cx systemctl reset-failed conduit@permanent.service

# ---------------------------------------------------------------- remove, purge

run systemctl start conduit.service || failed "second start"
wait_for 30 "rounds before the remove" next_round_above 2
apt_get remove conduit
expect_eq "end of the run (apt-get remove)" "success exited 0" "$(last_exit)"
cx test ! -e /usr/bin/conduit || failed "/usr/bin/conduit still there after remove"
[ "$(cx journalctl --no-pager -q -p err -u conduit.service | wc -l)" = 0 ] \
  || failed "err-priority journal entries: $(cx journalctl --no-pager -q -p err -u conduit.service)"
say "  ok: no err-priority journal entries for conduit.service"

apt_get purge conduit
cx test -f $DATA/conduit.toml || failed "purge removed $DATA/conduit.toml"
cx test -f $DATA/metadata.json || failed "purge removed $DATA/metadata.json"
run ls $DATA
say "  ok: purge left $DATA alone (debian/README.Debian)"

stop_container
say ""
say "package: passed"
