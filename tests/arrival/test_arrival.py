"""Trust at arrival: what reaches submitted/, under which student id (issue 14, findings 1, 2, 4, 7).

The nbgrader commands run for real (``nbgrader collect``, ``zip_collect``, ``autograde``) with
this course's config; no notebook is graded except the v3 one, so the file stays fast.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, ROOT, course_env

from autograder.arrival import archives
from autograder.arrival.files import Budget, Refused, copy_regular_tree, student_id_problem
from autograder.arrival.notebook import NotANotebook, instructor_content, read_submission
from autograder.pages import report
from tools import corpus, sample_class

SOURCE = ROOT / "source" / ASSIGNMENT / "optimizers.ipynb"
RELEASED = ROOT / "modules" / ASSIGNMENT / "optimizers.ipynb"
SOLUTION = ROOT / "content" / "m07_optimizers" / "solution" / "optimizers.py"
COURSE_ID = "tinytorch-07"
NBGRADER = [sys.executable, "-m", "nbgrader"]
LMS_PATTERN = r".+/(?P<student_id>[^_/]+)_attempt_(?P<timestamp>[0-9-]+)_(?P<file_id>optimizers\.ipynb)$"
MIB = 1 << 20


def correct_notebook():
    source = nbformat.read(SOURCE, as_version=4)
    return sample_class.fill(nbformat.read(RELEASED, as_version=4), source, {})


def nbgrader(args, course: Path, **env) -> str:
    result = subprocess.run(
        [*NBGRADER, *args], cwd=course, env={**course_env(course), **env}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def new_course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    for rel in (SOURCE, RELEASED):
        dest = course / rel.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rel, dest)
    return course


def listing(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------- the one student-id rule


@pytest.mark.parametrize("good", ["alice", "a", "bob.smith", "jo-ann_2", "x@example.org", "7" * 64])
def test_plain_student_ids_are_accepted(good):
    assert student_id_problem(good) is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "..",
        ".hidden",
        "a/b",
        "a b",
        "mallory,,,,100,0,100,100",
        "=cmd|x",
        "line\nbreak",
        "é",
        "7" * 65,
        None,
        7,
    ],
)
def test_other_student_ids_are_refused_with_the_rule(bad):
    problem = student_id_problem(bad)
    assert problem and "not a plain token" in problem and "64 characters" in problem


# ---------------------------------------------------------------- regular files only


def planted(tmp_path: Path, kind: str) -> Path:
    """A submission folder holding one regular file and one hostile entry of ``kind``."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "optimizers.ipynb").write_text("{}")
    if kind == "symlink":
        os.symlink(SOLUTION, folder / "optimizers.py")
    elif kind == "dir-symlink":
        os.symlink(ROOT / "autograder", folder / "grader")
    elif kind == "hardlink":
        secret = tmp_path / "secret.py"
        secret.write_text("instructor only")
        os.link(secret, folder / "optimizers.py")
    elif kind == "fifo":
        os.mkfifo(folder / "pipe.ipynb")
    return folder


@pytest.mark.parametrize("kind", ["symlink", "dir-symlink", "hardlink", "fifo"])
def test_copy_refuses_links_and_special_files(tmp_path, kind):
    folder = planted(tmp_path, kind)
    with pytest.raises(Refused, match="link|FIFO"):
        copy_regular_tree(str(folder), str(tmp_path / "out"), Budget(MIB, 10))
    assert "instructor only" not in "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())


def test_copy_keeps_regular_files_and_refuses_a_linked_root(tmp_path):
    folder = planted(tmp_path, "none")
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("mine")
    copy_regular_tree(str(folder), str(tmp_path / "out"), Budget(MIB, 10))
    assert listing(tmp_path / "out") == ["optimizers.ipynb", "sub", "sub/notes.txt"]
    os.symlink(folder, tmp_path / "link")
    with pytest.raises(Refused, match="link or not a folder"):
        copy_regular_tree(str(tmp_path / "link"), str(tmp_path / "out2"), Budget(MIB, 10))


def test_read_submission_refuses_a_linked_notebook(tmp_path):
    os.symlink(SOURCE, tmp_path / "optimizers.ipynb")
    with pytest.raises(NotANotebook, match="link"):
        read_submission(tmp_path / "optimizers.ipynb")


# ---------------------------------------------------------------- instructor text


def test_the_instructor_notebook_is_recognised_and_no_sample_submission_is():
    source = nbformat.read(SOURCE, as_version=4)
    assert "instructor's solution or hidden tests" in instructor_content(source, source)
    stripped = nbformat.read(SOURCE, as_version=4)  # markers gone, the hidden-test lines still there
    for cell in stripped.cells:
        cell.source = (
            cell.source.replace("### BEGIN HIDDEN TESTS", "")
            .replace("### END HIDDEN TESTS", "")
            .replace("### BEGIN SOLUTION", "")
            .replace("### END SOLUTION", "")
        )
    assert "assert_component" in instructor_content(stripped, source)
    # A false refusal is as bad as a false pass: the release and every sample case (the reference
    # code verbatim included) are no instructor text.
    released = nbformat.read(RELEASED, as_version=4)
    assert instructor_content(released, source) is None
    for name, edits, *_ in sample_class.cases():
        assert instructor_content(sample_class.fill(released, source, edits), source) is None, name
    for entry in corpus.entries():
        assert instructor_content(corpus.notebook(entry, released, source), source) is None, entry.name


# ---------------------------------------------------------------- v3 notebooks


def test_a_v3_notebook_is_read_as_v4(tmp_path):
    nbformat.write(nbformat.convert(correct_notebook(), 3), tmp_path / "v3.ipynb", version=3)
    assert json.loads((tmp_path / "v3.ipynb").read_text())["nbformat"] == 3
    nb = read_submission(tmp_path / "v3.ipynb")
    assert nb.nbformat == 4 and len(nb.cells) == len(correct_notebook().cells)


@pytest.mark.slow
def test_a_v3_correct_notebook_grades_full_marks(tmp_path):
    nbformat.write(nbformat.convert(correct_notebook(), 3), tmp_path / "v3.ipynb", version=3)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(tmp_path / "v3.ipynb"), "--json"],
        cwd=ROOT,
        env={**os.environ, "AUTOGRADER_SANDBOX": "required"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.loads(result.stdout)[0]
    assert entry["error"] is None and entry["score"] == entry["max_score"] == 100, entry


# ---------------------------------------------------------------- archives


def zip_bytes(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def nested_bomb(levels: int, inner_bytes: int = 40 * MIB, fan: int = 4) -> bytes:
    """A zip of ``fan`` zips of ... (``levels`` deep) of ``inner_bytes`` zeros: small, and it multiplies."""
    data, name = zip_bytes({"zeros.ipynb": b"\0" * inner_bytes}), "layer.zip"
    for level in range(levels - 1):
        data = zip_bytes({f"{level}-{n}-{name}": data for n in range(fan)})
    return data


def unpack(tmp_path: Path, name: str, data: bytes, **caps) -> tuple:
    """(refusals, bytes on disk) after extract_capped of an archive named ``name`` holding ``data``."""
    (tmp_path / name).write_bytes(data)
    refused = []
    try:
        archives.extract_capped(
            str(tmp_path / name), str(tmp_path / "out"), [".zip", ".gz"], archives.Caps(**caps), refused=refused.append
        )
    except Refused as err:
        refused.append(str(err))
    size = (
        sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
        if (tmp_path / "out").exists()
        else 0
    )
    return refused, size


def test_a_nested_bomb_is_refused_before_it_fills_the_disk(tmp_path):
    bomb = nested_bomb(3)
    assert len(bomb) < 64 * 1024  # 16 x 40 MiB of zeros
    refused, size = unpack(tmp_path, "lms.zip", bomb)
    assert refused and all("layer.zip: " in why and " cap" in why for why in refused), refused
    assert size < 16 * MIB


@pytest.mark.parametrize(
    "caps, members, cap",
    [
        ({"depth": 2}, {"a.zip": zip_bytes({"b.zip": zip_bytes({"c.ipynb": b"{}"})})}, "nested more than 2 deep"),
        ({"members": 5}, {f"f{n}.ipynb": b"{}" for n in range(6)}, "member cap"),
        ({"total_bytes": MIB}, {"big.ipynb": os.urandom(2 * MIB)}, "size cap"),
        ({"ratio": 10, "ratio_floor": 0}, {"zeros.ipynb": b"\0" * MIB}, "compression-ratio cap"),
    ],
)
def test_each_cap_is_named_when_it_is_hit(tmp_path, caps, members, cap):
    refused, _ = unpack(tmp_path, "lms.zip", zip_bytes(members), **caps)
    assert any(cap in why for why in refused), refused


def test_a_tar_gz_bomb_is_stopped_while_inflating(tmp_path):
    """A tar declares nothing up front (no central directory): only counting while writing stops it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo("zeros.ipynb")
        member.size = 64 * MIB
        archive.addfile(member, io.BytesIO(b"\0" * member.size))
    assert len(buffer.getvalue()) < 128 * 1024
    refused, size = unpack(tmp_path, "sub.tar.gz", buffer.getvalue())
    assert any("compression-ratio cap" in why for why in refused), refused
    assert size == 0 and not (tmp_path / "out").exists()  # what it wrote before the cap is gone too


def test_a_tar_long_name_bomb_is_capped_before_tarfile_holds_it(tmp_path):
    """tarfile reads a GNU long name (or a pax header) whole into memory: the cap counts those bytes too."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo("n" * (64 * MIB)))
    assert len(buffer.getvalue()) < 256 * 1024
    refused, _ = unpack(tmp_path, "names.tar.gz", buffer.getvalue())
    assert any("compression-ratio cap" in why for why in refused), refused


@pytest.mark.parametrize("name", ["../escaped.ipynb", "/tmp/absolute.ipynb", "a/../../escaped.ipynb", "./x/../.."])
def test_zip_members_never_land_outside_their_folder(tmp_path, name):
    refused, _ = unpack(tmp_path, "slip.zip", zip_bytes({name: b"{}"}))
    assert any("outside its folder" in why for why in refused)
    assert not (tmp_path / "escaped.ipynb").exists() and not Path("/tmp/absolute.ipynb").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_links_and_devices_in_a_tar_are_refused(tmp_path, kind):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo("optimizers.ipynb")
        member.type, member.linkname = kind, str(SOLUTION)
        archive.addfile(member)
    refused, _ = unpack(tmp_path, "sub.tar.gz", buffer.getvalue())
    assert any("link or device" in why for why in refused)
    assert not (tmp_path / "out").exists()


def test_a_symlink_member_of_a_zip_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("optimizers.ipynb")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, str(SOURCE))
    refused, _ = unpack(tmp_path, "link.zip", buffer.getvalue())
    assert any("link or device" in why for why in refused)


# ---------------------------------------------------------------- the real nbgrader commands


def inbound(course: Path, name: str) -> Path:
    folder = course / "exchange" / COURSE_ID / "inbound" / f"{name}+{ASSIGNMENT}+2026-11-20 10:00:00.000000 UTC+x"
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    return folder


def test_collect_refuses_links_and_bad_ids_and_keeps_the_honest_submission(tmp_path):
    course = new_course(tmp_path)
    nbformat.write(correct_notebook(), inbound(course, "alice") / "optimizers.ipynb")
    mallory = inbound(course, "mallory")  # finding 1: the instructor's files by link
    os.symlink(SOURCE, mallory / "optimizers.ipynb")
    os.symlink(SOLUTION, mallory / "optimizers.py")
    os.symlink(SOURCE.parent, inbound(course, "trudy") / "sub")  # a linked folder
    os.symlink(mallory, inbound(course, "eve").parent / f"eve+{ASSIGNMENT}+2026-11-20 11:00:00.000000 UTC+y")
    shutil.rmtree(course / "exchange" / COURSE_ID / "inbound" / f"eve+{ASSIGNMENT}+2026-11-20 10:00:00.000000 UTC+x")
    for bad in ("mallory,,,,100,0,100,100", "..", ".hidden"):  # finding 2: ids from folder names
        nbformat.write(correct_notebook(), inbound(course, bad) / "optimizers.ipynb")
    log = nbgrader(["collect", ASSIGNMENT], course, NBGRADER_EXCHANGE_ROOT=str(course / "exchange"))
    assert listing(course / "submitted") == [
        "alice",
        f"alice/{ASSIGNMENT}",
        f"alice/{ASSIGNMENT}/optimizers.ipynb",
        f"alice/{ASSIGNMENT}/timestamp.txt",
    ]
    assert not (course / ASSIGNMENT).exists()  # '..' did not climb out of submitted/
    refusals = [line for line in log.splitlines() if "Refused inbound submission" in line]
    # nbgrader's glob never lists the dot-names; each of the others is named with its reason
    for name, why in (
        ("mallory+", "symbolic link"),
        ("trudy+", "symbolic link"),
        ("eve+", "link or not a folder"),
        ("mallory,,,,100,0,100,100+", "not a plain token"),
    ):
        assert any(f"'{name}" in line and why in line for line in refusals), (name, refusals)
    assert len(refusals) == 4, refusals


def lms_zip(course: Path, members: dict) -> None:
    downloads = course / "downloaded" / ASSIGNMENT / "archive"
    downloads.mkdir(parents=True)
    (downloads / "submissions.zip").write_bytes(zip_bytes(members))


def test_zip_collect_caps_a_nested_bomb_and_refuses_bad_ids(tmp_path):
    course = new_course(tmp_path)
    good = nbformat.writes(correct_notebook()).encode()
    lms_zip(
        course,
        {
            "alice_attempt_2026-11-20_optimizers.ipynb": good,
            "mallory_attempt_2026-11-20_bomb.zip": nested_bomb(3),
            "mallory,,,,100_attempt_2026-11-20_optimizers.ipynb": good,
            "x/.._attempt_2026-11-20_optimizers.ipynb": good,
        },
    )
    log = nbgrader(["zip_collect", ASSIGNMENT, f"--FileNameCollectorPlugin.named_regexp={LMS_PATTERN}"], course)
    assert listing(course / "submitted") == [
        "alice",
        f"alice/{ASSIGNMENT}",
        f"alice/{ASSIGNMENT}/optimizers.ipynb",
        f"alice/{ASSIGNMENT}/timestamp.txt",
    ]
    assert not (course / ASSIGNMENT).exists()
    extracted = course / "downloaded" / ASSIGNMENT / "extracted"
    assert sum(p.stat().st_size for p in extracted.rglob("*") if p.is_file()) < 16 * MIB
    assert "mallory_attempt_2026-11-20_bomb.zip" in log and "cap" in log
    assert "mallory,,,,100" in log and "not a plain token" in log and "'..' is not a plain token" in log


def refused_course(tmp_path: Path) -> Path:
    """A course whose submitted/ holds only what arrived some other way and must be refused."""
    course = new_course(tmp_path)
    for student in ("mallory", "eve", "mallory,,,,100", "trudy"):
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    os.symlink(SOURCE, course / "submitted" / "mallory" / ASSIGNMENT / "optimizers.ipynb")
    shutil.copyfile(SOURCE, course / "submitted" / "eve" / ASSIGNMENT / "optimizers.ipynb")
    nbformat.write(correct_notebook(), course / "submitted" / "mallory,,,,100" / ASSIGNMENT / "optimizers.ipynb")
    nbformat.write(correct_notebook(), course / "submitted" / "trudy" / ASSIGNMENT / "optimizers.ipynb")
    os.symlink(SOLUTION, course / "submitted" / "trudy" / ASSIGNMENT / "optimizers.py")
    return course


def test_course_autograde_and_the_report_refuse_before_anything_runs(tmp_path, monkeypatch):
    course = refused_course(tmp_path)
    monkeypatch.setenv("PATH", course_env(course)["PATH"])  # the gradebook runs alembic
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", str(course)],
        cwd=ROOT,
        env=course_env(course),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "graded 0 of 4 submissions" in result.stdout and "refused 4" in result.stdout
    for student, why in (
        ("mallory", "link"),
        ("eve", "instructor's solution or hidden tests"),
        ("mallory,,,,100", "not a plain token"),
        ("trudy", "optimizers.py is a symbolic link"),
    ):
        line = next(line for line in result.stderr.splitlines() if line.startswith(f"not graded: {student!r}"))
        assert why in line, line
    assert not (course / "autograded").exists()
    students = {s.name: s for s in report.collect(course, f"sqlite:///{course / 'gradebook.db'}", "07_optimizers")}
    assert set(students) == {"mallory", "eve", "mallory,,,,100", "trudy"}
    assert all(s.error.startswith("refused at arrival:") and not s.tests for s in students.values())
    summary = report.summarise(list(students.values()))
    assert len(summary["errors"]) == 4 and not summary["graded"]


@pytest.mark.slow
def test_plain_nbgrader_autograde_refuses_before_the_kernel(tmp_path):
    course = refused_course(tmp_path)
    nbgrader(["generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"], course)
    for student in ("mallory", "eve", "trudy"):
        result = subprocess.run(
            [*NBGRADER, "autograde", ASSIGNMENT, "--student", student, "--force"],
            cwd=course,
            env=course_env(course),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "submission refused" in result.stderr, result.stderr[-3000:]
        assert not (course / "autograded" / student / ASSIGNMENT).exists()  # nbgrader removed its copy
    assert not [p for p in (course / "autograded").rglob("*") if p.is_file()]


# ---------------------------------------------------------------- size of the cells' text


def test_a_notebook_with_megabytes_of_cell_text_is_refused_before_grading_or_rendering(tmp_path):
    """Rendering is linear in a cell's size, but megabytes of it still hold a page for minutes."""
    from autograder.arrival.collectors import RefuseForeignSubmission
    from autograder.arrival.notebook import MAX_SOURCE_CHARS

    nb = correct_notebook()
    room = MAX_SOURCE_CHARS - sum(len(cell.source) for cell in nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(" \n" * (room // 2)))  # right at the cap: graded
    nbformat.write(nb, tmp_path / "fits.ipynb")
    assert len(read_submission(tmp_path / "fits.ipynb").cells) == len(nb.cells)
    nb.cells[-1].source += "x = 1\n" * 10
    nbformat.write(nb, tmp_path / "big.ipynb")
    with pytest.raises(NotANotebook, match="characters of text, over the"):
        read_submission(tmp_path / "big.ipynb")
    folder = tmp_path / "submitted" / "oscar" / ASSIGNMENT  # the plain nbgrader autograde path
    folder.mkdir(parents=True)
    resources = {
        "nbgrader": {"student": "oscar", "assignment": ASSIGNMENT, "notebook": "optimizers"},
        "metadata": {"path": str(folder)},
    }
    with pytest.raises(ValueError, match="characters of text, over the"):
        RefuseForeignSubmission().preprocess(nb, resources)


# ---------------------------------------------------------------- files beside the notebook


@pytest.mark.slow
def test_a_helper_file_submitted_beside_the_notebook_is_graded_as_the_kernel_ran_it(tmp_path):
    """nbgrader autograde gives the kernel the submission's files; the hidden checks' probes get them too."""
    course = new_course(tmp_path)
    folder = course / "submitted" / "alice" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / "adam_math.py").write_text(corpus.ADAM_MATH)
    nb = correct_notebook()
    adam = next(cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == "adam")
    assert "1 - self.beta1 ** self.step_count" in adam.source, "the reference's bias correction moved"
    adam.source = "from adam_math import bias_correction\n" + adam.source.replace(
        "1 - self.beta1 ** self.step_count", "bias_correction(self.beta1, self.step_count)"
    ).replace("1 - self.beta2 ** self.step_count", "bias_correction(self.beta2, self.step_count)")
    nbformat.write(nb, folder / "optimizers.ipynb")
    nbgrader(["generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"], course)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", str(course)],
        cwd=ROOT,
        env=course_env(course),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and "graded 1 of 1" in result.stdout, result.stderr[-3000:]
    graded = nbformat.read(course / "autograded" / "alice" / ASSIGNMENT / "optimizers.ipynb", as_version=4)
    components = graded.metadata["autograder"]["components"]
    assert {c: v["score"] for c, v in components.items()} == {c: v["max_score"] for c, v in components.items()}, (
        graded.metadata["autograder"]["tests"]
    )


def test_messages_never_carry_a_file_names_control_characters(tmp_path):
    """A name with terminal escapes (clear screen, retitle, a forged summary) is shown escaped (red team)."""
    from autograder.arrival.files import tree_problem
    from autograder.arrival.notebook import arrival_problem

    hostile = "\x1b[2J\x1b[3J\x1b[H\x1b]0;x\x1b\\graded 41 of 41\x1b[8m\u202e"
    folder = tmp_path / "eve"
    (folder / ASSIGNMENT).mkdir(parents=True)
    os.mkfifo(folder / ASSIGNMENT / f"{hostile}.ipynb")
    messages = [tree_problem(str(folder))]
    with pytest.raises(Refused) as refused:
        copy_regular_tree(str(folder), str(tmp_path / "copy"), Budget(MIB, 10))
    messages.append(str(refused.value))
    (folder / ASSIGNMENT / f"{hostile}.ipynb").unlink()
    source = nbformat.read(SOURCE, as_version=4)
    carrying = nbformat.v4.new_notebook(cells=[c for c in source.cells])  # the instructor's own text
    nbformat.write(carrying, folder / ASSIGNMENT / f"{hostile}.ipynb")
    messages.append(arrival_problem(folder, ASSIGNMENT, source))
    for message in messages:
        assert message and "\\x1b[2J" in message, message
        assert all(ch.isprintable() for ch in message), repr(message)
