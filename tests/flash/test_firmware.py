"""make firmware BOARD=rp2 and make test-arm: what they say without a MicroPython source tree,
and, given one (MICROPY_DIR), that the Pico W image holds the frozen broker and that the core
tests pass on ARM under QEMU. Those two skip without MICROPY_DIR: CI has no source tree."""
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


def tool(name, micropy_dir, timeout=60):
    env = dict(os.environ, MICROPY_DIR=str(micropy_dir))
    return subprocess.run([PY, str(ROOT / "tools" / name)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


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
