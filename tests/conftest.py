"""Fixtures shared across test files (expensive ones are built once per session)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sample_class(tmp_path_factory):
    """(folder, expected): the sample class written once by ``python -m autograder.sample_class``."""
    course = tmp_path_factory.mktemp("shared-sample-class")
    subprocess.run([sys.executable, "-m", "autograder.sample_class", str(course)], cwd=ROOT, check=True,
                   capture_output=True)
    return course, json.loads((course / "expected.json").read_text())


@pytest.fixture
def no_bwrap_path(tmp_path):
    """A PATH without bwrap: the venv's bin (no bwrap there) and an empty folder."""
    empty = tmp_path / "bin-without-bwrap"
    empty.mkdir()
    return f"{Path(sys.executable).parent}{os.pathsep}{empty}"
