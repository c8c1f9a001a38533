"""The course as the batch sees it: which assignment, and a course set up once, not once per batch."""

import shutil
from pathlib import Path

import pytest

from autograder import course
from autograder.batch import template

ROOT = Path(__file__).resolve().parents[2]


def test_the_assignment_is_the_course_s_only_one(tmp_path):
    (tmp_path / "source/hw3").mkdir(parents=True)
    (tmp_path / "source/hw3/lists.ipynb").write_text("{}")
    work = course.assignment(tmp_path)
    assert (work.name, work.notebook, work.source) == ("hw3", "lists", tmp_path / "source/hw3/lists.ipynb")


def test_an_ambiguous_course_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(course.CourseError, match="expected exactly one assignment folder.*found: none"):
        course.assignment(tmp_path)
    for name in ("hw1", "hw2"):
        (tmp_path / "source" / name).mkdir(parents=True)
    with pytest.raises(course.CourseError, match="found: hw1, hw2.*name the assignment on the command line"):
        course.assignment(tmp_path)
    with pytest.raises(course.CourseError, match="exactly one notebook in .*hw1"):
        course.assignment(tmp_path, "hw1")


@pytest.mark.slow
def test_a_course_is_set_up_once_then_copied(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "repo"
    shutil.copytree(ROOT / "source", src / "source")
    work = course.assignment(src)
    first = template.make_template(tmp_path / "a", work)
    assert (first / "gradebook.db").is_file()

    def no_second_set_up(*args):
        raise AssertionError("set up again")

    monkeypatch.setattr(template, "_build_template", no_second_set_up)
    second = template.make_template(tmp_path / "b", work)
    assert sorted(p.relative_to(second) for p in second.rglob("*")) == sorted(
        p.relative_to(first) for p in first.rglob("*")
    )
    assert (second / "gradebook.db").read_bytes() == (first / "gradebook.db").read_bytes()
    assert [p.name for p in (tmp_path / "cache/templates").iterdir()] == [template.template_key(work)]

    work.source.write_text(work.source.read_text().replace("Adam", "Adam ", 1))  # the instructor edits it
    with pytest.raises(AssertionError, match="set up again"):
        template.make_template(tmp_path / "c", work)
