"""The Makefile's front door: `make setup` compiles the core with mypyc, as the README says, and
does not stop at the virtual environment; `make run` and `make bench` build it before they start
the broker, so that they run the compiled build on a machine where setup was never run."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _dry_run(target: str) -> str:
    # -B: every target counts as out of date, so the dry run lists each command the target runs.
    return subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_setup_builds_the_compiled_core() -> None:
    out = _dry_run("setup")
    assert "-m venv" in out
    assert "tools/mypyc_build.py" in out


def test_run_and_bench_build_the_compiled_core_before_the_broker() -> None:
    for target, starts in (("run", "-m broker"), ("bench", "tools/bench/run.py")):
        out = _dry_run(target)
        assert "tools/mypyc_build.py" in out and starts in out
        assert out.index("tools/mypyc_build.py") < out.index(starts), target
