"""One memory budget per sandbox: its whole process tree, not each process, stays within it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from nbclient.exceptions import DeadKernelError

from autograder import sandbox
from autograder.judge.hidden import PROBE_LIMITS
from autograder.sandbox import Limits, memcap, tempdirs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sandbox import alive, execute, py  # noqa: E402

pytestmark = pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")
needs_cgroup = pytest.mark.skipif(
    memcap.detect().kind == memcap.ONE_PROCESS, reason="no cgroup memory controller usable here (not root?)"
)

# Three children, each well under RLIMIT_AS (2 GiB) but together 3.6 GiB of real pages.
THREE_CHILDREN = """
    import os, sys, time
    kids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(1200 * 1024**2)
            for j in range(0, len(block), 4096):
                block[j] = 1  # touch every page: real memory, not a reservation
            print("child", i, "holds 1.2 GiB", flush=True)
            time.sleep(3)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    print("all three done", flush=True)
"""


def own_groups() -> list[Path]:
    """This process's sandbox memory groups, in every hierarchy the backend uses."""
    backend = memcap.detect()
    parents = [p for p in (backend.memory_parent, backend.pids_parent) if p is not None]
    return [g for p in parents for g in p.glob(f"{memcap.PREFIX}{os.getpid()}-*")]


@pytest.fixture
def one_process(monkeypatch):
    """Force the fallback, as on a machine without a usable cgroup."""
    monkeypatch.setenv(memcap.FORCE_ENV, "one-process")
    assert memcap.detect().kind == memcap.ONE_PROCESS


@needs_cgroup
@pytest.mark.slow
def test_forked_children_over_the_budget_are_killed_as_a_tree(tmp_path):
    token = f"tree-{time.time_ns()}"  # forked children share the command line, so the token
    result = py(THREE_CHILDREN + f"    # {token}\n", tmp_path / "scratch", Limits(wall_seconds=40))
    assert "all three done" not in result.stdout
    assert result.killed_reason.startswith("out of memory"), result
    assert "memory" in result.killed_reason
    assert alive(token) == []  # no child survived its sibling's OOM kill
    assert own_groups() == []


@needs_cgroup
@pytest.mark.slow
def test_a_kernel_tree_over_the_budget_is_killed(tmp_path):
    with pytest.raises(DeadKernelError):
        execute([textwrap.dedent(THREE_CHILDREN), "print('after')"], tmp_path / "scratch", timeout=40)
    # The kernel and its forks: their command line names this grader's run folder.
    assert alive(f"{tempdirs.PREFIX}{os.getpid()}-") == []
    assert own_groups() == []


@needs_cgroup
def test_a_correct_probe_fits_its_budget_with_every_folder_full():
    """Budget = RLIMIT_AS + the tmpfs folders: pages written there never turn into a false fail."""
    limits = Limits(memory_bytes=512 * 1024**2, file_bytes=64 * 1024**2, disk_bytes=128 * 1024**2, wall_seconds=30)
    code = """
        import os
        block = bytearray(400 * 1024**2)
        for j in range(0, len(block), 4096):
            block[j] = 1
        for folder, mib in (("/tmp", 60), ("/dev/shm", 60), (".", 120)):
            for n in range(mib // 10):
                with open(os.path.join(folder, f"f{n}"), "wb") as f:
                    f.write(b"x" * 10 * 1024**2)
        print("fits", flush=True)
    """
    with tempdirs.capped_dir("memcap-full-", limits.disk_bytes) as scratch:
        result = py(code, scratch, limits)
    assert result.stdout == "fits\n", result
    assert result.killed_reason is None
    assert own_groups() == []


def test_fallback_keeps_the_tree_to_one_process_within_budget(tmp_path, one_process):
    result = py(
        """
        import os, subprocess, threading
        threads = [threading.Thread(target=sum, args=([1],)) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("threads ok", flush=True)
        for name, start in (("fork", os.fork), ("subprocess", lambda: subprocess.run(["true"]))):
            try:
                start()
                print(name, "started")
            except OSError as err:
                print(name, type(err).__name__)
        print(sum(n.isdigit() for n in os.listdir("/proc")), flush=True)
    """,
        tmp_path / "scratch",
    )
    lines = result.stdout.split("\n")
    assert lines[:3] == ["threads ok", "fork PermissionError", "subprocess PermissionError"], result
    # The PID namespace holds bwrap's init and the one student process, nothing else.
    student_processes = int(lines[3]) - 1
    assert student_processes == 1
    assert student_processes * Limits().memory_bytes <= sandbox.memory_budget(Limits())
    assert student_processes * PROBE_LIMITS.memory_bytes <= sandbox.memory_budget(PROBE_LIMITS)


def test_fallback_stops_the_three_children(tmp_path, one_process):
    result = py(THREE_CHILDREN, tmp_path / "scratch", Limits(wall_seconds=20))
    assert "holds" not in result.stdout
    assert "PermissionError" in result.stderr


@pytest.mark.slow
def test_fallback_kernel_starts_with_its_threads(tmp_path, one_process):
    nb = execute(["import numpy, threading; print(numpy.ones(3).sum())", "import os; os.fork()"], tmp_path / "scratch")
    assert nb.cells[0].outputs[0]["text"] == "3.0\n"
    assert nb.cells[1].outputs[0]["ename"] == "PermissionError"


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_filter_is_a_whole_program(machine):
    code = memcap.no_process_filter(machine)
    assert len(code) % 8 == 0 and 0 < len(code) // 8 < 64
    with pytest.raises(memcap.MemcapError, match="no seccomp filter for"):
        memcap.no_process_filter("mips")


def test_unknown_memory_cap_setting_refuses_to_grade(monkeypatch):
    monkeypatch.setenv(memcap.FORCE_ENV, "off")
    with pytest.raises(sandbox.SandboxUnavailable, match="AUTOGRADER_MEMORY_CAP='off' is not one of"):
        sandbox.check()


def test_announcement_names_the_bound(monkeypatch):
    line = sandbox.memory_announcement()
    assert line.startswith("memory: each sandbox's process tree capped at 2.4 GiB (")
    kind = memcap.detect().kind
    if kind != memcap.ONE_PROCESS:
        assert line.endswith(f"({ {memcap.V2: 'cgroup v2 memory controller', memcap.V1: memcap.V1}[kind] })")
    monkeypatch.setenv(memcap.FORCE_ENV, "one-process")
    assert "seccomp filter allows threads but no second process" in sandbox.memory_announcement()


HYBRID_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
"""
HYBRID_CGROUP = "8:pids:/\n4:memory:/process_api/abc\n0::/\n"


def test_hybrid_layout_puts_groups_in_our_v1_memory_cgroup():
    mounts, own = memcap._mounts(HYBRID_MOUNTINFO), memcap._own_cgroups(HYBRID_CGROUP)
    assert memcap._join(mounts["memory"], own["memory"]) == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert memcap._join(mounts["pids"], own["pids"]) == Path("/sys/fs/cgroup/pids")
    assert memcap._join(mounts["cgroup2"], own[""]) == Path("/sys/fs/cgroup/unified")


@needs_cgroup
def test_no_group_is_left_after_runs(tmp_path):
    assert py("print('ok')", tmp_path / "a").stdout == "ok\n"
    assert py("import os; os._exit(3)", tmp_path / "b").returncode == 3
    assert own_groups() == []


@needs_cgroup
@pytest.mark.slow
def test_groups_of_a_killed_grader_are_swept(tmp_path):
    grader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from autograder import sandbox
        sandbox.run([sys.executable, "-c", "import time; time.sleep(120)"], Path({str(tmp_path / 's')!r}),
                    sandbox.Limits(wall_seconds=120))
    """),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    backend = memcap.detect()
    pattern = f"{memcap.PREFIX}{grader.pid}-*"
    deadline = time.monotonic() + 60
    while not list(backend.memory_parent.glob(pattern)) and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for the grader to start its sandbox, not timing anything
    left = list(backend.memory_parent.glob(pattern))
    assert left, "the grader never made its sandbox's group"
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    assert all(g.exists() for g in left)  # a SIGKILLed grader cannot clean up itself
    tempdirs.sweep()
    assert not list(backend.memory_parent.glob(pattern))
    if backend.pids_parent is not None:
        assert not list(backend.pids_parent.glob(pattern))


def test_grade_command_announces_the_bound(monkeypatch, capsys):
    from autograder import __main__ as cli
    from autograder.batch import grade

    monkeypatch.setattr(grade, "grade_many", lambda *args, **kw: [])  # only the announcement is under test
    assert cli.main(["grade", "nothing.ipynb", "--json", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert sandbox.memory_announcement() + "\n" in err
    assert err.count("memory: each sandbox's process tree capped at") == 1


def test_v2_group_caps_memory_swap_and_tasks_and_kills_as_a_group(tmp_path):
    """The cgroup v2 settings, written into a stand-in hierarchy (this machine's v2 has no controllers)."""
    backend = memcap.Backend(memcap.V2, tmp_path)
    group = memcap.new_group(backend, budget=3 * 1024**3, tasks=67)
    settings = {f.name: f.read_text() for f in group.memory_dir.iterdir()}
    assert settings == {
        "memory.max": str(3 * 1024**3),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "67",
    }
    assert group.memory_dir.name.startswith(f"{memcap.PREFIX}{os.getpid()}-")
    assert not group.oom_killed()
    (group.memory_dir / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert group.oom_killed()


def test_v1_oom_is_read_from_oom_control(tmp_path):
    group = memcap.new_group(memcap.Backend(memcap.V1, tmp_path), budget=2**30, tasks=10)
    assert (group.memory_dir / "memory.limit_in_bytes").read_text() == str(2**30)
    (group.memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not group.oom_killed()
    (group.memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()


@needs_cgroup
@pytest.mark.slow
def test_nbgrader_kernel_killed_for_memory_says_so(tmp_path):
    """The feedback names the memory budget, not a generic 'kernel died'."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from autograder.pipeline.execute import SandboxedExecute

    nb = new_notebook(cells=[new_code_cell(textwrap.dedent(THREE_CHILDREN)), new_code_cell("print('after')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(nb)
    nb, _ = SandboxedExecute(timeout=40).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    stopped = [out for out in nb.cells[0].outputs if out.output_type == "error"]
    assert stopped and stopped[0].evalue.startswith("out of memory (its processes together used more than")
    assert "out of memory" in nb.cells[1].outputs[0].text
    assert own_groups() == []


@needs_cgroup
@pytest.mark.slow
def test_a_kernels_memory_kill_is_still_named_after_its_cleanup(tmp_path):
    """killed_reason() outlives the memory group: nbclient may clean up before the reason is read."""
    import asyncio

    async def grade() -> str | None:
        km = sandbox.SandboxedKernelManager(kernel_name="python3")
        await km.start_kernel(cwd=str(tmp_path))
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        client.execute(textwrap.dedent(THREE_CHILDREN))
        while await km.is_alive():
            await asyncio.sleep(0.2)
        client.stop_channels()
        await km.shutdown_kernel(now=True)  # cleanup: the group is removed
        return km.killed_reason()

    reason = asyncio.run(asyncio.wait_for(grade(), timeout=120))
    assert reason and reason.startswith("out of memory (its processes together used more than")
    assert own_groups() == []
