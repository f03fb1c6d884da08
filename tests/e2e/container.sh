# shellcheck shell=bash
# Sourced by run.sh and package.sh: the parts of a systemd-nspawn container over the
# host's tree that both drive the same way. Each script starts nspawn itself (their
# overlays differ) with NSPAWN_PID set to it, then awaits the container's systemd here.

cx() { nsenter -t "$CONTAINER_PID" -m -u -i -p -- "$@"; }
croot() { echo "/proc/$CONTAINER_PID/root"; }

# Sets CONTAINER_PID to the container's systemd, nspawn's direct child once it has
# exec'ed (within 30 s); fails when nspawn exits first or systemd never appears.
await_container_systemd() {
  local deadline=$((SECONDS + 30)) child
  CONTAINER_PID=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$NSPAWN_PID" 2>/dev/null || return 1
    child=$(pgrep -P "$NSPAWN_PID" | head -1)
    if [ -n "$child" ] && [[ $(readlink "/proc/$child/exe" 2>/dev/null) == */lib/systemd/systemd ]]; then
      CONTAINER_PID=$child
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# Boot done: running, or degraded by some unit of the host's tree that has nothing to
# do with conduit. The bus socket appears a moment after exec; --wait blocks until then.
boot_finished() {
  local state
  state=$(timeout 30 nsenter -t "$CONTAINER_PID" -m -u -i -p -- systemctl is-system-running --wait 2>/dev/null)
  [ "$state" = running ] || [ "$state" = degraded ]
}

stop_container() {
  [ -n "$NSPAWN_PID" ] || return 0
  if kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null  # nspawn asks the container's systemd to power off
    local deadline=$((SECONDS + 20))
    while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
      echo "container did not power off in 20s: killing it" >&2
      [ -n "$CONTAINER_PID" ] && kill -KILL "$CONTAINER_PID" 2>/dev/null
      kill -KILL "$NSPAWN_PID" 2>/dev/null
    fi
  fi
  wait "$NSPAWN_PID" 2>/dev/null
  NSPAWN_PID="" CONTAINER_PID=""
}

cleanup() {
  stop_container
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
