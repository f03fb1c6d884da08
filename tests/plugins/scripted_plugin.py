#!/usr/bin/env python3
"""A scriptable external plugin for conduit's tests (conduit-plugin(7)).

Its kind is the last "_"-separated part of its file name (the tests link it
as ext_importer, ext_processor, ext_exporter). Its config table says what to
record and where to misbehave:

  log       file: one line per request, "<pid> <type> [<round>]", and
            "<pid> exit" when it leaves normally
  position  (exporter) file of committed rounds, one per line, fsynced; the
            round request answers the next one (exactly-once across crashes)
  events    FIFO: "<kind> <type> <round>" is written when `at` or
            `notify-at` is reached
  at        "<type>" or "<type>:<round>": the request where `action` happens
  action    block (until cancel), block-ignore-cancel, pause (until a line
            arrives on the FIFO `release`), crash, exit0, garbage, oversize,
            error, fatal, close-stdout, wrong-round, flood
  notify-at like `at`, but only writes the event (once per process)
  times     how many processes act (a counter file beside `log`), default 1
  units     (exporter) true: announce the units capability
  encoding  json (default) or msgpack (only for importer blocks: JSON ones)

Env SCRIPTED_HELLO=silent|garbage|crash|wrong-protocol|bad-kind misbehaves at hello.
"""
import json
import os
import sys
import time

inp, out = sys.stdin.buffer, sys.stdout.buffer
KIND = os.path.basename(sys.argv[0]).rsplit("_", 1)[-1]
if KIND not in ("importer", "processor", "exporter"):
    KIND = "exporter"
config = {}
units = []


def send(msg, payload=None):
    if payload is not None:
        msg["size"] = len(payload)
    out.write(json.dumps(msg).encode() + b"\n")
    if payload is not None:
        out.write(payload)
    out.flush()


def read_frame():
    line = inp.readline()
    if not line:
        return None, b""
    msg = json.loads(line)
    data = inp.read(msg["size"]) if "size" in msg else b""
    return msg, data


def log(text):
    if "log" in config:
        with open(config["log"], "a") as f:
            f.write("%d %s %s\n" % (os.getpid(), KIND, text))


def matches(at, msg):
    if not at:
        return False
    where = msg["type"] if ":" not in at else "%s:%s" % (msg["type"], msg.get("round"))
    return where == at


def acts_now(msg):
    if not matches(config.get("at"), msg):
        return False
    counter = "%s.%s.acted" % (config["log"], KIND)
    done = int(open(counter).read()) if os.path.exists(counter) else 0
    if done >= int(config.get("times", 1)):
        return False
    with open(counter, "w") as f:
        f.write(str(done + 1))
    return True


def notify(msg):
    if "events" in config:
        with open(config["events"], "w") as f:
            f.write("%s %s %s\n" % (KIND, msg["type"], msg.get("round", "")))


def committed():
    path = config.get("position")
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(l) for l in f if l.strip()]


def commit(rounds):
    with open(config["position"], "a") as f:
        for r in rounds:
            f.write("%d\n" % r)
        f.flush()
        os.fsync(f.fileno())


def act(msg):
    """Misbehaves as scripted; returns True when the request was answered."""
    action = config.get("action")
    notify(msg)
    if action == "block":
        while True:
            nxt, _ = read_frame()
            if nxt is None:
                sys.exit(0)
            if nxt["type"] == "cancel":
                log("cancelled " + msg["type"])
                send({"type": "cancelled"})
                return True
    if action == "block-ignore-cancel":
        time.sleep(3600)
    if action == "pause":
        with open(config["release"]) as f:
            f.readline()
        return False
    if action == "crash":
        os._exit(3)
    if action == "exit0":
        os._exit(0)
    if action == "garbage":
        out.write(b"this is not a frame\n")
        out.flush()
        return True
    if action == "oversize":
        out.write(b'{"type":"ok","size":999999999999}\n')
        out.flush()
        return True
    if action == "close-stdout":
        os.close(1)  # sys.stdout.close() would leave the descriptor open
        time.sleep(3600)
    if action in ("error", "fatal"):
        send({"type": "error", "message": "scripted " + action, "retryable": action == "error"})
        return True
    if action == "flood":
        for i in range(5000):
            sys.stderr.write("<4>flood line %d\n" % i)
        sys.stderr.flush()
        return False
    if action == "wrong-round" and msg["type"] in ("get-block", "process"):
        send({"type": "block", "round": msg["round"]},
             json.dumps({"block": {"rnd": msg["round"] + 1}}).encode())
        return True
    return False


def hello():
    mode = os.environ.get("SCRIPTED_HELLO")
    if mode == "silent":
        time.sleep(3600)
    if mode == "garbage":
        out.write(b"hello?\n")
        out.flush()
        return
    if mode == "crash":
        os._exit(4)
    caps = ["cancel"]
    if KIND == "exporter":
        caps.append("round-request")
    if os.environ.get("SCRIPTED_UNITS") == "1":
        caps.append("units")
    send({"type": "hello", "protocol": 7 if mode == "wrong-protocol" else 1,
          "kind": "sorcerer" if mode == "bad-kind" else KIND,
          "description": "scripted %s for tests" % KIND,
          "sample-config": '# where to log\nlog = "scripted.log"\n',
          "encoding": "json", "capabilities": caps})


def block_of(round_):
    header = {"rnd": round_} if round_ else {}
    return json.dumps({"block": header}).encode()


def answer(msg, data):
    t = msg["type"]
    if t == "configure":
        config.update(msg["config"])
        if config.get("reject"):
            send({"type": "error", "message": "scripted rejection of the configuration",
                  "retryable": False})
            return
        send({"type": "ok"})
    elif t == "round-request":
        done = committed()
        send({"type": "round", "round": done[-1] + 1 if done else None})
    elif t == "init":
        if KIND == "importer":
            send({"type": "genesis"}, json.dumps({"network": "scripted", "id": "v1"}).encode())
        else:
            send({"type": "ok"})
    elif t == "get-block":
        send({"type": "block", "round": msg["round"]}, block_of(msg["round"]))
    elif t == "process":
        send({"type": "ok"})
    elif t == "receive":
        if "position" in config:
            commit([msg["round"]])
        send({"type": "ok"})
    elif t == "stage":
        units.append(msg["round"])
        send({"type": "ok"})
    elif t == "commit":
        if "position" in config:
            commit(units)
        units.clear()
        send({"type": "ok"})
    elif t == "abort":
        units.clear()
        send({"type": "ok"})
    elif t == "close":
        send({"type": "ok"})
    else:
        send({"type": "error", "message": "unexpected " + t, "retryable": False})


def main():
    msg, _ = read_frame()
    if msg is None or msg["type"] != "hello":
        sys.exit(2)
    hello()
    while True:
        msg, data = read_frame()
        if msg is None:
            break
        t = msg["type"]
        if t == "cancel":
            continue  # nothing in flight
        log(t + (" %d" % msg["round"] if "round" in msg else ""))
        if matches(config.get("notify-at"), msg):
            notify(msg)
        if acts_now(msg) and act(msg):
            continue
        answer(msg, data)
        if t == "close":
            break
    log("exit")


main()
