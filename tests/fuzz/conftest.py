"""Property-based tests (hypothesis) of the portable core: the codec and the engine fed random and
mutated packet streams. CPython only: hypothesis does not exist on MicroPython, and
tools/mptest.py only runs tests/core.

Two hypothesis profiles:

    ci    the default, what `make test` runs: a few hundred examples per property and no example
          database. Keeps tests/fuzz well under 20 s.
    fuzz  `make fuzz` (or FUZZ_EXAMPLES=N in the environment): N examples per property (scaled
          by each property's weight), with the example database under build/hypothesis so that
          a failure found once is replayed first next time.

Every run draws its examples from one seed, fresh each run so that CI does not replay the same
examples forever, and printed at the end of the run and with each failure. The same seed and the
same profile draw the same examples again: FUZZ_SEED=N in the environment (or pytest's
--hypothesis-seed=N) replays a run, one property of it too (-k).

Hypothesis' own storage goes under build/ too (it is git-ignored and `make clean` removes it).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:  # tests/core, for harness.py and packets.py: tests/conftest.py
    sys.path.insert(0, HERE)

STORAGE = os.path.join(REPO_ROOT, "build", "hypothesis")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", STORAGE)

from hypothesis import HealthCheck, is_hypothesis_test, seed, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]

settings.register_profile(
    "ci", max_examples=200, deadline=None, database=None,
    suppress_health_check=_HEALTH, print_blob=True)

_fuzz_examples = os.environ.get("FUZZ_EXAMPLES", "")
settings.register_profile(
    "fuzz", max_examples=int(_fuzz_examples or 20000), deadline=None,
    database=DirectoryBasedExampleDatabase(os.path.join(STORAGE, "examples")),
    suppress_health_check=_HEALTH, print_blob=True)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("fuzz" if _fuzz_examples else "ci"))

SEED = None
seeded = []  # the properties this run drew from SEED


def pytest_configure(config):
    global SEED
    text = config.getoption("--hypothesis-seed") or os.environ.get("FUZZ_SEED", "")
    try:
        SEED = int(text) if text else int.from_bytes(os.urandom(4), "big")
    except ValueError:
        raise pytest.UsageError("FUZZ_SEED and --hypothesis-seed take an integer, not %r" % text)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.is_relative_to(HERE) and is_hypothesis_test(item.obj):
            seed(SEED)(item.obj)
            seeded.append(item)


def _replay():
    return "FUZZ_SEED=%s before the same command (or --hypothesis-seed=%s) replays it" % (
        SEED, SEED)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        report.sections.append(("hypothesis seed", "this run's seed: " + _replay()))
    return report


def pytest_terminal_summary(terminalreporter):
    if seeded:
        terminalreporter.write_line("tests/fuzz: hypothesis seed %s; %s" % (SEED, _replay()))
