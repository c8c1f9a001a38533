"""``python -m autograder grade NB... [--json] [--feedback-dir DIR] [--jobs N] [--scheduler ADDRESS]``
and ``python -m autograder course-autograde [ASSIGNMENT] [--course DIR] [--jobs N] [--scheduler ADDRESS] [--force]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def table(entries: list) -> str:
    names = list(next((e["components"] for e in entries), {}))  # the assignment's components, in its order
    width = max([len(e["submission"]) for e in entries] + [10])
    lines = [f"{'submission':{width}}  {'score':>9}  " + "  ".join(f"{n:>9}" for n in names) + "  notes"]
    for e in entries:
        parts = "  ".join(f"{e['components'].get(n, {}).get('score', 0):>9g}" for n in names)
        diagnoses = sorted({slug for t in e["tests"] for slug in t.get("diagnoses") or [t["diagnosis"]] if slug})
        note = f"error: {e['error']}" if e["error"] else ", ".join(diagnoses)
        lines.append(f"{e['submission']:{width}}  {e['score']:>5g}/{e['max_score']:<3g}  {parts}  {note}")
    written = max((e.get("written_max_score", 0) for e in entries), default=0)
    if written:
        lines.append(
            f"(scores are the autograded part; {written:g} more points of written answers "
            "are graded by people, in nbgrader's formgrader)"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m autograder", description="Grade notebooks with hardened nbgrader.")
    sub = top.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade notebooks through the hardened nbgrader pipeline")
    grade.add_argument("notebooks", nargs="+", metavar="NB")
    grade.add_argument("--json", action="store_true", help="print one JSON list, an object per notebook")
    grade.add_argument("--feedback-dir", metavar="DIR", help="write one student-facing HTML per notebook")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel graders (default: cores)")
    grade.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler to grade on")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    grade.add_argument("--assignment", help="the assignment the notebooks answer (default: the course's only one)")
    grade.add_argument("--course", type=Path, default=None, help="the course holding it (default: this repository)")
    course = sub.add_parser(
        "course-autograde",
        help="run nbgrader autograde on every submitted/ student, with a progress bar (the repository is the course)",
    )
    course.add_argument(
        "assignment", nargs="?", default=None, help="the assignment (default: the only one in the course's source/)"
    )
    course.add_argument("--jobs", type=int, default=1, help="concurrent graders (needs a database server)")
    course.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler to grade on")
    course.add_argument("--course", type=Path, default=None, help="course root (default: this repository)")
    course.add_argument(
        "--force",
        action="store_true",
        help="grade again students already graded (default: skip them, so a rerun resumes)",
    )
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from . import sandbox
    from .course import CourseError, assignment

    try:  # before any student code runs: no sandbox, no grading (unless AUTOGRADER_SANDBOX=off)
        if sandbox.check():
            print(sandbox.memory_announcement(), file=sys.stderr)
    except sandbox.SandboxUnavailable as err:
        print(f"python -m autograder {args.command}: {err}", file=sys.stderr)
        return 1
    try:
        work = assignment(args.course, args.assignment)
    except CourseError as err:
        print(f"python -m autograder {args.command}: {err}", file=sys.stderr)
        return 1
    if args.command == "course-autograde":
        from .batch.course_run import autograde_course

        return autograde_course(work, args.jobs, args.scheduler, force=args.force)

    from .batch import grade

    entries = grade.grade_many(
        args.notebooks,
        work,
        jobs=max(args.jobs, 1),
        feedback_dir=args.feedback_dir,
        scheduler=args.scheduler,
        progress=not args.no_progress,
    )
    print(json.dumps(entries, indent=1) if args.json else table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
