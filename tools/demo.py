"""``make demo``'s grading step: the sample class graded in a course of its own, ``demo/``.

``python -m tools.demo --course DIR`` grades ``DIR/submitted/*/07_optimizers/optimizers.ipynb``
(written with ``DIR/expected.json`` by ``python -m tools.sample_class DIR``) as an nbgrader
course: its own gradebook (``DIR/gradebook.db``), ``autograded/`` and ``feedback/``, so
``make report COURSE=demo`` shows the class. The instructor's course (the repository's
``submitted/``, gradebook, exchange) is never touched: the demo refuses a folder that is not a
sample class, and ignores ``AUTOGRADER_DB_URL`` and ``NBGRADER_EXCHANGE_ROOT``, which name the
instructor's database and exchange.

With a working bubblewrap every case is graded, attacks included. Without it the attacks are
moved out of ``DIR/submitted/`` (``expected.json`` marks them) and the rest is graded with an
explicit, announced ``AUTOGRADER_SANDBOX=off``, so a newcomer's first run works and runs no
hostile code. ``AUTOGRADER_SANDBOX=required`` keeps its meaning: no sandbox, no demo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from autograder import sandbox
from autograder.__main__ import main as grade_main
from autograder.__main__ import table
from autograder.batch.grade import max_scores, quiet
from autograder.course import DEFAULT_COURSE as ROOT
from autograder.course import assignment, course_config

WORK = assignment(ROOT)  # the repository's assignment, graded in the demo course
ASSIGNMENT, NOTEBOOK, SOURCE = WORK.name, WORK.notebook, WORK.source

# Settings that point nbgrader at the instructor's own gradebook and exchange, not the demo's.
INSTRUCTOR_SETTINGS = ("AUTOGRADER_DB_URL", "NBGRADER_EXCHANGE_ROOT", "AUTOGRADER_COURSE_ROOT")
NOT_GRADED = "attacks-not-graded"  # where attacks wait when there is no sandbox to grade them in


class NotASampleClass(SystemExit):
    """The folder is not a sample class written by ``tools.sample_class``: nothing is graded."""


def benign_only(problem: str, skipped: int, graded: int) -> str:
    return (
        f"demo: bubblewrap is not usable here ({problem}), so this demo grades only the {graded} "
        f"sample notebooks that are not attacks (skipping {skipped}), WITHOUT the sandbox "
        "(AUTOGRADER_SANDBOX=off). For the full demo, attacks included, graded in the sandbox: "
        "install bubblewrap (apt-get install bubblewrap) and run `make demo` again."
    )


def check_sample_class(course: Path) -> dict:
    """The class's ``expected.json``; refuses the repository itself and any folder without one."""
    if course.resolve() == ROOT.resolve():
        raise NotASampleClass(
            f"demo: {course} is the instructor's course; the demo grades the sample class "
            "in a course of its own: `make demo` (or python -m tools.sample_class demo first)"
        )
    if not (course / "expected.json").is_file():
        raise NotASampleClass(
            f"demo: {course} holds no expected.json, so it is not a sample class; "
            f"write one with `python -m tools.sample_class {course}` (or run `make demo`)"
        )
    return json.loads((course / "expected.json").read_text())


def set_attacks_aside(course: Path, expected: dict) -> tuple:
    """Move the attack cases out of ``submitted/`` (inside the demo course); return (kept, moved) counts."""
    moved = 0
    for folder in sorted((course / "submitted").iterdir()):
        if expected.get(folder.name, {}).get("attack", True):  # unknown cases count as attacks
            (course / NOT_GRADED).mkdir(exist_ok=True)
            shutil.move(str(folder), course / NOT_GRADED / folder.name)
            moved += 1
    return len(list((course / "submitted").iterdir())), moved


def record_assignment(api, course: Path) -> None:
    """The source notebook in the demo course and the assignment in its gradebook (generate_assignment)."""
    (course / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    with quiet():
        result = api.generate_assignment(ASSIGNMENT, force=True)
    if not result["success"]:
        raise RuntimeError(
            f"demo: could not record {ASSIGNMENT} in {course}: {result.get('error') or result['log'][-2000:]}"
        )


def entries(course: Path, db_url: str) -> list:
    """The grading table's entries, from the demo course's gradebook and autograded notebooks."""
    from autograder.pages.report import collect

    top = sum(max_scores(WORK).values())
    out = []
    for s in collect(course, db_url, ASSIGNMENT):
        out.append(
            {
                "submission": str(course / "submitted" / s.name / ASSIGNMENT / f"{NOTEBOOK}.ipynb"),
                "score": s.score or 0.0,
                "max_score": s.max_score or top,
                "error": s.error,
                "components": {c: {"score": v} for c, v in s.components.items()},
                "tests": [{"diagnosis": d} for _, _, d in s.tests],
                "written_max_score": s.max_written_score or 0,
            }
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, default=ROOT / "demo", help="the sample class's folder (default: demo/)")
    args = parser.parse_args(argv)
    course = args.course.resolve()
    expected = check_sample_class(course)
    for name in INSTRUCTOR_SETTINGS:
        os.environ.pop(name, None)
    requested = os.environ.get("AUTOGRADER_SANDBOX", "").strip().lower()
    problem = None if requested == "off" else sandbox.unavailable_reason()
    if requested == "off" or (problem and requested != "required"):
        kept, moved = set_attacks_aside(course, expected)
        print(benign_only(problem or "AUTOGRADER_SANDBOX=off is set", moved, kept), file=sys.stderr, flush=True)
        os.environ["AUTOGRADER_SANDBOX"] = "off"
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=course_config(course))
    record_assignment(api, course)
    status = grade_main(["course-autograde", ASSIGNMENT, "--course", str(course)])
    if status:
        return status
    with quiet():
        feedback = api.generate_feedback(ASSIGNMENT, force=True)
    if not feedback["success"]:
        print(f"demo: feedback failed: {feedback.get('error') or feedback['log'][-2000:]}", file=sys.stderr)
        return 1
    print(table(entries(course, api.coursedir.db_url)))
    print(f"feedback in {course / 'feedback'}; the class report: make report COURSE={os.path.relpath(course)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
