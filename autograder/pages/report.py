"""``python -m autograder.pages.report [--course DIR] [--assignment A] [--out DIR]``: the class report.

Writes ``reports/<assignment>.html`` (score distribution, pass rate of every hidden
check, misconceptions and the students behind them, submissions with errors; figures
drawn by matplotlib and embedded as PNG) and ``reports/<assignment>.csv`` (one row per
student). Scores come from the course gradebook (nbgrader's ``Gradebook``); per-check
detail from the ``autograder`` metadata of each ``autograded/<student>/<assignment>/``
notebook. That metadata sits in a file next to student output, so it is treated as
untrusted: types and sizes are checked, strings are bounded, the page is rendered by
Jinja2 with autoescaping, figure labels are drawn with mathtext off, and the CSV is written by
``export.write_rows`` (numbers bare, text quoted, no cell starts a spreadsheet formula).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..arrival.notebook import arrival_problem
from ..course import CourseError, db_url
from ..course import assignment as find_assignment
from ..judge import content
from ..judge.checks import catalog
from .export import write_rows
from .feedback import RESULTS_KEY

MAX_NOTEBOOK_BYTES = 64 * 1024**2  # larger autograded notebooks are reported, not parsed
MAX_TEXT = 120  # characters kept of any string read from metadata
MAX_TESTS = 200  # per-check entries read per notebook


@dataclass
class Student:
    name: str
    score: float | None = None  # autograded points (gradebook)
    max_score: float | None = None
    written_score: float | None = None
    max_written_score: float | None = None
    needs_manual_grade: bool = False
    components: dict = field(default_factory=dict)  # component -> score (metadata)
    tests: list = field(default_factory=list)  # [(check id, passed, diagnosis or None)]
    error: str | None = None

    @property
    def misconceptions(self) -> list:
        return sorted({d for _, _, d in self.tests if d})


def _text(value) -> str | None:
    """A bounded string from metadata, or None for anything that is not a string."""
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_results(path: Path) -> tuple:
    """(components, tests, error) from one autograded notebook's grader metadata."""
    if not path.is_file():
        return {}, [], "not autograded: nbgrader could not grade this submission (see `make autograde`'s output)"
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return {}, [], f"autograded notebook larger than {MAX_NOTEBOOK_BYTES // 1024**2} MiB: not read"
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several types for a damaged file
        return {}, [], f"autograded notebook unreadable ({type(err).__name__})"
    results = nb.metadata.get(RESULTS_KEY)
    if not isinstance(results, dict) or not isinstance(results.get("tests"), list):
        return {}, [], "the hidden checks did not run (no results in the autograded notebook)"
    components = {}
    for name, value in (results.get("components") or {}).items() if isinstance(results.get("components"), dict) else ():
        score = _number(value.get("score")) if isinstance(value, dict) else None
        if _text(name) and score is not None:
            components[_text(name)] = score
    tests = []
    for test in results["tests"][:MAX_TESTS]:
        if not isinstance(test, dict):
            continue
        check, score, top = _text(test.get("id")), _number(test.get("score")), _number(test.get("max_score"))
        if check and score is not None and top is not None:
            tests.append((check, score >= top, _text(test.get("diagnosis")) or None))
    stopped = [
        output.get("evalue")
        for cell in nb.cells
        if cell.get("cell_type") == "code"
        for output in cell.get("outputs", [])
        if output.get("ename") == "AutograderStopped"
    ]
    return components, tests, f"notebook stopped: {_text(stopped[0])}" if stopped else None


def collect(course: Path, db_url: str, assignment: str) -> list:
    """Every student who submitted or is in the gradebook, with scores and per-check results."""
    from nbgrader.api import Gradebook

    students = {}
    with Gradebook(db_url) as gb:
        for sub in gb.assignment_submissions(assignment):
            students[sub.student_id] = Student(
                sub.student_id,
                float(sub.code_score),
                float(sub.max_code_score),
                float(sub.written_score),
                float(sub.max_written_score),
                bool(sub.needs_manual_grade),
            )
    for path in sorted((course / "submitted").glob(f"*/{assignment}")):
        students.setdefault(path.parent.name, Student(path.parent.name))
    refused = refusals(course, assignment)
    notebook = find_assignment(course, assignment).notebook
    for student in students.values():
        path = course / "autograded" / student.name / assignment / f"{notebook}.ipynb"
        student.components, student.tests, student.error = read_results(path)
        if student.name in refused:  # the same judgement course-autograde made: nothing of it was graded
            student.components, student.tests, student.error = {}, [], refused[student.name]
        if student.score is None and not student.error:
            student.error = "not in the gradebook"
    return sorted(students.values(), key=lambda s: s.name)


def refusals(course: Path, assignment: str) -> dict:
    """{submitted folder name: why it was refused at arrival} (autograder/arrival.py's rules)."""
    if not (course / "submitted").is_dir():
        return {}
    try:
        source = find_assignment(course, assignment).source
    except CourseError:
        return {}
    if not source.is_file():
        return {}
    source_nb = nbformat.read(source, as_version=4)
    found = {}
    for folder in sorted((course / "submitted").glob(f"*/{assignment}")):
        problem = arrival_problem(folder.parent, assignment, source_nb)
        if problem:
            found[folder.parent.name] = f"refused at arrival: {_text(problem)}"
    return found


def summarise(students: list, assignment: str | None = None) -> dict:
    graded = [s for s in students if s.tests and s.score is not None]
    order = {c.id: i for i, c in enumerate(catalog(content.load(assignment) if assignment else None))}
    runs = defaultdict(lambda: [0, 0])  # check -> [passed, total]
    behind = defaultdict(list)  # misconception -> students
    for s in graded:
        for check, passed, _ in s.tests:
            runs[check][0] += passed
            runs[check][1] += 1
        for slug in s.misconceptions:
            behind[slug].append(s.name)
    checks = [
        (c, p, t, 100 * p / t) for c, (p, t) in sorted(runs.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    ]
    counts = Counter({slug: len(names) for slug, names in behind.items()})
    scores = [s.score for s in graded]
    return {
        "graded": graded,
        "scores": scores,
        "checks": checks,
        "misconceptions": [(slug, n, sorted(behind[slug])) for slug, n in counts.most_common()],
        "errors": [s for s in students if s.error],
        "max_score": max((s.max_score for s in graded), default=100.0),
        "max_written": max((s.max_written_score or 0 for s in graded), default=0.0),
        "mean": statistics.fmean(scores) if scores else None,
        "median": statistics.median(scores) if scores else None,
    }


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(summary: dict) -> list:
    """[(title, alt text, base64 PNG)] for the three charts."""
    import matplotlib
    from matplotlib.figure import Figure

    out = []
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):  # labels are data
        fig = Figure(figsize=(6, 3))
        ax = fig.add_subplot()
        top = summary["max_score"]
        ax.hist(summary["scores"], bins=[top * i / 10 for i in range(11)], color="#6366f1", edgecolor="white")
        ax.set(xlabel=f"autograded score (of {top:g})", ylabel="students", title="Score distribution")
        out.append(
            (
                "Score distribution",
                f"Histogram of the autograded scores of {len(summary['scores'])} "
                f"students in ten bins from 0 to {top:g}; mean {summary['mean'] or 0:.1f}, "
                f"median {summary['median'] or 0:g}.",
                _png(fig),
            )
        )

        checks = summary["checks"]
        fig = Figure(figsize=(6, 0.3 * len(checks) + 1))
        ax = fig.add_subplot()
        ax.barh([c[0] for c in checks][::-1], [c[3] for c in checks][::-1], color="#10b981")
        ax.set(xlim=(0, 100), xlabel="% of students passing", title="Hidden checks")
        worst = min(checks, key=lambda c: c[3]) if checks else None
        out.append(
            (
                "Pass rate of every hidden check",
                f"Horizontal bar chart of the pass rate of {len(checks)} "
                "hidden checks"
                + (f"; lowest: {worst[0]} at {worst[3]:.0f}%." if worst else ".")
                + " The table below lists every value.",
                _png(fig),
            )
        )

        found = summary["misconceptions"]
        fig = Figure(figsize=(6, 0.3 * max(len(found), 1) + 1))
        ax = fig.add_subplot()
        ax.barh([m[0] for m in found][::-1], [m[1] for m in found][::-1], color="#ef4444")
        ax.set(xlabel="students", title="Misconceptions named by the grader")
        ax.xaxis.get_major_locator().set_params(integer=True)
        out.append(
            (
                "Misconceptions",
                f"Horizontal bar chart of how many students show each of {len(found)} "
                "misconceptions. The table below names the students.",
                _png(fig),
            )
        )
    return out


def write_csv(students: list, path: Path) -> None:
    components = sorted({c for s in students for c in s.components})
    header = [
        "student",
        "autograded_score",
        "autograded_max",
        "written_score",
        "written_max",
        "needs_manual_grade",
        *components,
        "misconceptions",
        "failed_checks",
        "error",
    ]
    write_rows(
        path,
        header,
        (
            [
                s.name,
                s.score,
                s.max_score,
                s.written_score,
                s.max_written_score,
                s.needs_manual_grade,
                *(s.components.get(c) for c in components),
                "; ".join(s.misconceptions),
                "; ".join(c for c, passed, _ in s.tests if not passed),
                s.error,
            ]
            for s in students
        ),
    )


def render(students: list, assignment: str) -> str:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    summary = summarise(students, assignment)
    return env.get_template("report.html.j2").render(
        assignment=assignment, students=students, summary=summary, figures=figures(summary)
    )


def build(course: Path, out: Path | None = None, assignment: str | None = None) -> tuple:
    """Write the report and CSV; return their paths."""
    assignment = find_assignment(course, assignment).name
    out = out or course / "reports"
    students = collect(course, db_url(course), assignment)
    if not students:
        raise SystemExit(
            f"no submissions in {course / 'submitted'} and none in the gradebook: run `make autograde` first"
        )
    out.mkdir(parents=True, exist_ok=True)
    html, table = out / f"{assignment}.html", out / f"{assignment}.csv"
    html.write_text(render(students, assignment))
    write_csv(students, table)
    return html, table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.pages.report", description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="course root (default: the current folder)")
    parser.add_argument("--assignment", help="the assignment (default: the course's only one)")
    parser.add_argument("--out", type=Path, help="output folder (default: COURSE/reports)")
    args = parser.parse_args(argv)
    for path in build(args.course.resolve(), args.out, args.assignment):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
