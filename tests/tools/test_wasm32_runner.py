"""tools/wasm32: the 32-bit MicroPython that `make test` runs the core tests on (run.mjs), and
the broker served on it (serve.mjs), which `make mem` measures.

What the core tests take from run.mjs on trust: a board's word size, the script's exit status,
and the decorators it drops. `make test` installs the npm package (make test-wasm32) before pytest.
"""
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from broker.codec import Reader
from broker.const import CONNACK, PUBACK, PUBLISH, SUBACK
from broker.packets import decode, encode_connect, encode_publish, encode_subscribe

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


def _mem_module():
    spec = importlib.util.spec_from_file_location("_tools_mem", ROOT / "tools" / "mem.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _packets(sock: socket.socket, want: int) -> list:
    """The next `want` packets the broker sends on sock."""
    reader = Reader(1 << 20)
    got = []  # type: list
    sock.settimeout(10)
    while len(got) < want:
        data = sock.recv(4096)
        assert data, "the broker closed the connection"
        pos = 0
        while pos < len(data):
            pos = reader.take(data, pos, len(data))
            if reader.ready:
                got.append(decode(reader.b0, reader.buf, reader.start, reader.end))
    return got


def test_the_32_bit_broker_serves_clients_from_romfs_in_a_64k_heap(tmp_path: Path) -> None:
    node = _node()
    mem = _mem_module()
    assert mem.build_wasm32() == ""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "board.conf"
    conf.write_text((ROOT / "boards" / "rp2" / "broker.conf").read_text()
                    .replace("listener 1883", "listener %d" % port))
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([node, str(ROOT / "tools" / "wasm32" / "serve.mjs"), "-X",
                             "heapsize=64K", "--romfs", str(mem.WASM32_IMAGE), "-c", str(conf)],
                            stderr=err, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "listening on 127.0.0.1:%d" % port not in (tmp_path / "stderr.txt").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "stderr.txt").read_text()
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as sub, \
                socket.create_connection(("127.0.0.1", port)) as pub:
            sub.sendall(encode_connect("sub") + encode_subscribe(1, [(b"t/#", 2)]))
            connack, suback = _packets(sub, 2)
            assert (connack.type, connack.return_code) == (CONNACK, 0)
            assert suback.type == SUBACK and suback.codes == [2]
            pub.sendall(encode_connect("pub") + encode_publish(b"t/x", b"on 32 bits", 1, mid=7))
            connack, puback = _packets(pub, 2)
            assert (puback.type, puback.mid) == (PUBACK, 7)
            (msg,) = _packets(sub, 1)
            assert (msg.type, msg.topic, msg.payload, msg.qos) == (PUBLISH, b"t/x", b"on 32 bits", 1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "broker terminating" in (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


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
