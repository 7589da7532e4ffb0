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
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers  # noqa: E402
from run import ensure_generator, run_one  # noqa: E402


def build_compiled_relay():
    """mypyc's build of relay.py in brokers.RELAY_MYPYC; False when it cannot be built here."""
    tmp = tempfile.mkdtemp(prefix="relay-mypyc-")
    try:
        shutil.copy(os.path.join(brokers.HERE, "relay.py"), tmp)
        out = subprocess.run([os.path.join(brokers.VENV_BIN, "mypyc"), "relay.py"], cwd=tmp,
                             capture_output=True, text=True)
        built = [n for n in os.listdir(tmp) if n.startswith("relay.") and n.endswith(".so")]
        if out.returncode != 0 or not built:
            print("floor: mypyc could not build relay.py: %s"
                  % (out.stderr.strip().splitlines() or ["no output"])[-1])
            return False
        shutil.rmtree(brokers.RELAY_MYPYC, ignore_errors=True)
        os.makedirs(brokers.RELAY_MYPYC)
        for name in built:
            shutil.copy(os.path.join(tmp, name), brokers.RELAY_MYPYC)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def latency(kind, workdir, pins, smoke):
    """p50 in µs of one fresh broker or relay under make bench's latency scenario."""
    r = run_one(kind, "latency", smoke, workdir, pins)
    if not r.get("ok"):
        raise SystemExit("floor: %s: %s" % (kind, "; ".join(r.get("errors") or ["failed"])))
    return r["p50_us"]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds = 1
    ensure_generator()
    kinds = ["mosquitto", "cpython", "relay"] + (["relay-mypyc"] if build_compiled_relay() else [])
    pins = brokers.cores()
    load = os.getloadavg()
    ratios = {k: [] for k in kinds[1:]}
    p50s = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="floor-") as workdir:
        for i in range(args.rounds):
            got = {k: latency(k, workdir, pins, args.smoke) for k in kinds}
            base = got["mosquitto"]
            for k in kinds:
                p50s[k].append(got[k])
                if k != "mosquitto":
                    ratios[k].append(got[k] / base)
            print("round %d: %s" % (i + 1, ", ".join("%s p50 %.1f µs" % (k, got[k])
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
