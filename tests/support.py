"""Helpers shared by the tests."""
import socket
from pathlib import Path

import nbformat

from tinytorch.export import without_markers

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTOR_NB = ROOT / "source/07_optimizers/optimizers.ipynb"


def solution_source(grade_id: str) -> str:
    """What a student would type: the instructor's cell for an exercise, without nbgrader's markers."""
    for cell in nbformat.read(INSTRUCTOR_NB, as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return without_markers(cell.source)
    raise KeyError(grade_id)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
