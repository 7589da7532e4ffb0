"""make flash BOARD=rp2|esp32 with no board: every step that needs no hardware runs (the file
set compiled for the board's architecture), then one line says what to check, exit status 1.
Also the refusals (no secrets file, wrong PORT, unknown board) and package.json."""
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FLASH = ROOT / "tools" / "flash.py"

# mpy-cross architecture numbers, in the .mpy header's third byte (bits 2..7)
ARCH = {"x64": 2, "armv6m": 4, "xtensawin": 10}


def flash(tmp_path, *args, env=None):
    e = dict(os.environ)
    for name in ("PORT", "SIM_PORT", "SECRETS", "BOARD"):
        e.pop(name, None)
    e.update(env or {})
    return subprocess.run([sys.executable, str(FLASH)] + list(args)
                          + ["--build-dir", str(tmp_path / "build")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=e)


@pytest.fixture
def secrets(tmp_path):
    path = tmp_path / "secrets.py"
    path.write_text('WIFI_SSID = "home"\nWIFI_PASSWORD = "secret"\n')
    return path


def assert_one_line_error(r, *words):
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("flash: error: ")
    assert "Traceback" not in r.stdout + r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def usb_boards_attached():
    from serial.tools import list_ports
    return [p for p in list_ports.comports() if p.vid in (0x2E8A, 0x303A, 0x10C4, 0x1A86, 0x0403)]


@pytest.mark.parametrize("board", ["rp2", "esp32"])
def test_no_board_builds_for_the_arch_then_fails_in_one_line(tmp_path, secrets, board):
    if usb_boards_attached():
        pytest.skip("a USB serial board is attached to this machine")
    r = flash(tmp_path, board, "--secrets", str(secrets))
    assert_one_line_error(r, "found on USB", "PORT=")
    files = tmp_path / "build" / board / "files"
    arch = json.loads((ROOT / "boards" / board / "board.json").read_text())["arch"]
    assert "-march=%s" % arch in r.stdout
    # viper code makes bytesops architecture-specific: its header names the board's arch
    header = (files / "broker" / "bytesops.mpy").read_bytes()[:4]
    assert header[:2] == b"M\x06"
    assert header[2] >> 2 == ARCH[arch]
    for mpy in files.rglob("*.mpy"):
        head = mpy.read_bytes()[:3]
        assert head[:2] == b"M\x06" and head[2] >> 2 in (0, ARCH[arch]), mpy
    names = {str(p.relative_to(files)) for p in files.rglob("*") if p.is_file()}
    for expected in ("main.py", "broker.conf", "secrets.py", "boardmain.mpy", "wifi.mpy",
                     "broker/engine.mpy", "ports/micropython/server.mpy"):
        assert expected in names
    assert not [n for n in names if n.endswith(".py") and n not in ("main.py", "secrets.py")]
    assert "broker/passwd.mpy" not in names
    assert not [n for n in names if n.startswith("ports/cpython/")]
    # the board's configuration, as written: limits kept, listener on all interfaces
    assert (files / "broker.conf").read_text() == \
        (ROOT / "boards" / board / "broker.conf").read_text()
    assert "listener 1883\n" in (files / "broker.conf").read_text()


def test_sim_build_is_for_the_host(tmp_path):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location("flash_tool", FLASH)
    tool = module_from_spec(spec)
    spec.loader.exec_module(tool)
    board = tool.load_board("sim")
    out = tmp_path / "files"
    files, compiled = tool.build(board, out, {"broker.conf": tool.board_config(board, 18830)})
    assert compiled > 0
    assert (out / "broker" / "bytesops.mpy").read_bytes()[2] >> 2 == ARCH["x64"]
    assert "listener 18830 127.0.0.1" in (out / "broker.conf").read_text()
    assert not (out / "wifi.mpy").exists()  # no Wi-Fi on the virtual board
    _, again = tool.build(board, out, {"broker.conf": tool.board_config(board, 18830)})
    assert again == 0  # nothing recompiled when nothing changed


def test_missing_secrets_refused_with_the_template_named(tmp_path):
    r = flash(tmp_path, "rp2", "--secrets", str(tmp_path / "nope.py"))
    assert_one_line_error(r, "nope.py is missing", "secrets.example.py", "WIFI_SSID")


def test_secrets_without_a_network_refused(tmp_path):
    path = tmp_path / "secrets.py"
    path.write_text('WIFI_SSID = ""\n')
    r = flash(tmp_path, "esp32", "--secrets", str(path))
    assert_one_line_error(r, "neither WIFI_SSID", "AP_SSID")


def test_wrong_port_fails_in_one_line(tmp_path, secrets):
    r = flash(tmp_path, "rp2", "--secrets", str(secrets), env={"PORT": "/dev/ttyNOSUCH0"})
    assert_one_line_error(r, "PORT=/dev/ttyNOSUCH0 does not exist")


def test_port_with_no_micropython_behind_it_fails_in_one_line(tmp_path, secrets):
    master, slave = pty.openpty()
    try:
        r = flash(tmp_path, "rp2", "--secrets", str(secrets), "--port", os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert_one_line_error(r, "no MicroPython REPL answers on PORT=")


def test_unknown_or_missing_board(tmp_path):
    assert_one_line_error(flash(tmp_path, "pyboard"), "unknown board 'pyboard'", "rp2")
    assert_one_line_error(flash(tmp_path), "make flash BOARD=")


def test_package_json_lists_the_board_modules():
    text = (ROOT / "package.json").read_text()
    package = json.loads(text)
    r = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.argv = ['x']; "
                        "m = runpy.run_path(%r); print(m['package_json'](), end='')" % str(FLASH)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert text == r.stdout, \
        "package.json is out of date: .venv/bin/python tools/flash.py --write-package-json"
    targets = [t for t, _ in package["urls"]]
    for target, url in package["urls"]:
        assert (ROOT / url).is_file(), url
    for needed in ("broker/engine.py", "ports/micropython/server.py", "boardmain.py", "wifi.py"):
        assert needed in targets
    assert "broker/passwd.py" not in targets and "main.py" not in targets
    assert not [t for t in targets if t.startswith("ports/cpython/")]
