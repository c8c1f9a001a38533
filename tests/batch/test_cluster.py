"""A lost Dask worker costs nothing: its notebooks go to another worker, up to a bound, then get a clear error."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import psutil
import pytest
from test_batch_resilience import SLOW_PROBE, TOKEN, submission

from autograder import sandbox
from autograder.batch import cluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def local_cluster(**config):
    """Two worker processes, each under a nanny that restarts it when it dies."""
    from distributed import LocalCluster

    with dask.config.set(config):
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")


def die_on_first_try(marker: str, value):
    """A task whose first run kills its worker (as the out-of-memory killer would); a later run answers."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def raise_on_first_try(marker: str, value):
    """A task whose first run fails (a worker's broken scratch disk, say); a later run answers."""
    if not os.path.exists(marker):
        Path(marker).write_text("")
        raise OSError("No space left on device")
    return value


def always_die():
    os.kill(os.getpid(), signal.SIGKILL)


def echo(value):
    return value


def test_a_killed_worker_s_task_runs_again_on_another_and_the_rest_is_kept(tmp_path):
    killed, raised = tmp_path / "killed", tmp_path / "raised"
    with local_cluster() as lc:
        calls = [[echo, 1], [die_on_first_try, str(killed), 2], [raise_on_first_try, str(raised), 3], [echo, 4]]
        out = cluster.run_on_dask(lc.scheduler_address, lambda fn, *args: fn(*args), calls, lambda args, why: why)
    assert out == [1, 2, 3, 4]
    assert killed.exists() and raised.exists()  # the first runs did die and raise


def test_a_notebook_that_kills_every_worker_gets_a_clear_error_after_the_bound():
    done = []
    with local_cluster(**{"distributed.scheduler.allowed-failures": 1}) as lc:
        calls = [[echo, "before"], [always_die], [echo, "after"]]
        out = cluster.run_on_dask(
            lc.scheduler_address, lambda fn, *args: fn(*args), calls, lambda args, why: why, lambda: done.append(1)
        )
    assert out[0] == "before" and out[2] == "after"
    assert out[1].startswith("grading worker died: every Dask worker that took this notebook died")
    assert "allowed-failures" in out[1]
    assert len(done) == 3


def kill_worker_grading_victim(worker_pids: set, found: dict, stop: threading.Event) -> None:
    """SIGKILL, once, the Dask worker whose sandboxed probe runs the victim's code."""
    while not stop.is_set():
        for proc in psutil.process_iter():
            try:
                argv = proc.cmdline()
                if (
                    "--chdir" not in argv
                    or TOKEN not in (Path(argv[argv.index("--chdir") + 1]) / "cells.json").read_text()
                ):
                    continue
                worker = next((p for p in proc.parents() if p.pid in worker_pids), None)
            except (psutil.Error, OSError, ValueError):
                continue
            if worker is not None:
                worker.send_signal(signal.SIGKILL)
                found["killed"] = worker.pid
                return
        time.sleep(0.2)


@pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")
def test_a_worker_killed_mid_notebook_costs_nothing(sample_class, tmp_path):
    from distributed import Client

    correct = sample_class[0] / "submitted/correct-reference/07_optimizers/optimizers.ipynb"
    victim = submission(tmp_path, "victim", SLOW_PROBE)
    with local_cluster() as lc:
        with Client(lc.scheduler_address) as client:
            worker_pids = set(client.run(os.getpid).values())
        found, stop = {}, threading.Event()
        killer = threading.Thread(target=kill_worker_grading_victim, args=(worker_pids, found, stop))
        killer.start()
        try:
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "autograder",
                    "grade",
                    str(correct),
                    str(victim),
                    "--json",
                    "--no-progress",
                    "--scheduler",
                    lc.scheduler_address,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=1800,
                env={**os.environ, "AUTOGRADER_SANDBOX": "required"},
            )
        finally:
            stop.set()
            killer.join()
        with Client(lc.scheduler_address) as client:
            after = set(client.run(os.getpid).values())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "killed" in found, "the victim's worker was never seen grading it"
    assert found["killed"] not in after and len(after) == 2  # its nanny started a fresh worker
    first, second = json.loads(run.stdout)
    assert first["error"] is None and first["score"] == 100
    assert second["error"] is None and second["tests"], second["error"]  # graded again, on a live worker


def make_run_folder():
    from autograder.sandbox import tempdirs

    return tempdirs.run_dir().name


def test_dask_workers_remove_their_run_folders_when_they_close(tmp_path, monkeypatch):
    """Unlike pool workers, Dask workers run atexit when they close, so their run folders go with them."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the workers' temp directory (they start after this)
    with local_cluster() as lc:
        made = cluster.run_on_dask(lc.scheduler_address, make_run_folder, [[], []], lambda args, why: why)
        assert all(name.startswith("autograder-run-") for name in made), made
        assert {p.name for p in tmp_path.glob("autograder-run-*")} >= set(made)
    assert list(tmp_path.glob("autograder-run-*")) == []
