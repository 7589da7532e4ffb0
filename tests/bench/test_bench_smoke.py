"""make bench in smoke mode: every scenario for about a second against a broker, no targets.

The figures are not checked (timings never fail a test); the accounting is: every message the
generator published reached every subscriber that should have it, once, in order, intact, and
nowhere else, and the broker survived the run. Needs gcc (the generator is C) and, for the
reference column, mosquitto; under CI=true a missing one is a failure (tests/peers.py).
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

from peers import require_peer  # noqa: E402

RUNNER = os.path.join(REPO, "tools", "bench", "run.py")
THROUGHPUT = ("fanin", "fanout", "qos1", "latency", "subs", "fanin5", "fanout5")
RECIPIENTS = {"fanin": 1, "fanout": 16, "qos1": 1, "latency": 1, "subs": 1, "fanin5": 1,
              "fanout5": 16}


def smoke(broker, tmp_path):
    require_peer("gcc")
    require_peer("make")
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, RUNNER, "--smoke", "--brokers", broker,
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    with open(str(out)) as f:
        results = json.load(f)["results"][broker]
    return proc, results


@pytest.mark.parametrize("broker", ["cpython", "cpython-pure", "mosquitto"])
def test_bench_smoke(broker, tmp_path):
    if broker == "mosquitto":
        require_peer("mosquitto")
    proc, results = smoke(broker, tmp_path)
    assert sorted(results) == sorted(THROUGHPUT + ("connect",))
    for scenario in THROUGHPUT:
        (r,) = results[scenario]
        assert r["errors"] == [], (scenario, r)
        assert r["published"] > 0, (scenario, r)
        assert r["expected"] == r["published"] * RECIPIENTS[scenario], (scenario, r)
        assert r["delivered"] == r["expected"], (scenario, r)
        for count in ("lost", "duplicated", "misrouted", "corrupt", "bad_acks", "unacked"):
            assert r[count] == 0, (scenario, count, r)
        assert r["ok"] == 1, (scenario, r)
        assert r["deliveries_per_s"] > 0 and r["gen_cpu"] > 0, (scenario, r)
    assert results["latency"][0]["p99_us"] >= results["latency"][0]["p50_us"] > 0
    (c,) = results["connect"]
    assert c["ok"] == 1 and c["errors"] == [], c
    assert c["clients"] == 100 and c["conns_per_s"] > 0, c
    assert "bytes_per_conn" in c, c
    # the table is printed, and the run passes
    assert "fan-in QoS 0" in proc.stdout, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_smoke_micropython(tmp_path):
    # Our MicroPython broker with the heaps make bench gives it (256K, and 512K for QoS 1), on
    # the scenarios it runs there (tools/bench/scenarios.py MPY_SCENARIOS): nothing lost,
    # doubled or misrouted.
    proc, results = smoke("micropython", tmp_path)
    assert sorted(results) == ["fanin", "fanout", "latency", "qos1"]
    for scenario, runs in results.items():
        (r,) = runs
        assert r["errors"] == [] and r["ok"] == 1, (scenario, r)
        assert r["published"] > 0, (scenario, r)
        assert r["delivered"] == r["expected"] == r["published"] * RECIPIENTS[scenario], r
        for count in ("lost", "duplicated", "misrouted", "corrupt"):
            assert r[count] == 0, (scenario, count, r)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_latency_floor_smoke():
    # tools/bench/floor.py: mosquitto, our broker and the relay that sets the floor (interpreted
    # and compiled by mypyc) each deliver the latency scenario whole, and the table names them
    require_peer("gcc")
    require_peer("make")
    require_peer("mosquitto")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench", "floor.py"),
                           "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout.split("median ratio to mosquitto", 1)[1].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in table if line.strip()}
    assert sorted(rows) == ["cpython", "mosquitto", "relay", "relay-mypyc"], proc.stdout
    for name in ("cpython", "relay", "relay-mypyc"):
        p50, ratio = rows[name]
        assert float(p50) > 0 and ratio.endswith("x") and float(ratio[:-1]) > 0, proc.stdout
