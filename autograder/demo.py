"""``make demo``'s grading step: the whole sample class in the sandbox, or, without bubblewrap, its benign part.

``python -m autograder.demo [--course DIR] [--jobs N]`` grades
``DIR/submitted/*/07_optimizers/optimizers.ipynb`` (written with ``DIR/expected.json`` by
``python -m autograder.sample_class DIR``). With a working bubblewrap every case is graded,
attacks included. Without it the attacks are left out (``expected.json`` marks them) and the
rest is graded with an explicit, announced ``AUTOGRADER_SANDBOX=off``, so a newcomer's first
run works and runs no hostile code. ``AUTOGRADER_SANDBOX=required`` keeps its meaning: no
sandbox, no demo.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import sandbox
from .__main__ import main as grade_main
from .grade import ASSIGNMENT, NOTEBOOK, ROOT


def benign_only(problem: str, skipped: int, graded: int) -> str:
    return (f"demo: bubblewrap is not usable here ({problem}), so this demo grades only the {graded} "
            f"sample notebooks that are not attacks (skipping {skipped}), WITHOUT the sandbox "
            "(AUTOGRADER_SANDBOX=off). For the full demo, attacks included, graded in the sandbox: "
            "install bubblewrap (apt-get install bubblewrap) and run `make demo` again.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, default=ROOT, help="folder holding submitted/ and expected.json")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    expected = json.loads((args.course / "expected.json").read_text())
    paths = sorted((args.course / "submitted").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}.ipynb"))
    requested = os.environ.get("AUTOGRADER_SANDBOX", "").strip().lower()
    problem = None if requested == "off" else sandbox.unavailable_reason()
    if requested == "off" or (problem and requested != "required"):
        benign = [p for p in paths if not expected[p.parts[-3]]["attack"]]
        print(benign_only(problem or "AUTOGRADER_SANDBOX=off is set", len(paths) - len(benign), len(benign)),
              file=sys.stderr, flush=True)
        os.environ["AUTOGRADER_SANDBOX"] = "off"
        paths = benign
    return grade_main(["grade", *map(str, paths), "--jobs", str(max(args.jobs, 1))])


if __name__ == "__main__":
    sys.exit(main())
