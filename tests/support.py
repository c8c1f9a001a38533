"""Helpers shared by the tests."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat

from tinytorch.export import without_markers
from tools import generate, sample_class

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


# Run in a student's environment: imports *their* SGD, takes the worked numbers' two steps and
# prints where the class came from, its marker and the result (0.855 when correct).
STUDENT_SGD_CHECK = (
    "import numpy as np\n"
    "import tinytorch.core.optimizers as module\n"
    "from tinytorch.core.optimizers import SGD\n"
    "from tinytorch.core.tensor import Tensor\n"
    "p = Tensor([1.0], requires_grad=True)\n"
    "opt = SGD([p], lr=0.1, momentum=0.9)\n"
    "for _ in range(2):\n"
    "    p.grad = np.array([0.5], np.float32)\n"
    "    opt.step()\n"
    "print(module.__file__, SGD.written_by, round(float(p.data[0]), 4))\n"
)


# Headless Chromium as the tests drive it (Playwright, /usr/bin/chromium): no GPU, no background traffic.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def grade_json(paths, *extra) -> list:
    """``python -m autograder grade PATHS --json`` with the sandbox required: the entries it prints."""
    env = {**os.environ, "AUTOGRADER_SANDBOX": "required"}
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json", "--no-progress", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def tree_digest(*paths) -> str:
    """One sha256 over the names and bytes of every file under ``paths`` (``__pycache__`` aside)."""
    digest = hashlib.sha256()
    for base in paths:
        for path in sorted(Path(base).rglob("*")) if Path(base).is_dir() else [Path(base)] * Path(base).exists():
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


class Listener:
    """A loopback TCP server: any connection from a submission means the sandbox leaked."""

    def __init__(self, port: int):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.accepted, self.running = 0, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"  # a shell where nobody activated the venv
# The README's zip_collect pattern (tests/authoring/test_readme.py checks it is the README's, verbatim).
LMS_PATTERN = r".+/(?P<student_id>[^_/]+)_attempt_(?P<timestamp>[0-9-]+)_(?P<file_id>optimizers\.ipynb)$"
# One correct student, one with a catalogued misconception (a sample-class case).
SOLUTIONS = {"alice": "correct-reference", "bob": "bug-betas-swapped"}


def solve(notebook: Path, case: str) -> None:
    """Answer every exercise as the sample-class case CASE does (reference code, or a catalogued bug)."""
    edits = next(edits for name, edits, *_ in sample_class.cases() if name == case)
    source = nbformat.read(ROOT / generate.INSTRUCTOR, as_version=4)
    nbformat.write(sample_class.fill(nbformat.read(notebook, as_version=4), source, edits), notebook)
