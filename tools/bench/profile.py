"""Where our CPython broker spends its time under one bench scenario, sampled with py-spy.

    .venv/bin/python tools/bench/profile.py [SCENARIO ...] [--top N] [--lines]

Starts the broker under `py-spy record` (installed into .venv when missing) pinned to one core,
runs the scenario with the load generator on the other, and prints the functions with the most
samples: "self" counts samples in the function itself, "total" samples with it anywhere on the
stack. --lines ranks source lines instead of functions. The sampling costs the broker some speed;
the proportions are what matter.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers  # noqa: E402
from run import ensure_generator  # noqa: E402
from scenarios import CAP, SCENARIOS, TOPOLOGY  # noqa: E402

# PY_SPY=PATH: a py-spy installed elsewhere (.venv is left as it is)
PY_SPY = os.environ.get("PY_SPY") or os.path.join(brokers.VENV_BIN, "py-spy")


def ensure_py_spy():
    if not os.path.exists(PY_SPY) and not os.environ.get("PY_SPY"):
        subprocess.run([os.path.join(brokers.VENV_BIN, "python"), "-m", "pip", "install", "-q",
                        "py-spy"], check=True)


def _frame_key(frame, lines):
    # a raw frame reads "function (file.py:line)"
    if lines:
        return frame
    name, _, where = frame.partition(" (")
    return "%s (%s)" % (name, where.rsplit(":", 1)[0])


def tally(raw_path, lines):
    own, total = collections.Counter(), collections.Counter()
    samples = 0
    with open(raw_path) as f:
        for row in f:
            stack, _, count = row.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = [_frame_key(fr, lines) for fr in stack.split(";")]
            samples += n
            own[frames[-1]] += n
            for fr in set(frames):
                total[fr] += n
    return samples, own, total


def profile(scenario, workdir, top, lines):
    gen = ensure_generator()
    pins = brokers.cores()
    broker_core, gen_core = pins if pins else (None, None)
    port = brokers.free_port()
    conf = os.path.join(workdir, "broker.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\n" % port)
    raw = os.path.join(workdir, scenario + ".txt")
    log = open(os.path.join(workdir, scenario + ".log"), "w")
    argv = [PY_SPY, "record", "--nonblocking", "-r", "500", "-f", "raw", "-o", raw, "--",
            os.path.join(brokers.VENV_BIN, "python"), "-m", "broker", "-c", conf]
    proc = subprocess.Popen(brokers.pinned(argv, broker_core), cwd=brokers.REPO, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        import socket
        import time
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the broker did not start under py-spy (see %s)" % log.name)
                time.sleep(0.05)
        full = SCENARIOS[scenario][0]
        out = subprocess.run(brokers.pinned([gen, "-s", TOPOLOGY.get(scenario, scenario), "-p",
                                             str(port), "-c", str(CAP)] + full, gen_core),
                             capture_output=True, text=True)
    finally:
        # SIGINT reaches py-spy, which stops its child and writes the profile
        proc.send_signal(2)
        proc.wait(30)
        log.close()
    print("== %s: %s" % (scenario, out.stdout.strip()[:400]))
    samples, own, total = tally(raw, lines)
    if not samples:
        print("no samples")
        return
    print("%d samples; top %d by self time (self %%, total %%):" % (samples, top))
    for key, n in own.most_common(top):
        print("  %5.1f %5.1f  %s" % (100.0 * n / samples, 100.0 * total[key] / samples, key))
    print("top %d by total time:" % top)
    for key, n in total.most_common(top):
        print("  %5.1f  %s" % (100.0 * n / samples, key))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenarios", nargs="*", default=["fanin", "fanout"])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--lines", action="store_true", help="rank source lines, not functions")
    args = ap.parse_args(argv)
    ensure_py_spy()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as workdir:
        for scenario in args.scenarios:
            if scenario not in SCENARIOS:
                ap.error("unknown scenario %r" % scenario)
            profile(scenario, workdir, args.top, args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
