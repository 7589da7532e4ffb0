"""docs/testing.md shows real code: each example marked `<!-- example: PATH -->` is the file at
PATH, verbatim, and that file runs as tests in this directory."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n", re.S)


def test_doc_examples_are_the_test_files():
    with open(os.path.join(ROOT, "docs", "testing.md")) as f:
        doc = f.read()
    examples = EXAMPLE.findall(doc)
    assert sorted(path for path, _ in examples) == [
        "tests/plugin/test_example_aiomqtt.py", "tests/plugin/test_example_paho.py"]
    for path, code in examples:
        with open(os.path.join(ROOT, path)) as f:
            assert code == f.read(), "docs/testing.md shows an old copy of %s" % path
