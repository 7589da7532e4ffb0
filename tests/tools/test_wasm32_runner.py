"""tools/wasm32: the 32-bit MicroPython that `make test` runs the core tests on (run.mjs), and
`make mem`'s columns for the broker served on it (serve.mjs; the integration tests run against
it too, as the kind wasm32).

What the core tests take from run.mjs on trust: a board's word size, the script's exit status,
and the decorators it drops. `make test` installs the npm package (make test-wasm32) before pytest.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
RUNNER = ROOT / "tools" / "wasm32" / "run.mjs"
PACKAGE = ROOT / "tools" / "wasm32" / "node_modules" / "@micropython"


def _node() -> str:
    node = shutil.which("node")
    if node is not None and PACKAGE.is_dir():
        return node
    reason = "no node command" if node is None else "run make test-wasm32 first (npm package)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
    raise AssertionError("unreachable")


def _run(tmp_path: Path, source: str, *args: str) -> "subprocess.CompletedProcess[str]":
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([_node(), str(RUNNER), str(script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_small_ints_end_at_2_to_the_30_as_on_a_board(tmp_path: Path) -> None:
    # 64-bit unix MicroPython keeps 2**30 a small int; a 32-bit board allocates it.
    r = _run(tmp_path, """
import micropython
def allocates(a):
    micropython.heap_lock()
    try:
        a * 2
        r = False
    except MemoryError:
        r = True
    micropython.heap_unlock()
    return r
print(allocates(1 << 28), allocates(1 << 29))
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_exit_status_and_arguments_pass_through(tmp_path: Path) -> None:
    r = _run(tmp_path, "import sys\nprint(sys.argv[1:])\nsys.exit(3)\n", "a", "b")
    assert r.returncode == 3
    assert r.stdout.strip() == "['a', 'b']"
    r = _run(tmp_path, "raise ValueError('boom')\n")
    assert r.returncode == 1
    assert "ValueError: boom" in r.stderr


def test_machine_code_decorators_are_dropped(tmp_path: Path) -> None:
    # the port has no native emitter: the functions run as bytecode, with the same results
    r = _run(tmp_path, """
import micropython
@micropython.viper
def add(a: int, b: int) -> int:
    return a + b
@micropython.native
def twice(a):
    return 2 * a
print(add(2, 3), twice(4))
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5", "8"]


def test_mem_reports_the_32_bit_columns() -> None:
    _node()
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "tools" / "mem.py"),
                        "--only", "wasm32", "--no-bisect"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert ".mpy(32)" in r.stdout and "ROMFS(32)" in r.stdout, r.stdout
    rows = {}
    for line in r.stdout.splitlines():
        for label in ("heap used after import", "idle after start-up", "per connected client"):
            if line.startswith(label):
                rows[label] = [float(x) for x in re.findall(r"([0-9.]+) (?:KB|B)\b", line)][:2]
    assert len(rows) == 3 and all(len(v) == 2 for v in rows.values()), r.stdout
    mpy, romfs = rows["idle after start-up"]
    # the image keeps bytecode and strings out of the heap
    assert 0 < romfs < mpy, r.stdout
    assert all(x > 0 for x in rows["per connected client"]), r.stdout
