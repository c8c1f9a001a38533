"""Grading beyond one process: a real PostgreSQL gradebook with concurrent workers, and a Dask cluster."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.postgres import PG_BIN, throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
SUBSET = (
    "correct-reference",
    "bug-nesterov",
    "bug-eps-inside-sqrt",
    "bug-coupled-decay",
    "hostile-os-exit-adamw",
    "hostile-raised-points",
)


@pytest.fixture(scope="module")
def sample(sample_class):
    return sample_class  # tests/conftest.py: written once per session


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server from Debian's package, on loopback only."""
    if PG_BIN is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    with throwaway_postgres() as url:
        yield url


def test_sample_class_into_postgresql_with_two_workers(sample, postgres, tmp_path):
    from nbgrader.api import Gradebook

    source, expected = sample
    course = tmp_path / "course"
    (course / "source/07_optimizers").mkdir(parents=True)
    shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", course / "source/07_optimizers/")
    shutil.copytree(source / "submitted", course / "submitted")
    env = {
        **os.environ,
        "AUTOGRADER_DB_URL": postgres,
        "AUTOGRADER_COURSE_ROOT": str(course),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "AUTOGRADER_SANDBOX": "required",
    }
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "07_optimizers", "--force"],
        cwd=course,
        env={**env, "JUPYTER_CONFIG_PATH": str(ROOT / "autograder")},
        check=True,
        capture_output=True,
    )
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "course-autograde", "--course", str(course), "--jobs", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    print(f"postgres, 2 workers: {time.perf_counter() - start:.1f} s for {len(expected)} submissions")
    names = {n for n in expected if not expected[n]["error"]}
    with Gradebook(postgres) as gb:
        for name in sorted(names):
            notebook = gb.find_submission_notebook("optimizers", "07_optimizers", name)
            scores = {g.name: g.score for g in notebook.grades}
            want = expected[name]["components"]
            got = {
                "Optimizer": scores["test_optimizer"],
                "SGD": scores["test_sgd"],
                "Adam": scores["test_adam"],
                "AdamW": scores["test_adamw"],
            }
            assert got == {c: want[c]["score"] for c in got}, name
    broken = [n for n in expected if expected[n]["error"]]
    assert all(f"not graded: {n}" in run.stderr for n in broken)


def grade(paths, *extra):
    out = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json", "--no-progress", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "AUTOGRADER_SANDBOX": "required"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_dask_cluster_gives_the_same_results_as_local_processes(sample, graded_class):
    from distributed import LocalCluster

    course, _ = sample
    paths = [course / "submitted" / name / "07_optimizers/optimizers.ipynb" for name in SUBSET]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        on_dask = grade(paths, "--scheduler", cluster.scheduler_address)
    # Local processes (`grade --jobs 2`) graded these very files in the session's shared run (conftest.py).
    local = [next(e for e in graded_class["entries"] if e["submission"] == str(p)) for p in paths]
    assert on_dask == local
    assert [e["score"] for e in local][0] == 100
