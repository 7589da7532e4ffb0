"""`make bench`: run every scenario against each broker, print the table, write docs/benchmarks.md.

    .venv/bin/python tools/bench/run.py [--smoke] [--brokers mosquitto,cpython,micropython]
                                        [--scenarios fanin,...] [--runs N] [--no-write]

Each (broker, scenario, run) gets a fresh broker pinned to one core and the generator
(build/bench/mqttload, built by make) pinned to another. A run whose messages do not all arrive
exactly once, in order and on the right connection fails, and so does the whole command (exit 1);
slow figures never fail it. --smoke runs each scenario for about a second with small counts and
writes nothing (the pytest smoke test uses it). BENCH_AMQTT=1 adds amqtt, installed from PyPI into
build/bench/amqtt-venv.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers  # noqa: E402
import report  # noqa: E402
from scenarios import (  # noqa: E402
    CAP, METRICS, MPY_SCENARIO_HEAP, MPY_SCENARIOS, SCENARIOS, TOPOLOGY,
)

GENERATOR = os.path.join(brokers.BUILD, "mqttload")
GEN_TIMEOUT = 120


def ensure_generator():
    """Build the generator with make (a no-op when it is up to date); returns its path."""
    subprocess.run(["make", "-s", "-C", brokers.REPO, "build/bench/mqttload"], check=True)
    return GENERATOR


def mpy_heap(kind, scenario):
    """The MicroPython broker's heap for this scenario: BENCH_MPY_HEAP when set, else the
    scenario's own (MPY_SCENARIO_HEAP) or brokers.MPY_HEAP."""
    if kind != "micropython" or os.environ.get("BENCH_MPY_HEAP"):
        return None
    return MPY_SCENARIO_HEAP.get(scenario)


def run_one(kind, scenario, smoke, workdir, pins):
    """One fresh broker, one scenario: the generator's JSON, with "ok" false and "errors" filled
    in for anything that went wrong (the broker dying or exiting uncleanly included)."""
    full, quick = SCENARIOS[scenario]
    broker_core, gen_core = pins if pins else (None, None)
    try:
        b = brokers.Running(kind, workdir, broker_core, mpy_heap(kind, scenario))
    except brokers.BrokerError as e:
        return {"scenario": scenario, "ok": 0, "errors": [str(e)]}
    with b:
        argv = [GENERATOR, "-s", TOPOLOGY.get(scenario, scenario), "-p", str(b.port), "-P",
                str(b.pid), "-c", str(CAP)]
        argv += quick if smoke else full
        try:
            out = subprocess.run(brokers.pinned(argv, gen_core), capture_output=True, text=True,
                                 timeout=GEN_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {"scenario": scenario, "ok": 0,
                    "errors": ["the generator did not finish in %d s" % GEN_TIMEOUT]}
        try:
            result = json.loads(out.stdout)
        except ValueError:
            return {"scenario": scenario, "ok": 0,
                    "errors": ["generator failed (%d): %s" % (out.returncode, out.stderr.strip())]}
        alive = b.alive()
        code = b.stop()
        if not alive:
            result["ok"] = 0
            result["errors"].append("%s died during the run: %s" % (kind, b.problems()))
        elif code not in (0, -2, -15) and kind != "amqtt":
            result["ok"] = 0
            result["errors"].append("%s exited with %s when stopped: %s" % (kind, code, b.problems()))
        if not result["ok"]:
            result["broker_log"] = b.problems()
    return result


def run_all(kinds, scenarios, runs, smoke, progress=None):
    """results[kind][scenario] = [generator JSON of each run]."""
    gen = ensure_generator()
    assert os.path.exists(gen)
    pins = brokers.cores()
    results = {kind: {} for kind in kinds}
    # Run by run, each scenario on every broker in turn: the machine's speed drifts over minutes
    # (latency most), and a broker whose runs all came before the others' would carry the drift.
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        for i in range(runs):
            for scenario in scenarios:
                for kind in kinds:
                    if kind == "micropython" and scenario not in MPY_SCENARIOS \
                            and os.environ.get("BENCH_MPY_ALL") != "1":
                        continue
                    r = run_one(kind, scenario, smoke, workdir, pins)
                    results[kind].setdefault(scenario, []).append(r)
                    if progress:
                        progress(kind, scenario, i, r)
    return results


def figures(results):
    """fig[kind][metric key] = median over the runs; None when a run failed, absent when not run."""
    fig = {}
    for kind, by_scenario in results.items():
        fig[kind] = {}
        for m in METRICS:
            runs = by_scenario.get(m.scenario)
            if not runs:
                continue  # not run: no entry, the table shows "-"
            if not all(r.get("ok") for r in runs):
                fig[kind][m.key] = None
                continue
            values = [r[m.field] for r in runs if m.field in r]
            fig[kind][m.key] = statistics.median(values) if values else None
    return fig


def failures(results):
    out = []
    for kind, by_scenario in results.items():
        for scenario, runs in by_scenario.items():
            for r in runs:
                if not r.get("ok"):
                    counts = ", ".join("%s %d" % (k, r[k]) for k in
                                       ("lost", "duplicated", "misrouted", "corrupt", "bad_acks",
                                        "unacked") if r.get(k))
                    errors = r.get("errors", [])
                    if len(errors) > 2:
                        errors = errors[:2] + ["%d more errors" % (len(errors) - 2)]
                    why = "; ".join(([counts] if counts else []) + errors) or "failed"
                    if r.get("broker_log"):
                        why += "; broker log: " + r["broker_log"]
                    line = "%s / %s: %s" % (kind, scenario, why)
                    if line not in out:
                        out.append(line)
    return out


def _progress(kind, scenario, i, r):
    status = "ok" if r.get("ok") else "FAILED " + "; ".join(r.get("errors", []))[:300]
    shown = ", ".join("%s %s" % (m.field, report.fmt(r[m.field])) for m in METRICS
                      if m.scenario == scenario and m.field in r)
    cpu = " gen_cpu %.2f" % r["gen_cpu"] if "gen_cpu" in r else ""
    print("  %-11s %-8s run %d: %s%s  %s" % (kind, scenario, i + 1, shown, cpu, status),
          flush=True)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="about a second per scenario, writes nothing")
    ap.add_argument("--brokers", default=None, help="comma-separated: " + ",".join(brokers.KINDS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--json", help="also save every run's JSON here")
    args = ap.parse_args(argv)
    kinds = args.brokers.split(",") if args.brokers else ["mosquitto", "cpython", "cpython-pure", "micropython"]
    if os.environ.get("BENCH_AMQTT") == "1" and "amqtt" not in kinds:
        kinds.append("amqtt")
    scenarios = args.scenarios.split(",")
    for k in kinds:
        if k not in brokers.KINDS:
            ap.error("unknown broker %r" % k)
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r" % s)
    if "mosquitto" in kinds and brokers.find_mosquitto() is None and not brokers.install_mosquitto():
        print("mosquitto is not installed: the reference broker is needed for the ratios.\n"
              "Install it with: sudo apt-get install mosquitto", file=sys.stderr)
        return 1
    if "amqtt" in kinds:
        brokers.ensure_amqtt()
    runs = 1 if args.smoke else max(1, args.runs)
    machine = report.machine()
    print("make bench: %s; %d run(s) per scenario, median shown" % (machine["summary"], runs))
    started = time.time()
    results = run_all(kinds, scenarios, runs, args.smoke, _progress)
    machine["load_after"] = report.loadavg()
    machine["minutes"] = (time.time() - started) / 60.0
    fig = figures(results)
    failed = failures(results)
    print()
    print(report.text_table(kinds, fig))
    for line in failed:
        print("FAILED: " + line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=1)
    if not args.smoke and not args.no_write:
        versions = {k: brokers.version(k) for k in kinds}
        versions["generator"] = report.first_line(["gcc", "--version"])
        path = report.write_docs(kinds, fig, results, failed, machine, versions, runs,
                                 "make bench")
        print("wrote %s and its chart" % os.path.relpath(path, brokers.REPO))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
