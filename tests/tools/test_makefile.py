"""The Makefile's front door: `make setup` compiles the core with mypyc, as the README says, and
does not stop at the virtual environment."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_setup_builds_the_compiled_core() -> None:
    # -B: every target counts as out of date, so the dry run lists each command setup runs.
    out = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-m venv" in out
    assert "tools/mypyc_build.py" in out
