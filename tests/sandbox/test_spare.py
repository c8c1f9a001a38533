"""The spare kernel a batch worker starts for its next notebook: it serves that notebook alone,
only with that notebook's settings, only while fresh, and nothing of it outlives the process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT
from jupyter_core.utils import run_sync
from nbformat.v4 import new_code_cell, new_notebook

from autograder.pipeline.execute import SandboxedExecute
from autograder.sandbox import spare
from autograder.sandbox.provisioner import SandboxProvisioner

pytestmark = pytest.mark.slow


def notebook(*sources: str):
    nb = new_notebook(cells=[new_code_cell(source) for source in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run(nb, folder, **settings):
    folder.mkdir(exist_ok=True)
    executed, _ = SandboxedExecute(timeout=40, **settings).preprocess(nb, {"metadata": {"path": str(folder)}})
    return [json.loads(o["text"]) for c in executed.cells for o in c.outputs if o.get("name") == "stdout"]


@pytest.fixture
def batch(monkeypatch):
    """This process grades as a batch worker does; the spare is gone afterwards, whatever happened."""
    taken = []
    take = spare.take
    monkeypatch.setattr(spare, "take", lambda key: taken.append(take(key)) or taken[-1])
    spare.keep_ready()
    yield taken
    spare.keep_ready(False)
    spare.discard_all()


def test_a_spare_serves_the_next_notebook_alone(tmp_path, batch):
    first = tmp_path / "first"
    first.mkdir()
    (first / "data.txt").write_text("the first student's file")
    run(notebook("SECRET = 41\nopen('left-behind.txt', 'w').write('x')\nprint(1)"), first)
    second = tmp_path / "second"
    second.mkdir()
    (second / "data.txt").write_text("the second student's file")
    [seen] = run(
        notebook(
            "import json, os\n"
            "print(json.dumps({'secret': globals().get('SECRET'), 'files': sorted(os.listdir('.')), "
            "'data': open('data.txt').read()}))"
        ),
        second,
    )
    assert batch[0] is None and batch[1] is not None  # the second notebook ran in the spare
    # Nothing of the first notebook's kernel or folder, and the second one's own submitted file.
    assert seen == {"secret": None, "files": ["data.txt"], "data": "the second student's file"}
    assert not batch[1].scratch.exists()  # its folder went with its notebook


def test_a_spare_started_with_other_settings_is_not_used(tmp_path, batch):
    address_space = "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])"
    run(notebook(address_space), tmp_path / "a", memory_bytes=1024**3)
    [limit] = run(notebook(address_space), tmp_path / "b", memory_bytes=1536 * 1024**2)
    assert batch[1] is None  # the spare had the first notebook's settings
    assert limit == 1536 * 1024**2


def test_a_stale_spare_is_not_used(tmp_path, batch, monkeypatch):
    """The kernel's wall-time lifetime runs from its launch: an old spare would shorten the notebook's."""
    monkeypatch.setattr(spare, "MAX_AGE", 0.0)
    run(notebook("print(1)"), tmp_path / "a")
    assert run(notebook("print(2)"), tmp_path / "b") == [2]
    assert batch == [None, None]


def test_a_taken_spare_starts_its_wall_time_again(tmp_path, batch, monkeypatch):
    """Its lifetime ran from its launch; a kernel started for the notebook would have a whole one."""
    renewed = []
    renew = SandboxProvisioner.renew_lifetime
    monkeypatch.setattr(SandboxProvisioner, "renew_lifetime", lambda self: renewed.append(self) or renew(self))
    run(notebook("print(1)"), tmp_path / "a")
    launches = len(renewed)
    run(notebook("print(2)"), tmp_path / "b")
    assert batch[1] is not None and batch[1].km.provisioner in renewed[launches:]


def test_a_spare_taken_by_a_notebook_that_then_fails_is_shut_down(tmp_path, batch, monkeypatch):
    run(notebook("print(1)"), tmp_path / "a")
    monkeypatch.setattr(SandboxedExecute, "_copy_submitted", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        run(notebook("print(2)"), tmp_path / "b")
    taken = batch[1]
    assert taken is not None and not run_sync(taken.km.is_alive)() and not taken.scratch.exists()


def test_a_spare_that_fails_to_start_leaves_no_sandbox(tmp_path, batch, monkeypatch):
    launch = SandboxProvisioner.post_launch

    async def fails_on_the_spare_thread(self, **kw):
        await launch(self, **kw)
        if threading.current_thread().name.startswith("spare-kernel"):
            raise RuntimeError("injected")

    monkeypatch.setattr(SandboxProvisioner, "post_launch", fails_on_the_spare_thread)
    run(notebook("print(1)"), tmp_path / "a")
    assert run(notebook("print(2)"), tmp_path / "b") == [2]  # a kernel of its own
    assert batch == [None, None] and bwrap_children() == []


def test_a_spare_nobody_takes_is_shut_down(tmp_path, batch, monkeypatch):
    monkeypatch.setattr(spare, "MAX_AGE", 4.0)
    run(notebook("print(1)"), tmp_path / "a")
    waiting = spare._next.result()
    time.sleep(6)
    assert spare._next is None and not run_sync(waiting.km.is_alive)() and not waiting.scratch.exists()
    assert bwrap_children() == []


def bwrap_children() -> list:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "bwrap"]


def test_no_spare_is_started_unless_a_batch_asks(tmp_path):
    spare.keep_ready(False)
    run(notebook("print(1)"), tmp_path / "a")
    assert spare._next is None


def test_a_leftover_spare_ends_with_its_process(tmp_path):
    """A batch's last spare is never taken: at exit its kernel and its folders are gone (shut down at a
    clean exit; bwrap dies with the thread that started it, and the process's run folder goes)."""
    script = textwrap.dedent(f"""
        import json
        from nbformat.v4 import new_code_cell, new_notebook
        from autograder.pipeline.execute import SandboxedExecute
        from autograder.sandbox import spare
        spare.keep_ready()
        nb = new_notebook(cells=[new_code_cell("print(1)")], metadata={{"kernelspec": {{"name": "python3", "display_name": "Python 3"}}}})
        SandboxedExecute(timeout=40).preprocess(nb, {{"metadata": {{"path": {str(tmp_path)!r}}}}})
        started = spare._next.result()
        print(json.dumps({{"scratch": str(started.scratch), "pid": started.km.provisioner.process.pid}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    left = json.loads(out.splitlines()[-1])
    assert not psutil.pid_exists(left["pid"]) or psutil.Process(left["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not Path(left["scratch"]).exists()
