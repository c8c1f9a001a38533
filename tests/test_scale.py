"""Grading beyond one process: a real PostgreSQL gradebook with concurrent workers, and a Dask cluster."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import free_port

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None) if Path("/usr/lib/postgresql").exists() else None
pytestmark = pytest.mark.slow
SUBSET = ("correct-reference", "bug-nesterov", "bug-eps-inside-sqrt", "bug-coupled-decay", "hostile-os-exit-adamw",
          "hostile-raised-points")




@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    course = tmp_path_factory.mktemp("sample")
    subprocess.run([sys.executable, "-m", "tools.sample_class", str(course)], cwd=ROOT, check=True,
                   capture_output=True)
    return course, json.loads((course / "expected.json").read_text())


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL server from Debian's package, on loopback only."""
    if PG_BIN is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    # Outside pytest's 0700 temp root: the server runs as the postgres user, who must reach it.
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    # runuser lives in /usr/sbin, which a plain user's PATH may lack even when run as root.
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")
    as_user = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "grader"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                    f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_sample_class_into_postgresql_with_two_workers(sample, postgres, tmp_path):
    from nbgrader.api import Gradebook

    source, expected = sample
    course = tmp_path / "course"
    (course / "source/07_optimizers").mkdir(parents=True)
    shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", course / "source/07_optimizers/")
    shutil.copytree(source / "submitted", course / "submitted")
    env = {**os.environ, "AUTOGRADER_DB_URL": postgres, "AUTOGRADER_COURSE_ROOT": str(course),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "AUTOGRADER_SANDBOX": "required"}
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "07_optimizers", "--force"],
                   cwd=course, env={**env, "JUPYTER_CONFIG_PATH": str(ROOT / "autograder")}, check=True,
                   capture_output=True)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "autograder", "course-autograde", "--course", str(course),
                          "--jobs", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-2000:]
    print(f"postgres, 2 workers: {time.perf_counter() - start:.1f} s for {len(expected)} submissions")
    names = {n for n in expected if not expected[n]["error"]}
    with Gradebook(postgres) as gb:
        for name in sorted(names):
            notebook = gb.find_submission_notebook("optimizers", "07_optimizers", name)
            scores = {g.name: g.score for g in notebook.grades}
            want = expected[name]["components"]
            got = {"Optimizer": scores["test_optimizer"], "SGD": scores["test_sgd"],
                   "Adam": scores["test_adam"], "AdamW": scores["test_adamw"]}
            assert got == {c: want[c]["score"] for c in got}, name
    broken = [n for n in expected if expected[n]["error"]]
    assert all(f"not graded: {n}" in run.stderr for n in broken)


def grade(paths, *extra):
    out = subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json", "--no-progress",
                          *extra], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "AUTOGRADER_SANDBOX": "required"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_dask_cluster_gives_the_same_results_as_local_processes(sample):
    from distributed import LocalCluster

    course, _ = sample
    paths = [course / "submitted" / name / "07_optimizers/optimizers.ipynb" for name in SUBSET]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        on_dask = grade(paths, "--scheduler", cluster.scheduler_address)
    local = grade(paths, "--jobs", "2")
    assert on_dask == local
    assert [e["score"] for e in local][0] == 100
