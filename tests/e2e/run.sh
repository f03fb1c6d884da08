#!/usr/bin/env bash
# End-to-end tests of the conduit service against a real systemd, journald and
# system bus. For every scenario it boots systemd in a throw-away
# container over the host's own tree (systemd-nspawn --volatile=yes -D /), with
# conduit installed with DESTDIR into a staging dir laid over /usr, and drives
# it from outside with nsenter ... systemctl / busctl / journalctl.
#
# Usage: tests/e2e/run.sh [SCENARIO...]     (default: all; names below)
# Environment:
#   CONDUIT_E2E_BUILD_DIR  build dir to configure (--prefix=/usr, -Dtest_plugins=true)
#                          and install from (default: SOURCE/build-e2e)
#   CONDUIT_E2E_REQUIRE=1  a run that cannot boot the container fails instead of skipping (CI)
#   CONDUIT_E2E_KEEP_LOGS=DIR  copy each scenario's journal and console log there
# Exit status: 0 all run scenarios passed, 1 some failed, 77 all skipped (meson: SKIP).
# Needs root, systemd-nspawn (systemd-container), nsenter/unshare/setpriv (util-linux),
# dbus-send (dbus), python3.
set -uo pipefail

SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly SOURCE_ROOT
readonly BUILD_DIR=${CONDUIT_E2E_BUILD_DIR:-$SOURCE_ROOT/build-e2e}
readonly ALL_SCENARIOS=(start stop_end_of_round stop_now reload importer_failure watchdog
                        access_denied instances reload_then_stop stop_sequences external_plugin)
readonly BUS_PATH=/org/conduit/Pipeline BUS_IFACE=org.conduit.Pipeline
readonly EXPECTED_STOP_ID=6b0a1c7e3d2f4e58a9c1b2d3e4f5a601
readonly UNEXPECTED_STOP_ID=e2c94f1d7a3b4c6d8e9f0a1b2c3d4e02
readonly DATA=/var/lib/conduit

declare -A RESULT
WORK="" NSPAWN_PID="" CONTAINER_PID="" CURSOR="" FAILED_BECAUSE=""

log() { printf 'e2e: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- reporting

record() {  # scenario, passed|failed|skipped, reason
  RESULT[$1]=$2
  if [ -n "${3:-}" ]; then printf '%-20s %s: %s\n' "$1" "$2" "$3"; else printf '%-20s %s\n' "$1" "$2"; fi
}

summary_and_exit() {
  local passed=0 failed=0 skipped=0 s
  for s in "${SCENARIOS[@]}"; do
    case ${RESULT[$s]:-skipped} in
      passed) passed=$((passed + 1)) ;;
      failed) failed=$((failed + 1)) ;;
      *) skipped=$((skipped + 1)) ;;
    esac
  done
  echo "$passed passed, $failed failed, $skipped skipped"
  if [ "$failed" -gt 0 ]; then exit 1; fi
  if [ "$passed" -eq 0 ]; then exit 77; fi
  exit 0
}

skip_all() {  # reason
  local s
  for s in "${SCENARIOS[@]}"; do
    if [ "${CONDUIT_E2E_REQUIRE:-0}" = 1 ]; then
      record "$s" failed "cannot run, and CONDUIT_E2E_REQUIRE=1: $1"
    else
      record "$s" skipped "$1"
    fi
  done
  summary_and_exit
}

# An assertion: on failure remembers why and returns 1 (scenarios chain them with ||).
fail() { FAILED_BECAUSE="$*"; return 1; }
expect_eq() {  # what, expected, actual
  [ "$3" = "$2" ] || fail "$1: expected '$2', got '$3'"
}

# ---------------------------------------------------------------- container

# cx, croot, await_container_systemd, boot_finished, stop_container, cleanup (trapped).
source "$(dirname "$0")/container.sh"

# Polls a command until it succeeds, at most TIMEOUT seconds (events seen through
# systemctl/busctl/journal state, never a fixed sleep).
wait_for() {  # timeout-seconds, description, command...
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out after ${timeout}s waiting for $what"; return 1; fi
    sleep 0.1
  done
}

boot_container() {  # name
  local name=$1
  # /run is no tmpfs on these hosts, and nspawn cannot clean up its
  # /run/systemd/nspawn after the first run then: give it a tmpfs, in a private
  # mount namespace so nothing outlives the container.
  unshare --mount --propagation private sh -c '
    mkdir -p /run/systemd/nspawn && mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn &&
    exec systemd-nspawn --quiet --keep-unit --register=no --volatile=yes -D / -M "$0" -b \
      --private-network \
      --overlay-ro=/usr:"$1"/usr:/usr --bind-ro="$1":/run/stage --bind-ro=/etc/nsswitch.conf \
      systemd.firstboot=off systemd.show_status=false systemd.mask=postgresql.service \
      systemd.mask=console-getty.service systemd.mask=systemd-networkd-wait-online.service' "$name" "$WORK/stage" \
    </dev/null >"$WORK/console-$name.log" 2>&1 &
  NSPAWN_PID=$!
  if ! await_container_systemd; then
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then fail "container's systemd did not start"
    else fail "systemd-nspawn exited: $(tail -3 "$WORK/console-$name.log" | tr '\n' ' ')"; fi
    return 1
  fi
  wait_for 60 "the container to finish booting" boot_finished || return 1
  local state; state=$(cx systemctl is-system-running 2>/dev/null)
  [ "$state" = running ] || log "container boot state '$state' (failed: $(cx systemctl --failed --plain --no-legend --no-pager | tr '\n' ' '))"
  return 0
}

# Makes the staged install visible to the container's systemd, journald, dbus-daemon.
install_into_container() {
  local f rel
  # Units meson installs outside /usr (Debian's systemd.pc says /lib/systemd/system)
  # are not under the /usr overlay: copy them into /etc.
  while IFS= read -r -d '' f; do
    rel=${f#"$WORK/stage"}
    case $rel in
      /usr/*) ;;  # visible through the overlay
      */systemd/system/*) mkdir -p "$(croot)/etc/systemd/system" && cp "$f" "$(croot)/etc/systemd/system/" ;;
      */sysusers.d/*) mkdir -p "$(croot)/etc/sysusers.d" && cp "$f" "$(croot)/etc/sysusers.d/" ;;
      */systemd/catalog/*) mkdir -p "$(croot)/etc/systemd/catalog" && cp "$f" "$(croot)/etc/systemd/catalog/" ;;
      */dbus-1/system.d/*) mkdir -p "$(croot)/etc/dbus-1/system.d" && cp "$f" "$(croot)/etc/dbus-1/system.d/" ;;
      *) log "staged file outside /usr left out: $rel" ;;
    esac
  done < <(find "$WORK/stage" -type f -print0)
  cx systemd-sysusers >/dev/null || { fail "systemd-sysusers failed"; return 1; }
  cx journalctl --update-catalog || { fail "journalctl --update-catalog failed"; return 1; }
  cx systemctl daemon-reload || { fail "daemon-reload failed"; return 1; }
  cx busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig \
    || { fail "dbus ReloadConfig failed"; return 1; }
  # Short restart/watchdog delays keep the suite fast; the scenarios assert on the
  # unit's own settings otherwise. A drop-in, so the shipped unit stays untouched.
  write_dropin conduit.service
  write_dropin conduit@.service
  cx systemctl daemon-reload
}

# Test-only settings, in a drop-in so the shipped unit stays untouched. ExecStopPost
# records how each run ended ($SERVICE_RESULT $EXIT_CODE $EXIT_STATUS): systemd
# forgets an inactive unit's exit status as soon as it garbage-collects the unit.
write_dropin() {  # unit, extra [Service] lines...
  local unit=$1; shift
  mkdir -p "$(croot)/run/systemd/system/$unit.d" "$(croot)/run/conduit-e2e"
  {
    printf '[Service]\nRestartSec=1s\nLimitCORE=0\n'
    # shellcheck disable=SC2016  # $$ is systemd's escape for a literal $ for the shell
    printf '%s\n' 'ExecStopPost=+/bin/sh -c "echo $$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS >>/run/conduit-e2e/%n.exit"'
    local line; for line in "$@"; do printf '%s\n' "$line"; done
  } >"$(croot)/run/systemd/system/$unit.d/e2e.conf"
}
# How the unit's last run ended: "success exited 0", "watchdog killed ABRT", ...
last_exit() { tail -n1 "$(croot)/run/conduit-e2e/$1.exit" 2>/dev/null; }

# ---------------------------------------------------------------- helpers for scenarios

unit_prop() { cx systemctl show -P "$2" "$1"; }           # unit, property
bus_prop() {  # bus-name, property -> value without the type letter and quotes
  local out
  out=$(cx busctl --system get-property "$1" "$BUS_PATH" "$BUS_IFACE" "$2") || return 1
  out=${out#* }
  out=${out#\"}
  echo "${out%\"}"
}
next_round_above() { local v; v=$(bus_prop "$1" NextRound) && [ "$v" -gt "$2" ]; }
unit_is() { [ "$(unit_prop "$1" ActiveState)" = "$2" ]; }
unit_in() { local s; s=$(unit_prop "$1" ActiveState); [[ " $2 " == *" $s "* ]]; }
checkpoint() {  # data-dir -> next-round of metadata.json
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next-round"])' "$(croot)$1/metadata.json"
}
has_plugin() {  # kind, name
  cx /usr/bin/conduit list "$1" 2>/dev/null | grep -qE -- "^  $2( |\$)"
}

# The journal position before a step: the sequence number (i= in the cursor) of the newest entry.
# (Entries are then filtered by __SEQNUM rather than with --after-cursor: journalctl
# 252 combining --after-cursor with field matches skipped entries now and then.)
mark_journal() {
  cx journalctl --sync 2>/dev/null
  CURSOR=$(cx journalctl --no-pager -q -n1 -o json | python3 -c 'import json,re,sys
print(int(re.search(r"i=([0-9a-f]+)", json.loads(sys.stdin.read())["__CURSOR"]).group(1), 16))')
}
# Entries since mark_journal as JSON lines (after journald has written all pending ones).
journal_json() {  # journalctl matches...
  cx journalctl --sync 2>/dev/null
  cx journalctl --no-pager -q -o json "$@" | python3 -c '
import json, re, sys
mark = int(sys.argv[1])
for line in sys.stdin:
    if line.strip() and int(re.search(r"i=([0-9a-f]+)", json.loads(line)["__CURSOR"]).group(1), 16) > mark:
        sys.stdout.write(line)' "$CURSOR"
}
journal_has() {  # text, matches...: some entry since the mark has text in its MESSAGE
  local text=$1; shift
  local expr; expr="$(python3 -c 'import sys; print(repr(sys.argv[1]))' "$text") in str(e.get('MESSAGE', ''))"
  [ "$(journal_json "$@" | count_entries "$expr")" -ge 1 ]
}
# Counts the JSON journal lines on stdin for which a python expression on `e` holds.
count_entries() {
  python3 -c '
import json, sys
expr = sys.argv[1]
n = 0
for line in sys.stdin:
    if not line.strip():
        continue
    e = json.loads(line)
    if eval(expr, {}, {"e": e}):
        n += 1
print(n)' "$1"
}

# Writes a conduit.toml: $IMPORTER_TOML (default: a generator, 10 rounds/s), the
# given processors, noop exporter (file_writer when registered, into DIR/out).
readonly GENERATOR_TOML='[importer]
name = "generator"
[importer.config]
round-interval = "100ms"
txns-per-round = 5'
write_config() {  # data-dir, extra-toml-for-processors...
  local dir=$1; shift
  mkdir -p "$(croot)$dir"
  {
    cat <<EOF
log-level = "info"
retry-count = 2
retry-delay = "100ms"
stop-timeout = "20s"

${IMPORTER_TOML:-$GENERATOR_TOML}
EOF
    local p; for p in "$@"; do printf '\n%s\n' "$p"; done
    if [ "$HAVE_FILE_WRITER" = 1 ]; then
      cat <<EOF

[exporter]
name = "file_writer"
[exporter.config]
block-dir = "$dir/out"
filename-pattern = "%[1]d_block.json"
EOF
    else
      printf '\n[exporter]\nname = "noop"\n'
    fi
  } >"$(croot)$dir/conduit.toml"
}

# Exported files (file_writer) are whole JSON and exactly the rounds below the checkpoint.
check_output() {  # data-dir, first-round
  [ "$HAVE_FILE_WRITER" = 1 ] || return 0
  local cp; cp=$(checkpoint "$1") || { fail "no readable metadata.json"; return 1; }
  python3 - "$(croot)$1/out" "$2" "$cp" <<'EOF' || { fail "$(cat "$WORK/out-check")"; return 1; }
import json, os, re, sys
out, first, cp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rounds = []
problems = []
for name in sorted(os.listdir(out)):
    if name == "genesis.json":
        continue
    m = re.fullmatch(r"(\d+)_block\.json", name)
    if not m:
        problems.append(f"unexpected file {name}")
        continue
    rounds.append(int(m.group(1)))
    try:
        json.load(open(os.path.join(out, name)))
    except Exception as err:
        problems.append(f"{name} is not whole JSON: {err}")
rounds.sort()
if rounds != list(range(first, cp)):
    problems.append(f"exported rounds {rounds[:3]}..{rounds[-3:]} ({len(rounds)}) != [{first}, {cp})")
if problems:
    open(os.environ["WORK"] + "/out-check", "w").write("; ".join(problems[:5]))
    sys.exit(1)
EOF
}

no_temp_files() {  # dir
  local left; left=$(find "$(croot)$1" \( -name '*.tmp*' -o -name '.*' -o -name '*~' \) -printf '%P ' 2>/dev/null)
  [ -z "$left" ] || fail "temp files left in $1: $left"
}

# The final stop entry of the unit's process since the mark: one expected-stop entry
# with stop-requested whose text names the mode, and no err-priority entry at all.
check_expected_stop_journal() {  # unit, mode
  local j; j=$(journal_json "_SYSTEMD_UNIT=$1")
  local n_expected n_err n_mode
  n_expected=$(count_entries "e.get('MESSAGE_ID') == '$EXPECTED_STOP_ID' and e.get('CONDUIT_STOP_REASON') == 'stop-requested'" <<<"$j")
  n_err=$(count_entries "int(e.get('PRIORITY', 6)) <= 3" <<<"$j")
  n_mode=$(count_entries "e.get('MESSAGE_ID') == '$EXPECTED_STOP_ID' and '$2' in str(e.get('MESSAGE', ''))" <<<"$j")
  expect_eq "expected-stop journal entries (MESSAGE_ID=$EXPECTED_STOP_ID, CONDUIT_STOP_REASON=stop-requested)" 1 "$n_expected" || return 1
  expect_eq "err-priority journal entries of $1" 0 "$n_err" || return 1
  expect_eq "expected-stop entries whose MESSAGE names mode '$2'" 1 "$n_mode" || return 1
  # Nor from systemd about the unit.
  local n_sys; n_sys=$(journal_json -p err "UNIT=$1" + "_SYSTEMD_UNIT=$1" | count_entries "True")
  expect_eq "err-priority entries about $1 (systemd and conduit)" 0 "$n_sys" || return 1
  # The entry's CONDUIT_ROUND is the checkpoint on disk.
  local data=$DATA; [[ $1 == conduit@* ]] && data=$DATA/$(systemd-escape -u --instance "$1")
  local cp; cp=$(checkpoint "$data") || { fail "no readable $data/metadata.json"; return 1; }
  local n_round; n_round=$(count_entries "e.get('MESSAGE_ID') == '$EXPECTED_STOP_ID' and e.get('CONDUIT_ROUND') == '$cp'" <<<"$j")
  expect_eq "expected-stop entries with CONDUIT_ROUND = metadata.json next-round ($cp)" 1 "$n_round"
}

start_running() {  # unit, bus-name
  cx systemctl start "$1" || { fail "systemctl start $1 failed: $(cx systemctl status --no-pager -n 20 "$1" | tail -12)"; return 1; }
  expect_eq "$1 ActiveState right after start returned" active "$(unit_prop "$1" ActiveState)" || return 1
  expect_eq "State property right after start returned" running "$(bus_prop "$2" State)"
}

# ---------------------------------------------------------------- scenarios

scenario_start() {
  write_config $DATA
  expect_eq "conduit.service Type" notify "$(unit_prop conduit.service Type)" || return 1
  mark_journal
  start_running conduit.service org.conduit.Pipeline || return 1
  # start returned, so systemd had READY=1 (Type=notify): and it came from the daemon.
  local r1; r1=$(bus_prop org.conduit.Pipeline NextRound) || { fail "cannot read NextRound"; return 1; }
  wait_for 20 "NextRound to grow past $r1" next_round_above org.conduit.Pipeline "$r1" || return 1
  expect_eq "ActiveState while rounds flow" active "$(unit_prop conduit.service ActiveState)" || return 1
  expect_eq "user of the service process" conduit \
    "$(cx ps -o user= -p "$(unit_prop conduit.service MainPID)" | tr -d ' ')" || return 1
  local status; status=$(unit_prop conduit.service StatusText)
  [ -n "$status" ] || fail "STATUS= is empty while running" || return 1
  cx systemctl stop conduit.service
}

scenario_stop_end_of_round() {
  write_config $DATA
  start_running conduit.service org.conduit.Pipeline || return 1
  wait_for 20 "a few rounds" next_round_above org.conduit.Pipeline 3 || return 1
  mark_journal
  cx busctl --system call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s end-of-round \
    || { fail "busctl Stop end-of-round failed"; return 1; }
  wait_for 30 "conduit.service to go inactive" unit_is conduit.service inactive || return 1
  expect_eq "how the run ended (SERVICE_RESULT EXIT_CODE EXIT_STATUS)" "success exited 0" "$(last_exit conduit.service)" || return 1
  check_expected_stop_journal conduit.service end-of-round || return 1
  local cp; cp=$(checkpoint $DATA) || { fail "metadata.json unreadable"; return 1; }
  [ "$cp" -gt 3 ] || fail "checkpoint $cp: rounds were exported, expected > 3" || return 1
  check_output $DATA 0 || return 1
  no_temp_files $DATA
}

scenario_stop_now() {
  write_config $DATA
  start_running conduit.service org.conduit.Pipeline || return 1
  wait_for 20 "a few rounds" next_round_above org.conduit.Pipeline 3 || return 1
  mark_journal
  cx systemctl stop conduit.service || { fail "systemctl stop failed"; return 1; }
  expect_eq "ActiveState after systemctl stop returned" inactive "$(unit_prop conduit.service ActiveState)" || return 1
  expect_eq "how the run ended (SERVICE_RESULT EXIT_CODE EXIT_STATUS)" "success exited 0" "$(last_exit conduit.service)" || return 1
  check_expected_stop_journal conduit.service now || return 1
  checkpoint $DATA >/dev/null || { fail "metadata.json unreadable"; return 1; }
  check_output $DATA 0 || return 1
  no_temp_files $DATA
}

scenario_reload() {
  write_config $DATA
  start_running conduit.service org.conduit.Pipeline || return 1
  local pid; pid=$(unit_prop conduit.service MainPID)
  wait_for 20 "a few rounds" next_round_above org.conduit.Pipeline 3 || return 1
  # A changed config: one more processor (and smaller blocks when file_writer shows them).
  mark_journal
  write_config $DATA $'[[processors]]\nname = "noop"'
  sed -i 's/^txns-per-round = 5/txns-per-round = 2/' "$(croot)$DATA/conduit.toml"
  local before; before=$(bus_prop org.conduit.Pipeline NextRound)
  cx systemctl reload conduit.service || { fail "systemctl reload failed: $(cx journalctl -u conduit -n 5 -o cat --no-pager | tr '\n' ' ')"; return 1; }
  expect_eq "ActiveState after reload" active "$(unit_prop conduit.service ActiveState)" || return 1
  expect_eq "MainPID after reload" "$pid" "$(unit_prop conduit.service MainPID)" || return 1
  expect_eq "State after reload" running "$(bus_prop org.conduit.Pipeline State)" || return 1
  local after; after=$(bus_prop org.conduit.Pipeline NextRound)
  [ "$after" -ge "$before" ] || fail "NextRound went back across the reload: $before -> $after" || return 1
  wait_for 20 "rounds after the reload" next_round_above org.conduit.Pipeline "$((after + 2))" || return 1
  local n_reload_err; n_reload_err=$(journal_json _SYSTEMD_UNIT=conduit.service | count_entries "int(e.get('PRIORITY', 6)) <= 3")
  expect_eq "err entries across a good reload" 0 "$n_reload_err" || return 1

  # A broken config is refused, visibly, and the pipeline keeps going.
  mark_journal
  printf 'this is = = not toml\n' >>"$(croot)$DATA/conduit.toml"
  # ExecReload= is "-"-prefixed (a stop during a reload must not fail the unit),
  # so systemctl reload does not fail; the D-Bus caller gets the refusal.
  if cx busctl --system call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Reload 2>/dev/null; then fail "Reload() with a broken config succeeded"; return 1; fi
  cx systemctl reload conduit.service 2>/dev/null
  expect_eq "ActiveState after refused reload" active "$(unit_prop conduit.service ActiveState)" || return 1
  expect_eq "MainPID after refused reload" "$pid" "$(unit_prop conduit.service MainPID)" || return 1
  local r; r=$(bus_prop org.conduit.Pipeline NextRound)
  wait_for 20 "rounds after the refused reload" next_round_above org.conduit.Pipeline "$r" || return 1
  local n_refusal; n_refusal=$(journal_json _SYSTEMD_UNIT=conduit.service | count_entries "'conduit.toml' in str(e.get('MESSAGE', ''))")
  [ "$n_refusal" -ge 1 ] || fail "the refused reload left no journal entry naming conduit.toml" || return 1
  cx systemctl stop conduit.service || { fail "stop after reloads failed"; return 1; }
  expect_eq "end of the run after reloads" "success exited 0" "$(last_exit conduit.service)" || return 1
  check_output $DATA 0 || return 1
  if [ "$HAVE_FILE_WRITER" = 1 ]; then
    # The change took effect at one round boundary: txn counts go 5...5 then 2...2.
    python3 - "$(croot)$DATA/out" <<'EOF' || { fail "reload did not switch at one round boundary"; return 1; }
import json, os, re, sys
d = sys.argv[1]
def ntx(b):
    p = b.get("block", b).get("payset") or b.get("payset") or []
    return len(p)
files = sorted((int(re.match(r"\d+", n).group()), n) for n in os.listdir(d) if n != "genesis.json")
counts = [ntx(json.load(open(os.path.join(d, n)))) for _, n in files]
switches = sum(1 for a, b in zip(counts, counts[1:]) if a != b)
sys.exit(0 if switches == 1 and counts[0] == 5 and counts[-1] == 2 else 1)
EOF
  fi
}

scenario_importer_failure() {
  local IMPORTER_TOML
  if has_plugin importers file_reader; then
    # A block file that is corrupt.
    mkdir -p "$(croot)$DATA/blocks"
    local r; for r in 0 1 2 3; do printf 'this is not a gzip msgpack block\n' >"$(croot)$DATA/blocks/${r}_block.msgp.gz"; done
    printf '{"id": "v1", "network": "e2e-net", "proto": "e2e", "rwd": "e2e", "fees": "e2e", "timestamp": 0}\n' \
      >"$(croot)$DATA/blocks/genesis.json"
    IMPORTER_TOML=$(printf '[importer]\nname = "file_reader"\n[importer.config]\nblock-dir = "%s"' "$DATA/blocks")
  elif has_plugin importers corrupt; then
    log "importer_failure: no file_reader yet, using the test-only corrupt importer"
    IMPORTER_TOML=$'[importer]\nname = "corrupt"'
  else
    SKIP_BECAUSE="neither file_reader nor the test-only corrupt importer is registered"
    return 2
  fi
  write_config $DATA
  mark_journal
  cx systemctl start conduit.service  # may fail before or after READY=1
  # Restarted, and the restarted run failed the same way (two restarts scheduled).
  wait_for 40 "Restart=on-failure to restart it twice (NRestarts >= 2)" \
    bash -c "[ \"\$(nsenter -t $CONTAINER_PID -m -u -i -p -- systemctl show -P NRestarts conduit.service)\" -ge 2 ]" || return 1
  cx systemctl stop conduit.service
  local j; j=$(journal_json _SYSTEMD_UNIT=conduit.service)
  # Per run (invocation): exactly one err entry, the unexpected-stop one with importer-error.
  python3 - "$UNEXPECTED_STOP_ID" <<'EOF' >"$WORK/why" 3<<<"$j" || { fail "$(cat "$WORK/why")"; return 1; }
import collections, json, os, sys
runs = collections.defaultdict(list)
for line in os.fdopen(3):
    if line.strip():
        e = json.loads(line)
        if int(e.get("PRIORITY", 6)) <= 3:
            runs[e.get("_SYSTEMD_INVOCATION_ID")].append(e)
if len(runs) < 2:
    print(f"err-priority entries from {len(runs)} runs, expected one per run and at least 2 runs")
    sys.exit(1)
for inv, es in runs.items():
    if len(es) != 1:
        print(f"run {inv}: {len(es)} err entries: " + " | ".join(str(e.get("MESSAGE")) for e in es))
        sys.exit(1)
    e = es[0]
    if e.get("MESSAGE_ID") != sys.argv[1] or e.get("CONDUIT_STOP_REASON") != "importer-error":
        print("err entry %r has MESSAGE_ID=%s CONDUIT_STOP_REASON=%s"
              % (e.get("MESSAGE"), e.get("MESSAGE_ID"), e.get("CONDUIT_STOP_REASON")))
        sys.exit(1)
EOF
  local ended; ended=$(head -n1 "$(croot)/run/conduit-e2e/conduit.service.exit")
  expect_eq "how the first run ended" "exit-code exited 1" "$ended" || return 1
  cx journalctl --no-pager -x -n 1 MESSAGE_ID=$UNEXPECTED_STOP_ID | grep -q "conduit stopped unexpectedly" \
    || fail "journalctl -x does not show the catalog text for $UNEXPECTED_STOP_ID" || return 1
  local n_fail; n_fail=$(journal_json UNIT=conduit.service _PID=1 | count_entries "'exit-code' in str(e.get('MESSAGE', ''))")
  [ "$n_fail" -ge 1 ] || fail "systemd did not log the unit failing with exit-code" || return 1
}

scenario_watchdog() {
  if ! has_plugin processors wedge; then
    SKIP_BECAUSE="no wedge test plugin (build with -Dtest_plugins=true)"
    return 2
  fi
  local wedge_round=8
  write_config $DATA $'[[processors]]\nname = "wedge"\n[processors.config]\nwedge-at-round = '$wedge_round
  write_dropin conduit.service WatchdogSec=3s
  cx systemctl daemon-reload
  mark_journal
  start_running conduit.service org.conduit.Pipeline || return 1
  local first_pid; first_pid=$(unit_prop conduit.service MainPID)
  expect_eq "WatchdogUSec (drop-in)" 3s "$(unit_prop conduit.service WatchdogUSec)" || return 1
  # Wedged: every round before the wedge exported, and then nothing.
  wait_for 20 "the rounds before the wedge" next_round_above org.conduit.Pipeline "$((wedge_round - 1))" || return 1
  # The wedge plugin sleeps (nothing else in conduit does): wait until one of the
  # service's threads is in it, so the stop below surely finds the round wedged.
  wait_for 20 "a thread of MainPID $first_pid inside the wedge" \
    grep -qs nanosleep "$(croot)/proc/$first_pid/task/"*/wchan || return 1
  expect_eq "NextRound while wedged" "$wedge_round" "$(bus_prop org.conduit.Pipeline NextRound)" || return 1
  # Nobody asks it to stop: a processor stuck in one call for a watchdog period is
  # wedged by itself. (E2E_WEDGE_STOP=1: also ask for a stop the wedge ignores.)
  if [ "${E2E_WEDGE_STOP:-0}" = 1 ]; then
    cx busctl --system --expect-reply=no call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s now \
      || { fail "busctl Stop now failed"; return 1; }
  fi
  wait_for 30 "systemd's watchdog timeout" \
    journal_has "result 'watchdog'" UNIT=conduit.service _PID=1 || return 1
  wait_for 30 "the restart after the watchdog kill" \
    bash -c "[ \"\$(nsenter -t $CONTAINER_PID -m -u -i -p -- systemctl show -P NRestarts conduit.service)\" -ge 1 ] && [ \"\$(nsenter -t $CONTAINER_PID -m -u -i -p -- systemctl show -P ActiveState conduit.service)\" = active ]" || return 1
  local ended; ended=$(head -n1 "$(croot)/run/conduit-e2e/conduit.service.exit")
  [[ $ended == "watchdog "* ]] || fail "the wedged run ended with '$ended', expected Result=watchdog" || return 1
  local pid; pid=$(unit_prop conduit.service MainPID)
  [ "$pid" != "$first_pid" ] || fail "MainPID unchanged after the watchdog restart" || return 1
  # Rounds before the wedge were committed; the wedged one never was.
  local cp; cp=$(checkpoint $DATA) || { fail "metadata.json unreadable after the watchdog kill"; return 1; }
  expect_eq "checkpoint after the watchdog kill" "$wedge_round" "$cp" || return 1
  expect_eq "NextRound of the restarted service" "$wedge_round" "$(bus_prop org.conduit.Pipeline NextRound)" || return 1
  cx systemctl kill -s KILL conduit.service; cx systemctl stop conduit.service
  check_output $DATA 0
}

scenario_access_denied() {
  write_config $DATA
  start_running conduit.service org.conduit.Pipeline || return 1
  local out
  out=$(cx setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply \
        --dest=org.conduit.Pipeline $BUS_PATH $BUS_IFACE.Stop string:now 2>&1)
  [[ $out == *org.freedesktop.DBus.Error.AccessDenied* ]] \
    || fail "Stop as nobody: expected org.freedesktop.DBus.Error.AccessDenied, got: $out" || return 1
  out=$(cx setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply \
        --dest=org.conduit.Pipeline $BUS_PATH $BUS_IFACE.Reload 2>&1)
  [[ $out == *org.freedesktop.DBus.Error.AccessDenied* ]] \
    || fail "Reload as nobody: expected AccessDenied, got: $out" || return 1
  # Reading properties is allowed to anyone.
  out=$(cx setpriv --reuid=65534 --regid=65534 --clear-groups busctl --system get-property \
        org.conduit.Pipeline $BUS_PATH $BUS_IFACE State 2>&1)
  expect_eq "State read by nobody" 's "running"' "$out" || return 1
  expect_eq "ActiveState after the denied Stop" active "$(unit_prop conduit.service ActiveState)" || return 1
  cx systemctl stop conduit.service
}

scenario_instances() {
  write_config $DATA/a
  write_config $DATA/b
  mark_journal
  start_running conduit@a.service org.conduit.Pipeline.a || return 1
  start_running conduit@b.service org.conduit.Pipeline.b || return 1
  local pa pb; pa=$(unit_prop conduit@a.service MainPID) pb=$(unit_prop conduit@b.service MainPID)
  [ "$pa" != "$pb" ] || fail "both instances have MainPID $pa" || return 1
  wait_for 20 "rounds in a" next_round_above org.conduit.Pipeline.a 2 || return 1
  wait_for 20 "rounds in b" next_round_above org.conduit.Pipeline.b 2 || return 1
  cx systemctl stop conduit@a.service || { fail "stop conduit@a failed"; return 1; }
  expect_eq "conduit@a ActiveState" inactive "$(unit_prop conduit@a.service ActiveState)" || return 1
  expect_eq "end of conduit@a's run" "success exited 0" "$(last_exit conduit@a.service)" || return 1
  expect_eq "conduit@b ActiveState after stopping a" active "$(unit_prop conduit@b.service ActiveState)" || return 1
  expect_eq "conduit@b MainPID after stopping a" "$pb" "$(unit_prop conduit@b.service MainPID)" || return 1
  local rb; rb=$(bus_prop org.conduit.Pipeline.b NextRound)
  wait_for 20 "b to keep going" next_round_above org.conduit.Pipeline.b "$rb" || return 1
  local cpa; cpa=$(checkpoint $DATA/a) || { fail "a's metadata.json unreadable"; return 1; }
  cx systemctl stop conduit@b.service || { fail "stop conduit@b failed"; return 1; }
  expect_eq "end of conduit@b's run" "success exited 0" "$(last_exit conduit@b.service)" || return 1
  expect_eq "a's checkpoint untouched by b" "$cpa" "$(checkpoint $DATA/a)" || return 1
  [ ! -e "$(croot)$DATA/metadata.json" ] || fail "an instance wrote $DATA/metadata.json" || return 1
  check_output $DATA/a 0 && check_output $DATA/b 0 || return 1
  local j n
  for inst in a b; do
    j=$(journal_json "_SYSTEMD_UNIT=conduit@$inst.service")
    n=$(count_entries "e.get('MESSAGE_ID') == '$EXPECTED_STOP_ID'" <<<"$j")
    expect_eq "expected-stop entries of conduit@$inst" 1 "$n" || return 1
  done
}

# Reload() and at once Stop(): conduit exits 0, then systemd runs
# ExecStop= after the exit; the unit must end Result=success and not restart.
scenario_reload_then_stop() {
  write_config $DATA
  local mode
  for mode in end-of-round now; do
    start_running conduit.service org.conduit.Pipeline || return 1
    wait_for 20 "a few rounds" next_round_above org.conduit.Pipeline 2 || return 1
    mark_journal
    cx busctl --system --expect-reply=no call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Reload \
      || { fail "busctl Reload failed"; return 1; }
    cx busctl --system call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s $mode \
      || { fail "busctl Stop $mode failed"; return 1; }
    wait_for 30 "conduit.service to go inactive" unit_is conduit.service inactive || return 1
    expect_eq "how the run ended (Reload + Stop $mode)" "success exited 0" "$(last_exit conduit.service)" || return 1
    expect_eq "NRestarts after Reload + Stop $mode" 0 "$(unit_prop conduit.service NRestarts)" || return 1
    check_expected_stop_journal conduit.service "$mode" || return 1
  done
  check_output $DATA 0
}

# Seeded random sequences of Reload(), Stop(now), Stop(end-of-round),
# systemctl stop, systemctl reload, SIGUSR1 and SIGHUP, fired back to back or
# after an event, against the real systemd and system bus. After each: the run
# ended "success exited 0", NRestarts=0, exactly one STOPPING=1 (conduit logs
# each sd_notify state message at debug), no err entry from conduit or systemd
# about the run, and the block files are exactly the rounds below the checkpoint.
# E2E_SEQUENCES (default 100) and E2E_SEED (default 1) choose the sequences.
readonly SEQUENCE_ACTIONS=(bus_reload bus_stop_now bus_stop_eor systemctl_stop systemctl_reload sigusr1 sighup)
# An external plugin (the shipped ndjson_exporter, conduit-plugin(7)) under the
# unit: start, reload, SIGKILL of the child mid-run, D-Bus Stop end-of-round,
# then a start and `systemctl stop`. Each time: a clean result, no restart, no
# process left in the unit's cgroup, and the NDJSON file holds exactly the
# rounds below the checkpoint, each once.
ndjson_rounds_ok() {  # -> fails naming what is wrong
  local cp; cp=$(checkpoint $DATA) || { fail "metadata.json unreadable"; return 1; }
  python3 - "$(croot)$DATA/rounds.ndjson" "$cp" >"$WORK/ndjson-check" 2>&1 <<'EOF2' || { fail "$(cat "$WORK/ndjson-check")"; return 1; }
import json, sys
rounds = [json.loads(line)["round"] for line in open(sys.argv[1])]
cp = int(sys.argv[2])
if rounds != list(range(cp)):
    print(f"rounds.ndjson holds {len(rounds)} rounds {rounds[:3]}..{rounds[-3:]}, checkpoint {cp}")
    sys.exit(1)
EOF2
}
no_plugin_left() {
  if cx pgrep -f /usr/lib/conduit/plugins/ >/dev/null; then
    fail "plugin processes left: $(cx pgrep -af /usr/lib/conduit/plugins/ | tr '\n' ' ')"
    return 1
  fi
}
scenario_external_plugin() {
  [ -x "$(croot)/usr/lib/conduit/plugins/ndjson_exporter" ] \
    || { fail "/usr/lib/conduit/plugins/ndjson_exporter is not installed"; return 1; }
  write_config $DATA
  python3 - "$(croot)$DATA/conduit.toml" <<'EOF2'
import sys
path = sys.argv[1]
text = open(path).read()
text = text[: text.index("[exporter]")]
text += '[exporter]\nname = "ndjson_exporter"\n[exporter.config]\npath = "rounds.ndjson"\n'
open(path, "w").write(text)
EOF2
  start_running conduit.service org.conduit.Pipeline || return 1
  wait_for 20 "a few rounds" next_round_above org.conduit.Pipeline 3 || return 1
  local pid1; pid1=$(cx pgrep -f /usr/lib/conduit/plugins/ndjson_exporter | head -1)
  [ -n "$pid1" ] || { fail "no ndjson_exporter process while running"; return 1; }
  cx systemctl reload conduit.service || { fail "systemctl reload failed"; return 1; }
  local r; r=$(bus_prop org.conduit.Pipeline NextRound)
  wait_for 20 "rounds after the reload" next_round_above org.conduit.Pipeline "$((r + 3))" || return 1
  local pid2; pid2=$(cx pgrep -f /usr/lib/conduit/plugins/ndjson_exporter | head -1)
  [ -n "$pid2" ] && [ "$pid2" != "$pid1" ] || { fail "reload kept plugin process $pid1 ($pid2)"; return 1; }
  cx kill -KILL "$pid2"
  r=$(bus_prop org.conduit.Pipeline NextRound)
  wait_for 30 "rounds after SIGKILL of the plugin" next_round_above org.conduit.Pipeline "$((r + 5))" || return 1
  cx busctl --system call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s end-of-round \
    || { fail "busctl Stop end-of-round failed"; return 1; }
  wait_for 30 "conduit.service to go inactive" unit_is conduit.service inactive || return 1
  expect_eq "how the run ended (SERVICE_RESULT EXIT_CODE EXIT_STATUS)" "success exited 0" "$(last_exit conduit.service)" || return 1
  expect_eq "NRestarts" 0 "$(unit_prop conduit.service NRestarts)" || return 1
  no_plugin_left || return 1
  ndjson_rounds_ok || return 1
  start_running conduit.service org.conduit.Pipeline || return 1
  r=$(checkpoint $DATA)
  wait_for 20 "rounds after the restart" next_round_above org.conduit.Pipeline "$((r + 3))" || return 1
  cx systemctl stop conduit.service || { fail "systemctl stop failed"; return 1; }
  expect_eq "how the second run ended" "success exited 0" "$(last_exit conduit.service)" || return 1
  no_plugin_left || return 1
  ndjson_rounds_ok
}

fire() {  # action
  case $1 in
    bus_reload) cx busctl --system --expect-reply=no call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Reload ;;
    bus_stop_now) cx busctl --system --expect-reply=no call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s now ;;
    bus_stop_eor) cx busctl --system --expect-reply=no call org.conduit.Pipeline $BUS_PATH $BUS_IFACE Stop s end-of-round ;;
    systemctl_stop) cx systemctl --no-block stop conduit.service ;;
    systemctl_reload) cx systemctl --no-block reload conduit.service ;;
    sigusr1) cx systemctl kill --kill-whom=main -s USR1 conduit.service ;;
    sighup) cx systemctl kill --kill-whom=main -s HUP conduit.service ;;
  esac
}
scenario_stop_sequences() {
  local IMPORTER_TOML=$'[importer]\nname = "generator"\n[importer.config]\nround-interval = "20ms"\ntxns-per-round = 2'
  write_config $DATA
  sed -i 's/^log-level = "info"/log-level = "debug"/' "$(croot)$DATA/conduit.toml"
  local n=${E2E_SEQUENCES:-100} seed=${E2E_SEED:-1} i k action actions runs_before runs_after inv
  local invocations=""
  RANDOM=$seed
  for ((i = 0; i < n; i++)); do
    runs_before=$(cat "$(croot)/run/conduit-e2e/conduit.service.exit" 2>/dev/null | wc -l)
    cx systemctl start conduit.service || { fail "sequence $i: systemctl start failed"; return 1; }
    inv=$(unit_prop conduit.service InvocationID)
    wait_for 10 "rounds before sequence $i" next_round_above org.conduit.Pipeline 0 || return 1
    actions=""
    local requested_stop=0 count=$((1 + RANDOM % 4))
    for ((k = 0; k < count; k++)); do
      action=${SEQUENCE_ACTIONS[RANDOM % ${#SEQUENCE_ACTIONS[@]}]}
      # Sometimes let the previous request take effect first (an event, bounded).
      if [ $((RANDOM % 3)) = 0 ]; then
        wait_for 5 "State running" bash -c "[ \"\$(nsenter -t $CONTAINER_PID -m -u -i -p -- busctl --system get-property org.conduit.Pipeline $BUS_PATH $BUS_IFACE State 2>/dev/null)\" != 's \"reloading\"' ]" 2>/dev/null
        FAILED_BECAUSE=""
      fi
      actions+="$action "
      fire "$action" >/dev/null 2>&1
      case $action in bus_stop_now|bus_stop_eor|systemctl_stop|sigusr1) requested_stop=1 ;; esac
    done
    [ $requested_stop = 1 ] || { actions+="systemctl_stop"; cx systemctl --no-block stop conduit.service; }
    wait_for 40 "inactive after [$actions]" unit_is conduit.service inactive || { FAILED_BECAUSE="sequence $i ($actions): $FAILED_BECAUSE"; return 1; }
    runs_after=$(wc -l <"$(croot)/run/conduit-e2e/conduit.service.exit")
    expect_eq "sequence $i [$actions]: runs recorded" "$((runs_before + 1))" "$runs_after" || return 1
    expect_eq "sequence $i [$actions]: how the run ended" "success exited 0" "$(last_exit conduit.service)" || return 1
    expect_eq "sequence $i [$actions]: NRestarts" 0 "$(unit_prop conduit.service NRestarts)" || return 1
    invocations+="$inv=$i [${actions% }] "
  done
  # The journal of every run at once (one query keeps the scenario fast).
  cx journalctl --sync 2>/dev/null
  local matches=() id
  for id in $invocations; do
    [[ $id == *=* ]] || continue
    matches+=("_SYSTEMD_INVOCATION_ID=${id%%=*}" + "INVOCATION_ID=${id%%=*}" +)
  done
  unset 'matches[${#matches[@]}-1]'
  cx journalctl --no-pager -q -o json "${matches[@]}" >"$WORK/sequences.json"
  python3 - "$EXPECTED_STOP_ID" "$invocations" "$WORK/sequences.json" >"$WORK/why" <<'EOF' || { fail "$(cat "$WORK/why")"; return 1; }
import collections, json, re, sys
expected_id, listing, journal = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}
for m in re.finditer(r"(\w+)=(\d+) \[([^\]]*)\]", listing):
    runs[m.group(1)] = (int(m.group(2)), m.group(3))
stopping = collections.Counter()
final = collections.Counter()
errs = collections.defaultdict(list)
for line in open(journal):
    if not line.strip():
        continue
    e = json.loads(line)
    inv = e.get("_SYSTEMD_INVOCATION_ID") or e.get("INVOCATION_ID")
    msg = str(e.get("MESSAGE", ""))
    if msg == "sd_notify STOPPING=1":
        stopping[inv] += 1
    if e.get("MESSAGE_ID") == expected_id and e.get("CONDUIT_STOP_REASON") == "stop-requested":
        final[inv] += 1
    if int(e.get("PRIORITY", 6)) <= 3:
        errs[inv].append(msg)
for inv, (i, actions) in sorted(runs.items(), key=lambda kv: kv[1][0]):
    where = f"sequence {i} [{actions}]"
    if stopping[inv] != 1:
        print(f"{where}: STOPPING=1 sent {stopping[inv]} times"); sys.exit(1)
    if final[inv] != 1:
        print(f"{where}: {final[inv]} expected-stop entries"); sys.exit(1)
    if errs[inv]:
        print(f"{where}: err entries: " + " | ".join(errs[inv][:3])); sys.exit(1)
print(f"{len(runs)} runs checked")
EOF
  check_output $DATA 0 || return 1
  log "stop_sequences: $n sequences from seed $seed passed"
}

# ---------------------------------------------------------------- main

if [ $# -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=("${ALL_SCENARIOS[@]}"); fi
for s in "${SCENARIOS[@]}"; do
  declare -F "scenario_$s" >/dev/null || { echo "unknown scenario '$s' (known: ${ALL_SCENARIOS[*]})" >&2; exit 2; }
done

[ "$(id -u)" = 0 ] || skip_all "needs root to boot a container (systemd-nspawn)"
for tool in systemd-nspawn nsenter unshare setpriv dbus-send python3 meson ninja; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
[ -x /usr/lib/systemd/systemd ] || skip_all "no /usr/lib/systemd/systemd to boot"

WORK=$(mktemp -d /tmp/conduit-e2e.XXXXXX)
export WORK

# Build and stage: --prefix=/usr so the installed paths are the real ones.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" "$SOURCE_ROOT" --prefix=/usr -Dtest_plugins=true -Dtests=false \
    -Dbench=false --wrap-mode=nodownload >"$WORK/setup.log" 2>&1 \
    || { cat "$WORK/setup.log" >&2; echo "meson setup failed" >&2; exit 1; }
fi
[ "$(meson introspect "$BUILD_DIR" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')" = /usr ] \
  || { echo "$BUILD_DIR is not configured with --prefix=/usr" >&2; exit 1; }
ninja -C "$BUILD_DIR" -j"${JOBS:-2}" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; echo "build failed" >&2; exit 1; }
meson install -C "$BUILD_DIR" --no-rebuild --quiet --destdir "$WORK/stage" >"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log" >&2; echo "meson install failed" >&2; exit 1; }
[ -x "$WORK/stage/usr/bin/conduit" ] || { echo "no usr/bin/conduit in the staged install" >&2; exit 1; }
# The container's first boot applies presets (Debian: enable everything), which would
# start conduit at boot; the scenarios start it themselves.
mkdir -p "$WORK/stage/usr/lib/systemd/system-preset"
printf 'disable conduit.service\ndisable conduit@.service\n' \
  >"$WORK/stage/usr/lib/systemd/system-preset/00-conduit-e2e.preset"

# Probe: can nspawn boot here at all?
if ! boot_container conduit-e2e-probe-$$; then
  reason="systemd-nspawn cannot boot a container here: $FAILED_BECAUSE"
  stop_container
  skip_all "$reason"
fi
HAVE_FILE_WRITER=0
cx /usr/bin/conduit list exporters 2>/dev/null | grep -qw file_writer && HAVE_FILE_WRITER=1
[ "$HAVE_FILE_WRITER" = 1 ] || log "file_writer not registered: noop exporter, output files not checked"
stop_container

for s in "${SCENARIOS[@]}"; do
  FAILED_BECAUSE="" SKIP_BECAUSE=""
  name="conduit-e2e-$$-${s//_/-}"
  started=$SECONDS
  if ! boot_container "$name"; then
    record "$s" failed "boot: $FAILED_BECAUSE"
  elif ! install_into_container; then
    record "$s" failed "install: $FAILED_BECAUSE"
  else
    "scenario_$s"
    rc=$?
    if [ $rc = 0 ]; then
      record "$s" passed "$((SECONDS - started))s"
    elif [ $rc = 2 ]; then
      record "$s" skipped "$SKIP_BECAUSE"
    else
      record "$s" failed "${FAILED_BECAUSE:-exit status $rc}"
    fi
    if [ "${RESULT[$s]}" = failed ] || [ -n "${CONDUIT_E2E_KEEP_LOGS:-}" ]; then
      cx journalctl --no-pager -q -o short-precise -u 'conduit*' -n 60 2>/dev/null | sed 's/^/    journal: /' >&2
    fi
    if [ -n "${CONDUIT_E2E_KEEP_LOGS:-}" ]; then
      mkdir -p "$CONDUIT_E2E_KEEP_LOGS"
      cx journalctl --no-pager -o verbose >"$CONDUIT_E2E_KEEP_LOGS/$s.journal" 2>/dev/null
      cp "$WORK/console-$name.log" "$CONDUIT_E2E_KEEP_LOGS/$s.console" 2>/dev/null
    fi
  fi
  stop_container
done
summary_and_exit
