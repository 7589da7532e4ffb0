"""make firmware BOARD=rp2 and make test-arm: what they say without a MicroPython source tree,
and, given one (MICROPY_DIR), that the Pico W image holds the frozen broker and that the core
tests and the asyncio front pass on ARM under QEMU, and make mem's frozen(ARM) column. Those
skip without MICROPY_DIR: CI has no source tree."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PY = sys.executable
MICROPY_DIR = os.environ.get("MICROPY_DIR", "")
needs_sources = pytest.mark.skipif(
    not MICROPY_DIR, reason="MICROPY_DIR is not set: make firmware and make test-arm build from a "
    "MicroPython source tree (git clone --recursive https://github.com/micropython/micropython)")


def tool(name, micropy_dir, timeout=60, args=()):
    """The tool's run; its output printed (pytest shows it with a failure) also when it
    times out."""
    env = dict(os.environ, MICROPY_DIR=str(micropy_dir))
    try:
        r = subprocess.run([PY, str(ROOT / "tools" / name)] + list(args), capture_output=True,
                           text=True, env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        for part in (e.stdout, e.stderr):
            print(part.decode(errors="replace") if isinstance(part, bytes) else part or "")
        raise
    print(r.stdout)
    print(r.stderr, file=sys.stderr)
    return r


@pytest.mark.parametrize("name", ["firmware.py", "armtest.py"])
def test_without_a_source_tree_says_how_to_get_one(name):
    r = tool(name, "")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "MICROPY_DIR=DIR" in lines[0] and "git clone" in lines[0]


def test_a_tree_without_its_submodules_names_them(tmp_path):
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "mpconfig.h").write_text(
        "#define MICROPY_VERSION_MAJOR 1\n#define MICROPY_VERSION_MINOR 27\n"
        "#define MICROPY_VERSION_MICRO 0\n")
    (tmp_path / "ports" / "rp2").mkdir(parents=True)
    r = tool("firmware.py", tmp_path)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "\n" not in line
    assert re.search(r"missing .*the submodules btstack, cyw43-driver, lwip, mbedtls, "
                     r"micropython-lib, pico-sdk, pico-sdk/tinyusb, tinyusb", line), line
    assert "make -C %s/ports/rp2 submodules BOARD=RPI_PICO_W" % tmp_path in line


@needs_sources
@pytest.mark.timeout(1800)  # a first build takes minutes
def test_the_pico_w_image_holds_the_frozen_broker():
    r = tool("firmware.py", MICROPY_DIR, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    image = ROOT / "build" / "rp2" / "firmware.uf2"
    assert image.read_bytes()[:4] == b"UF2\n"
    frozen = (ROOT / "build" / "rp2" / "build" / "frozen_content.c").read_text()
    for name in ("broker/engine.py", "ports/micropython/server.py", "main.py", "boardmain.py",
                 "wifi.py", "broker_frozen.py"):
        assert '"%s\\0"' % name in frozen or '"%s"' % name in frozen, name
    assert "broker/invariants.py" not in frozen  # the host's only
    m = re.search(r"flash: (\d+) KB left after the image", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout


@needs_sources
@pytest.mark.timeout(1800)  # some 600 tests on an emulated Cortex-M3
def test_the_core_tests_pass_on_arm_under_qemu():
    r = tool("armtest.py", MICROPY_DIR, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert re.search(r"^\d+ passed, 0 failed", r.stdout, re.M), r.stdout[-3000:]
    assert re.search(r"^aio: ok", r.stdout, re.M), r.stdout[-3000:]


@needs_sources
@pytest.mark.timeout(600)
def test_make_mem_has_a_frozen_arm_column():
    r = tool("mem.py", MICROPY_DIR, timeout=600, args=["--only", "arm", "--no-bisect"])
    assert r.returncode == 0, r.stdout + r.stderr
    idle = re.search(r"^idle after start-up +([\d.]+) KB", r.stdout, re.M)
    assert idle and 0 < float(idle.group(1)) < 24, r.stdout  # the goal


def test_make_mem_without_a_source_tree_says_how_to_get_the_arm_column():
    env = dict(os.environ)
    env.pop("MICROPY_DIR", None)
    r = subprocess.run([PY, str(ROOT / "tools" / "mem.py"), "--only", "arm"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    lines = [ln for ln in r.stdout.splitlines() if "frozen(ARM) not measured" in ln]
    assert len(lines) == 1 and "MICROPY_DIR=DIR" in lines[0], r.stdout
