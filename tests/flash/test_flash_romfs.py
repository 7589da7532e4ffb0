"""make flash BOARD=sim onto firmware with a ROMFS partition (the virtual board's default):
the compiled modules go to the partition as a ROMFS image (`mpremote romfs deploy`), the
broker imports them from /rom, and real clients talk to it; a re-flash deploys nothing; ROMFS=0
and a partition too small for the image fall back to copying the modules as files."""
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_flash_sim import (  # noqa: E402
    Sim, alive, mosquitto_round_trip, paho_round_trip, wait_connectable,
)

ROMFS_HEADER = b"\xd2\xcd\x31"
MODULE_FILES = ("broker/engine.mpy", "ports/micropython/server.mpy", "boardmain.mpy")


def start(tmp_path_factory, name, romfs):
    board = Sim(tmp_path_factory.mktemp(name), romfs=romfs)
    board.first = board.flash()
    return board


def finish(board):
    board.remember()
    board.stop()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in board.pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in board.pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "processes left running after sim stop: %s" % left


@pytest.fixture(scope="module")
def rom_board(tmp_path_factory):
    board = start(tmp_path_factory, "flash-romfs", "256K")
    try:
        assert board.first.returncode == 0, board.first.stdout + board.first.stderr
        yield board
    finally:
        finish(board)


def module_file(board, module):
    """`module`'s __file__ on the board (mpremote exec stops the broker: reset afterwards)."""
    r = board.mpremote("exec", "import sys, %s\nprint('FILE', %s.__file__, sys.path)"
                       % (module, module))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split("FILE ", 1)[1].strip()


def reset(board):
    r = board.mpremote("reset")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_connectable(board.port)


def test_first_flash_deploys_the_modules_as_a_romfs_image(rom_board):
    out = rom_board.first.stdout
    assert re.search(r"deploying \d+ modules as a ROMFS image \(\d+ bytes\) to the "
                     r"262144-byte partition", out), out
    assert "ROMFS image deployed" in out
    assert "the broker's modules run from the ROMFS image at /rom" in out
    assert "broker ready at 127.0.0.1:%d" % rom_board.port in out
    # the partition holds the image; the filesystem only what stays a file
    image = (rom_board.build / "sim" / "broker.romfs").read_bytes()
    assert image.startswith(ROMFS_HEADER)
    assert (rom_board.dir / "romfs.img").read_bytes()[:len(image)] == image
    flash = rom_board.dir / "flash"
    assert (flash / "main.py").is_file() and (flash / "broker.conf").is_file()
    for name in MODULE_FILES:
        assert not (flash / name).exists(), name
    assert not (flash / "broker").exists()


def test_broker_runs_from_rom(rom_board):
    where = module_file(rom_board, "broker.engine")
    assert where.startswith("/rom/broker/engine.mpy ['', '/rom', '/rom/lib',"), where
    assert module_file(rom_board, "ports.micropython.server").startswith(
        "/rom/ports/micropython/server.mpy")
    reset(rom_board)


def test_paho_through_the_board_running_from_rom(rom_board):
    paho_round_trip(rom_board.port, "rom-display", "rom-sensor", "garden/+/moisture",
                    "garden/bed1/moisture", b"41")


def test_mosquitto_clients_through_the_board_running_from_rom(rom_board):
    mosquitto_round_trip(rom_board.port, "rom/state", "rom/#", "in place")


def test_reflash_deploys_nothing_when_nothing_changed(rom_board):
    r = rom_board.flash()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ROMFS image on the board is up to date" in r.stdout
    assert "nothing to deploy" in r.stdout and "nothing to copy" in r.stdout
    assert "deploying" not in r.stdout and "ROMFS image deployed" not in r.stdout
    assert "removing" not in r.stdout
    wait_connectable(rom_board.port)


def test_romfs_0_copies_files_and_erases_the_image_then_romfs_again(rom_board):
    r = rom_board.flash("--romfs", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "modules go to the filesystem as files: ROMFS=0" in r.stdout
    assert "erasing the ROMFS image of an earlier flash" in r.stdout
    assert "the broker's modules run from .mpy files in the filesystem" in r.stdout
    flash = rom_board.dir / "flash"
    for name in MODULE_FILES:
        assert (flash / name).is_file(), name
    assert not (rom_board.dir / "romfs.img").read_bytes().startswith(ROMFS_HEADER)
    where = module_file(rom_board, "broker.engine")  # imported through '', the cwd /
    assert where.startswith("broker/engine.mpy ['', '.frozen'"), where
    reset(rom_board)
    # and back: the image again, the copies that would shadow /rom removed
    r = rom_board.flash()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ROMFS image deployed" in r.stdout
    assert re.search(r"removing \d+ module copies from the filesystem \(they would shadow "
                     r"/rom", r.stdout), r.stdout
    for name in MODULE_FILES:
        assert not (flash / name).exists(), name
    assert module_file(rom_board, "broker.engine").startswith("/rom/broker/engine.mpy")
    reset(rom_board)


def test_partition_too_small_falls_back_to_files(tmp_path_factory):
    board = start(tmp_path_factory, "flash-romfs-small", "8K")
    try:
        r = board.first
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"modules go to the filesystem as files: the ROMFS partition \(8192 "
                         r"bytes\) is too small for the image \(\d+ bytes\)", r.stdout), r.stdout
        assert re.search(r"(\d+) of \1 files changed, copying", r.stdout)
        assert (board.dir / "flash" / "broker" / "engine.mpy").is_file()
        assert "broker ready at 127.0.0.1:%d" % board.port in r.stdout
        assert "run from .mpy files in the filesystem" in r.stdout
    finally:
        finish(board)
