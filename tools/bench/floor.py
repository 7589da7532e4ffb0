"""How low latency can go in a CPython process on this machine: make bench's latency scenario
(1,000 messages/s, one publisher, one subscriber) against mosquitto, our CPython broker, and the
least a broker can do in a CPython process (tools/bench/relay.py), interpreted and compiled by
mypyc.

    .venv/bin/python tools/bench/floor.py [--rounds N] [--smoke]

Each round runs the four one after another, each a fresh process pinned to the first core with the
generator on the second, as make bench does. Latency at this rate swings from run to run with the
machine (the median of one broker's runs spans tens of µs here), and more for one broker than
another when they do not run side by side: each figure is taken as a ratio to mosquitto's in the
same round, and the median of those ratios is printed. --smoke: one round of half a second each
(the pytest smoke test). A run in which a message is lost or mangled stops it (exit 1).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers  # noqa: E402
from run import ensure_generator  # noqa: E402
from scenarios import CAP, SCENARIOS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILED = os.path.join(brokers.BUILD, "relay-mypyc")
PYTHON = os.path.join(brokers.VENV_BIN, "python")


def build_compiled_relay():
    """mypyc's build of relay.py in COMPILED; False when it cannot be built here."""
    tmp = tempfile.mkdtemp(prefix="relay-mypyc-")
    try:
        shutil.copy(os.path.join(HERE, "relay.py"), tmp)
        out = subprocess.run([os.path.join(brokers.VENV_BIN, "mypyc"), "relay.py"], cwd=tmp,
                             capture_output=True, text=True)
        built = [n for n in os.listdir(tmp) if n.startswith("relay.") and n.endswith(".so")]
        if out.returncode != 0 or not built:
            print("floor: mypyc could not build relay.py: %s"
                  % (out.stderr.strip().splitlines() or ["no output"])[-1])
            return False
        shutil.rmtree(COMPILED, ignore_errors=True)
        os.makedirs(COMPILED)
        for name in os.listdir(tmp):
            if name.endswith(".so"):
                shutil.copy(os.path.join(tmp, name), COMPILED)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def relay_argv(kind, port):
    if kind == "relay":
        return [PYTHON, os.path.join(HERE, "relay.py"), str(port)]
    code = ("import signal, sys; sys.path.insert(0, %r); import relay; "
            "signal.signal(signal.SIGTERM, relay._stop); relay.serve(%d)" % (COMPILED, port))
    return [PYTHON, "-c", code]


def latency(kind, workdir, pins, gen, smoke=False):
    """(p50, p99) in µs of one fresh broker or relay under the latency scenario."""
    broker_core, gen_core = pins if pins else (None, None)
    proc = running = None
    if kind in ("relay", "relay-mypyc"):
        port = brokers.free_port()
        proc = subprocess.Popen(brokers.pinned(relay_argv(kind, port), broker_core),
                                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = proc.pid
        deadline = time.monotonic() + brokers.READY_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("floor: %s did not start" % kind)
                time.sleep(0.02)
    else:
        running = brokers.Running(kind, workdir, broker_core)
        port, pid = running.port, running.pid
    try:
        argv = [gen, "-s", "latency", "-p", str(port), "-P", str(pid), "-c", str(CAP)]
        out = subprocess.run(brokers.pinned(argv + SCENARIOS["latency"][1 if smoke else 0], gen_core),
                             capture_output=True, text=True, timeout=60)
        result = json.loads(out.stdout)
        if not result.get("ok"):
            raise SystemExit("floor: %s lost or mangled messages: %s" % (kind, result.get("errors")))
        return result["p50_us"], result["p99_us"]
    finally:
        if running is not None:
            running.stop()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds = 1
    gen = ensure_generator()
    kinds = ["mosquitto", "cpython", "relay"] + (["relay-mypyc"] if build_compiled_relay() else [])
    pins = brokers.cores()
    load = os.getloadavg()
    ratios = {k: [] for k in kinds[1:]}
    p50s = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="floor-") as workdir:
        for i in range(args.rounds):
            got = {k: latency(k, workdir, pins, gen, args.smoke) for k in kinds}
            base = got["mosquitto"][0]
            for k in kinds:
                p50s[k].append(got[k][0])
                if k != "mosquitto":
                    ratios[k].append(got[k][0] / base)
            print("round %d: %s" % (i + 1, ", ".join("%s p50 %.1f µs" % (k, got[k][0])
                                                       for k in kinds)), flush=True)
    print("\nlatency p50 at 1,000 msgs/s, %d rounds (load %.2f before, %.2f after)"
          % (args.rounds, load[0], os.getloadavg()[0]))
    print("%-12s %10s %22s" % ("", "median µs", "median ratio to mosquitto"))
    for k in kinds:
        ratio = "" if k == "mosquitto" else "%.2fx" % statistics.median(ratios[k])
        print("%-12s %10.1f %22s" % (k, statistics.median(p50s[k]), ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
