"""An nbgrader course folder as the engine sees it: its assignments, notebooks and configured API.

The engine knows no assignment by name: it reads them from the course (``source/<assignment>/``),
as nbgrader does. Imports nothing else from ``autograder``: every layer may use it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent        # autograder/nbgrader_config.py


def assignments(course: Path) -> list:
    """The course's assignments: the folders of ``source/`` (nbgrader's source directory)."""
    source = Path(course) / "source"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if source.is_dir() else []


def only_assignment(course: Path) -> str:
    """The course's one assignment; a clear error when it has none or several."""
    found = assignments(course)
    if len(found) != 1:
        raise SystemExit(f"{Path(course) / 'source'} holds {len(found)} assignments ({', '.join(found) or 'none'}): "
                         "name the one to use")
    return found[0]


def notebook_name(course: Path, assignment: str) -> str:
    """The assignment's one notebook in ``source/<assignment>/``, without ``.ipynb``."""
    found = sorted(p.stem for p in (Path(course) / "source" / assignment).glob("*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"{Path(course) / 'source' / assignment} holds {len(found)} notebooks: expected one")
    return found[0]


def config(course: Path):
    """The course's nbgrader configuration: ``autograder/nbgrader_config.py``, rooted at ``course``."""
    from traitlets.config.loader import PyFileConfigLoader

    previous = os.environ.get("AUTOGRADER_COURSE_ROOT")
    os.environ["AUTOGRADER_COURSE_ROOT"] = str(course)
    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(CONFIG_DIR)).load_config()
    finally:
        if previous is None:
            del os.environ["AUTOGRADER_COURSE_ROOT"]
        else:
            os.environ["AUTOGRADER_COURSE_ROOT"] = previous


def api(course: Path):
    """nbgrader's API for ``course``, configured as ``make autograde`` configures it."""
    from nbgrader.apps import NbGraderAPI

    return NbGraderAPI(config=config(course))


def python_bin() -> str:
    return str(Path(sys.executable).parent)
