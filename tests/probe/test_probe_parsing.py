"""The probe parses plain Python without importing IPython, exactly as IPython would have parsed it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.arrival.notebook import graded_code
from autograder.probe import parse

ROOT = Path(__file__).resolve().parents[2]


def as_ipython_parses(code: str, name: str) -> ast.Module:
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(code), f"<{name}>")


def test_every_cell_of_the_notebook_parses_as_ipython_parses_it():
    source = nbformat.read(ROOT / "source/07_optimizers/optimizers.ipynb", as_version=4)
    cells = graded_code(source, source)
    assert cells
    for name, code, *_ in cells:
        assert ast.dump(parse(code, name)) == ast.dump(as_ipython_parses(code, name)), name


@pytest.mark.parametrize(
    "code",
    [
        "x = 1\n",
        "%time y = 2\n",
        "!ls\nz = 3\n",
        "obj?\n",
        "    a = 1\n    b = 2\n",
        ">>> c = 4\n",
        "d = !echo hi\n",
        "%%time\ne = 5\n",
        "s = '''\n%notmagic\n'''\n",
    ],
)
def test_plain_or_not_the_tree_is_ipythons(code):
    tree = parse(code, "cell")
    expected = as_ipython_parses(code, "cell")
    if code.startswith("%%time"):
        expected = as_ipython_parses("e = 5\n", "cell")
        ast.increment_lineno(expected, 1)
    assert ast.dump(tree) == ast.dump(expected)


PROBE_IMPORTS = """
import sys
from autograder.probe import parse
parse("import numpy as np\\nclass A:\\n    def f(self):\\n        return 1\\n", "plain")
print("IPython" in sys.modules)
parse("%time x = 1\\n", "magic")
print("IPython" in sys.modules)
"""


def test_ipython_is_imported_only_for_a_cell_that_needs_it():
    result = subprocess.run([sys.executable, "-c", PROBE_IMPORTS], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["False", "True"]
