"""CPython's two builds of the core: the start-up line says which one runs (the compiled one of
build/mypyc when tools/mypyc_build.py made it, the pure one with PURE=1 or without it)."""

import os
import subprocess

import pytest

from conftest import REPO_ROOT, _our_python, free_port

pytestmark = pytest.mark.integration


def _env(pure):
    env = dict(os.environ)
    env.pop("PURE", None)
    if pure:
        env["PURE"] = "1"
    return env


def _start_up_line(pure):
    env = _env(pure)
    proc = subprocess.Popen([_our_python(), "-m", "broker", "-p", str(free_port())],
                            cwd=str(REPO_ROOT), env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        return "".join(lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.kinds("cpython")
def test_the_start_up_line_names_the_build(broker_kind):
    # "compiled" when make setup built it (and no source is newer), "pure: why" when stale
    want = subprocess.run([_our_python(), "-c", "from ports.cpython import compiled; "
                           "print(compiled.build)"], cwd=str(REPO_ROOT), env=_env(False),
                          capture_output=True, text=True, check=True).stdout.strip()
    text = _start_up_line(pure=False)
    assert "starting (%s)" % want in text, text


@pytest.mark.kinds("cpython")
def test_pure_1_runs_the_pure_build(broker_kind):
    text = _start_up_line(pure=True)
    assert "starting (pure)" in text, text
