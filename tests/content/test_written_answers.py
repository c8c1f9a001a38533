"""Section 9's written answers: nbgrader manually graded cells, model answers that agree with the book."""

import re
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, WRITTEN_STUDENT

from autograder.arrival.notebook import component_cells, written_points
from autograder.course import course_config
from tinytorch.export import read_notebook
from tools import generate

ROOT = Path(__file__).resolve().parents[2]
ABOUT = ROOT / "src/07_optimizers/ABOUT.md"
QUESTIONS = ("written_memory", "written_time", "written_bias_correction", "written_decay", "written_checkpoint")


def cells(path=ROOT / generate.INSTRUCTOR):
    return nbformat.read(path, as_version=4).cells


def written(nb_cells) -> dict:
    return {
        c.metadata.nbgrader.grade_id: c
        for c in nb_cells
        if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("written_")
    }


def model_answer(cell) -> str:
    return cell.source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]


def test_each_question_is_followed_by_a_manually_graded_answer_cell():
    nb_cells = cells()
    answers = written(nb_cells)
    assert list(answers) == list(QUESTIONS)
    for gid, cell in answers.items():
        meta = cell.metadata.nbgrader
        assert cell.cell_type == "markdown"  # nbgrader's "Manually graded answer"
        assert meta.grade and meta.solution and not meta.locked and meta.points == 2
        question = nb_cells[nb_cells.index(cell) - 1]
        assert question.cell_type == "markdown" and re.match(r"\*\*Q\d\. ", question.source), gid
        assert len(model_answer(cell).split()) > 30
    source = nbformat.read(ROOT / generate.INSTRUCTOR, as_version=4)
    assert written_points(source) == {gid: 2.0 for gid in QUESTIONS}
    assert not set(written_points(source)) & set(component_cells(source))


def test_students_get_empty_answer_cells_and_no_model_answer():
    student = written(cells(ROOT / generate.STUDENT))
    assert list(student) == list(QUESTIONS)
    assert all(cell.source.strip() == "YOUR ANSWER HERE" for cell in student.values())
    text = (ROOT / generate.STUDENT).read_text()
    for cell in written(cells()).values():
        for sentence in re.split(r"(?<=\.)\s", model_answer(cell)):
            if len(sentence) > 40:
                assert sentence.strip()[:40] not in text, sentence


def test_intro_states_the_score_split():
    intro = read_notebook(ROOT / generate.SRC).cells[0].source
    total = sum(c.metadata.nbgrader.points for c in written(cells()).values())
    assert f"**Grading.** {100 + total:g} points: 100 from the hidden checks" in intro
    assert f"{total:g} for the five written answers" in intro


def book_figures() -> dict:
    """The values the book glues for its worked answers, computed by the book's own code cells."""
    text = ABOUT.read_text()
    code = re.findall(r"```\{code-cell\} python3\n(.*?)```", text, re.S)
    wanted = [code[0], next(c for c in code if "ratio = {}" in c), next(c for c in code if "# Q1:" in c)]
    glued = {}
    namespace = {}
    for index, cell in enumerate(wanted):
        cell = re.sub(r"^:tags:.*\n", "", cell, flags=re.M)
        exec(compile(cell, f"ABOUT.md cell {index}", "exec"), namespace)
        namespace["put"] = glued.__setitem__  # after the set-up cell defined the real one
        namespace["glue"] = lambda key, value, display=False: glued.__setitem__(key, value)
    return glued


@pytest.mark.slow
def test_model_answers_quote_the_numbers_the_book_computes():
    """One computation (the book's cells); the notebook's model answers must agree with it."""
    figures = book_figures()
    answers = {n: model_answer(cell) for n, cell in enumerate(written(cells()).values(), start=1)}
    missing = [
        (key, value) for key, value in figures.items() if re.match(r"q\d_", key) and value not in answers[int(key[1])]
    ]
    assert len([k for k in figures if re.match(r"q\d_", k)]) >= 20
    assert missing == []


@pytest.mark.slow
def test_formgrader_lists_the_written_answers_for_manual_grading(small_course):
    """Through nbgrader's API, as the formgrader's Manual Grading view reads it."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=course_config(small_course["root"]))
    rows = {row["student"]: row for row in api.get_notebook_submissions(ASSIGNMENT, "optimizers")}
    graded = [s for s in small_course["students"] if s != "broken-corrupt-json"]
    for student in graded:
        assert rows[student]["needs_manual_grade"], student
        assert rows[student]["max_written_score"] == 10 and rows[student]["max_code_score"] == 100
    with Gradebook(api.coursedir.db_url) as gb:
        notebook = gb.find_submission_notebook("optimizers", ASSIGNMENT, WRITTEN_STUDENT)
        grades = {g.name: g for g in notebook.grades}
        for gid in QUESTIONS:
            assert grades[gid].needs_manual_grade and grades[gid].auto_score is None
            assert grades[gid].max_score == 2
        assert notebook.score == 100 and notebook.max_score == 110
    autograded = small_course["root"] / "autograded" / WRITTEN_STUDENT / ASSIGNMENT / "optimizers.ipynb"
    answers = written(cells(autograded))
    assert all(cell.source.startswith("My answer to") for cell in answers.values())
