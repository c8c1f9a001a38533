"""tests/sharing.py: what the pytest-xdist workers of a session build once, and the lock of tests that run alone."""

import fcntl
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest
from sharing import built_once, machine, restore, used_alone


def _build_in_a_process(root: str, start, results) -> None:
    """A worker: waits for the start signal, then asks for the shared folder; reports what it got."""

    def build(folder: Path) -> None:
        with open(Path(root) / "builds.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(1)  # a slow build: the other processes ask while it runs
        (folder / "made-by").write_text(str(os.getpid()))

    start.wait()
    results.put(str(built_once(Path(root), "shared", build)))


def test_a_folder_asked_for_by_several_processes_at_once_is_built_once(tmp_path):
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as xdist workers are
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_build_in_a_process, args=(str(tmp_path), start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    folders = {results.get(timeout=120) for _ in workers}
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert folders == {str(tmp_path / "shared")}
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    assert (tmp_path / "shared" / "made-by").read_text() == (tmp_path / "builds.log").read_text().strip()


def test_a_failed_build_is_not_shared_and_the_next_one_starts_clean(tmp_path):
    def failing(folder: Path) -> None:
        (folder / "half-written").write_text("x")
        raise RuntimeError("the build failed")

    with pytest.raises(RuntimeError, match="the build failed"):
        built_once(tmp_path, "shared", failing)
    seen = []
    folder = built_once(tmp_path, "shared", lambda f: seen.append(sorted(p.name for p in f.iterdir())))
    assert seen == [[]]  # rebuilt, from an empty folder
    assert built_once(tmp_path, "shared", lambda f: seen.append("again")) == folder and seen == [[]]


def _try(path: Path, kind: int) -> bool:
    """Whether a new holder could take the lock at ``path`` right now (without waiting)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_tests_share_the_machine_and_an_alone_test_has_it_to_itself(tmp_path):
    lock = tmp_path / "machine"
    with machine(alone=False, path=lock):
        assert _try(lock, fcntl.LOCK_SH)  # the other worker's tests run meanwhile
        assert not _try(lock, fcntl.LOCK_EX)  # an alone test waits for them
    with machine(alone=True, path=lock):
        assert not _try(lock, fcntl.LOCK_SH)  # no other test starts while it runs
    assert _try(lock, fcntl.LOCK_EX)  # and it is released after


def test_an_alone_test_waiting_holds_the_gate_so_new_tests_wait_behind_it(tmp_path):
    lock = tmp_path / "machine"
    with machine(alone=False, path=lock):
        context = multiprocessing.get_context("spawn")
        waiting = context.Process(target=_hold_alone, args=(str(lock),))
        waiting.start()
        gate = lock.with_suffix(".gate")
        deadline = time.monotonic() + 120  # a hang guard, not a speed check
        while not gate.exists() or _try(gate, fcntl.LOCK_EX):  # until the alone test holds the gate
            assert waiting.is_alive() and time.monotonic() < deadline, "the alone test never held the gate"
            time.sleep(0.05)
        assert not _try(gate, fcntl.LOCK_EX)  # a new shared holder would queue behind it
    waiting.join(timeout=120)  # it gets the machine once this test lets go
    assert waiting.exitcode == 0


def _hold_alone(path: str) -> None:
    with machine(alone=True, path=Path(path)):
        pass


def test_restore_makes_the_folder_what_the_copy_holds(tmp_path):
    folder = tmp_path / "dist"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "module.py").write_text("placeholder")
    (folder / "link").symlink_to("pkg/module.py")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=True)
    (folder / "pkg" / "module.py").write_text("a student's export")
    (folder / "pkg" / "new.py").write_text("written by a test")
    (folder / "link").unlink()
    restore(copy, folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["link", "pkg", "pkg/module.py"]
    assert (folder / "pkg" / "module.py").read_text() == "placeholder"
    assert (folder / "link").is_symlink() and os.readlink(folder / "link") == "pkg/module.py"


def _use_alone(copy: str, folder: str, seen) -> None:
    """A test using the shared folder: what it found on entry, then a file of its own left behind."""
    with used_alone(Path(copy), Path(folder)) as shared:
        on_entry = sorted(p.name for p in shared.iterdir())
        (shared / "written-by-a-test").write_text(str(os.getpid()))
        time.sleep(1)  # a slow test: the others ask for the folder while it runs
        seen.put((on_entry, sorted(p.name for p in shared.iterdir()), (shared / "written-by-a-test").read_text()))


def test_a_folder_used_alone_is_one_tests_at_a_time_and_as_the_copy_holds_on_entry(tmp_path):
    copy, folder = tmp_path / "copy", tmp_path / "dist"
    copy.mkdir()
    (copy / "pristine").write_text("as postBuild left it")
    shutil.copytree(copy, folder)
    context = multiprocessing.get_context("spawn")
    seen = context.Queue()
    users = [context.Process(target=_use_alone, args=(str(copy), str(folder), seen)) for _ in range(3)]
    for user in users:
        user.start()
    uses = [seen.get(timeout=120) for _ in users]
    for user in users:
        user.join(timeout=120)
        assert user.exitcode == 0
    assert [(entry, left) for entry, left, _ in uses] == [(["pristine"], ["pristine", "written-by-a-test"])] * 3
    assert sorted(int(writer) for _, _, writer in uses) == sorted(user.pid for user in users)  # nobody else's
