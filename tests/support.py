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


# Run in a student's environment: imports *their* SGD, takes the worked numbers' two steps and
# prints where the class came from, its marker and the result (0.855 when correct).
STUDENT_SGD_CHECK = ("import numpy as np\n"
                     "import tinytorch.core.optimizers as module\n"
                     "from tinytorch.core.optimizers import SGD\n"
                     "from tinytorch.core.tensor import Tensor\n"
                     "p = Tensor([1.0], requires_grad=True)\n"
                     "opt = SGD([p], lr=0.1, momentum=0.9)\n"
                     "for _ in range(2):\n"
                     "    p.grad = np.array([0.5], np.float32)\n"
                     "    opt.step()\n"
                     "print(module.__file__, SGD.written_by, round(float(p.data[0]), 4))\n")


# Headless Chromium as the tests drive it (Playwright, /usr/bin/chromium): no GPU, no background traffic.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
