"""make flash to a board whose firmware has the broker frozen in (make firmware): the virtual
board given a frozen set (SIM_FROZEN, as tools/firmware.py stages one) gets only broker.conf,
loses the module copies that would shadow the frozen ones, and runs the frozen main.py."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flash import sources  # noqa: E402
from mpy_source import stage_frozen  # noqa: E402
from test_flash_romfs import finish  # noqa: E402
from test_flash_sim import Sim, wait_connectable  # noqa: E402


def test_a_frozen_firmware_gets_only_its_configuration(tmp_path, monkeypatch):
    frozen = tmp_path / "frozen"
    stage_frozen(sources("sim", False), frozen, native=False)
    monkeypatch.setenv("SIM_FROZEN", str(frozen))
    board = Sim(tmp_path)
    stale = board.dir / "flash" / "broker" / "engine.mpy"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"M\x06 stale")
    (board.dir / "flash" / "main.py").write_text("raise SystemExit('not this one')\n")
    try:
        r = board.flash()
        out = r.stdout
        assert r.returncode == 0, out + r.stderr
        assert "the firmware has the broker frozen in: copying only broker.conf" in out
        assert "differs from this repository" not in out
        assert "removing 2 copies of frozen files" in out
        assert "1 of 1 files changed, copying" in out and "  broker.conf (" in out
        assert "broker ready at 127.0.0.1:%d" % board.port in out
        assert "the broker's modules run frozen into the firmware" in out
        flash = board.dir / "flash"
        assert sorted(p.name for p in flash.iterdir()) == ["broker.conf"]
        wait_connectable(board.port)
        r = board.mpremote("exec", "import broker.engine\nprint('FILE', broker.engine.__file__)")
        assert "FILE /.frozen/broker/engine.py" in r.stdout, r.stdout + r.stderr

        again = board.flash()
        assert again.returncode == 0, again.stdout + again.stderr
        assert "all 1 files on the board are up to date" in again.stdout
    finally:
        finish(board)
