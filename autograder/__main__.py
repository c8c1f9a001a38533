"""``python -m autograder grade NB... [--json] [--feedback-dir DIR] [--jobs N] [--scheduler ADDRESS]``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def table(entries: list) -> str:
    names = ("Optimizer", "SGD", "Adam", "AdamW")
    width = max([len(e["submission"]) for e in entries] + [10])
    lines = [f"{'submission':{width}}  {'score':>9}  " + "  ".join(f"{n:>9}" for n in names) + "  notes"]
    for e in entries:
        parts = "  ".join(f"{e['components'].get(n, {}).get('score', 0):>9g}" for n in names)
        diagnoses = sorted({slug for t in e["tests"] for slug in t.get("diagnoses") or [t["diagnosis"]] if slug})
        note = f"error: {e['error']}" if e["error"] else ", ".join(diagnoses)
        lines.append(f"{e['submission']:{width}}  {e['score']:>5g}/{e['max_score']:<3g}  {parts}  {note}")
    written = max((e.get("written_max_score", 0) for e in entries), default=0)
    if written:
        lines.append(f"(scores are the autograded part; {written:g} more points of written answers "
                     "are graded by people, in nbgrader's formgrader)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade module 07 notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade notebooks through the hardened nbgrader pipeline")
    grade.add_argument("notebooks", nargs="+", metavar="NB")
    grade.add_argument("--json", action="store_true", help="print one JSON list, an object per notebook")
    grade.add_argument("--feedback-dir", metavar="DIR", help="write one student-facing HTML per notebook")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel graders (default: cores)")
    grade.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler to grade on")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    course = sub.add_parser("course-autograde", help="run nbgrader autograde on every submitted/ student, "
                                                    "with a progress bar (the repository is the course)")
    course.add_argument("assignment", nargs="?", default="07_optimizers")
    course.add_argument("--jobs", type=int, default=1, help="concurrent graders (needs a database server)")
    course.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler to grade on")
    course.add_argument("--course", type=Path, default=None, help="course root (default: this repository)")
    args = parser.parse_args(argv)
    from . import sandbox

    try:  # before any student code runs: no sandbox, no grading (unless AUTOGRADER_SANDBOX=off)
        if sandbox.check():
            print(sandbox.memory_announcement(), file=sys.stderr)
    except sandbox.SandboxUnavailable as err:
        print(f"python -m autograder {args.command}: {err}", file=sys.stderr)
        return 1
    if args.command == "course-autograde":
        from .grade import ROOT, autograde_course

        return autograde_course(args.assignment, args.course or ROOT, args.jobs, args.scheduler)

    from .grade import grade_many

    entries = grade_many(args.notebooks, jobs=max(args.jobs, 1), feedback_dir=args.feedback_dir,
                         scheduler=args.scheduler, progress=not args.no_progress)
    print(json.dumps(entries, indent=1) if args.json else table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
