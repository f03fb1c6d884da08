#!/usr/bin/env bash
# External plugins as users run them: the daemon, process start to the last
# round's checkpoint, each pipeline beside its built-in baseline in one run.
#   generator -> noop processor (external, Python) -> noop exporter
#     vs generator -> noop processor (built-in) -> noop exporter
#   generator -> ndjson_exporter (external, Python, fsync per round)
#     vs generator -> file_writer (msgp.gz, durable)
# Usage: bench/external_plugins.sh CONDUIT_BINARY [ROUNDS]   (a release build)
# Prints one JSON object per figure and the machine's load.
set -euo pipefail
conduit=$(realpath "$1")
rounds=${2:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/conduit-extbench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Seconds from process start until metadata.json says next-round > ROUNDS.
run() {  # name, processor-toml, exporter-toml
  local dir=$work/$1
  mkdir -p "$dir/plugins"
  cp "$root/bench/plugins/noop_processor" "$root/examples/plugins/ndjson_exporter" "$dir/plugins/"
  cat >"$dir/conduit.toml" <<EOF
hide-banner = true
[importer]
name = "generator"
[importer.config]
txns-per-round = 20
last-round = $rounds
$2
$3
EOF
  python3 - "$conduit" "$dir" "$rounds" <<'EOF'
import json, os, signal, subprocess, sys, time
conduit, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.monotonic()
p = subprocess.Popen([conduit, "-d", d, "--bus", "none"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
meta = os.path.join(d, "metadata.json")
while True:
    try:
        if json.load(open(meta))["next-round"] > n:
            break
    except (OSError, ValueError, KeyError):
        pass
    if p.poll() is not None:
        sys.exit("conduit exited early")
    time.sleep(0.002)
elapsed = time.monotonic() - start
p.send_signal(signal.SIGTERM)
p.wait()
print(elapsed)
EOF
}

load() { cut -d' ' -f1 /proc/loadavg; }
echo "{\"bench\":\"external_plugins\",\"rounds\":$rounds,\"load_before\":$(load)}"
builtin=$(run builtin $'[[processors]]\nname = "noop"' $'[exporter]\nname = "noop"')
external=$(run external $'[[processors]]\nname = "noop_processor"' $'[exporter]\nname = "noop"')
writer=$(run writer "" $'[exporter]\nname = "file_writer"\n[exporter.config]\nfilename-pattern = "%[1]d_block.msgp.gz"')
ndjson=$(run ndjson "" $'[exporter]\nname = "ndjson_exporter"\n[exporter.config]\npath = "rounds.ndjson"')
python3 - "$rounds" "$builtin" "$external" "$writer" "$ndjson" <<'EOF'
import json, sys
n = int(sys.argv[1])
b, e, w, j = (float(x) for x in sys.argv[2:])
def fig(name, value, unit, baseline=None):
    print(json.dumps({"figure": name, "value": round(value, 3), "unit": unit,
                      **({"baseline": baseline} if baseline else {})}))
fig("builtin noop processor", n / b, "rounds/s")
fig("external noop processor", n / e, "rounds/s")
fig("external / built-in noop processor", b / e, "ratio (target >= 0.5)")
fig("added per round by the external processor", (e - b) / n * 1e6, "us/round")
fig("file_writer msgp.gz (durable)", n / w, "rounds/s")
fig("ndjson_exporter (fsync per round)", n / j, "rounds/s")
fig("ndjson_exporter / file_writer", w / j, "ratio")
EOF
echo "{\"load_after\":$(load)}"
