"""Property-based tests (hypothesis) of the portable core: the codec and the engine fed random and
mutated packet streams. CPython only: hypothesis does not exist on MicroPython, and
tools/mptest.py only runs tests/core.

Two hypothesis profiles:

    ci    the default, what `make test` runs: a few hundred examples per property, derandomized
          (the same examples on every run, so a red CI is never a coin toss) and no example
          database. Keeps tests/fuzz well under 20 s.
    fuzz  `make fuzz` (or FUZZ_EXAMPLES=N in the environment): N examples per property (scaled
          by each property's weight), random, with the example database under build/hypothesis
          so that a failure found once is replayed first next time.

Hypothesis' own storage goes under build/ too (it is git-ignored and `make clean` removes it).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
for path in (HERE, os.path.join(REPO_ROOT, "tests", "core")):  # harness.py lives in tests/core
    if path not in sys.path:
        sys.path.insert(0, path)

STORAGE = os.path.join(REPO_ROOT, "build", "hypothesis")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", STORAGE)

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]

settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=_HEALTH, print_blob=True)

_fuzz_examples = os.environ.get("FUZZ_EXAMPLES", "")
settings.register_profile(
    "fuzz", max_examples=int(_fuzz_examples or 20000), deadline=None,
    database=DirectoryBasedExampleDatabase(os.path.join(STORAGE, "examples")),
    suppress_health_check=_HEALTH, print_blob=True)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("fuzz" if _fuzz_examples else "ci"))
