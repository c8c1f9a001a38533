"""How long the hidden checks take on the instructor notebook: ``python -m tools.probe_timing``.

Run in a fresh process, as a grading process grades one notebook: the first call pays for
loading the reference data and the catalog; the second shows the probes alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import nbformat

    t0 = time.perf_counter()
    from autograder.judge import hidden

    imported = time.perf_counter() - t0
    nb = nbformat.read(ROOT / "source" / "07_optimizers" / "optimizers.ipynb", as_version=4)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        results = hidden.run_hidden_checks(nb, nb)
        timings.append(time.perf_counter() - start)
    lost = [r.id for rs in results.values() for r in rs if r.score < r.max_score]
    print(
        f"import {imported:.2f} s | first call {timings[0]:.2f} s | second call (probes, judging) {timings[1]:.2f} s"
        + (f" | FAILED {lost}" if lost else "")
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
