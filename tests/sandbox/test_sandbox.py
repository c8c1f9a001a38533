"""The sandbox really contains student code: real bwrap, real processes, real kernels."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from autograder import sandbox
from autograder.sandbox import Limits, SandboxedKernelManager, tempdirs

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")
pytestmark = needs_bwrap


def py(code: str, scratch: Path, limits: Limits = Limits(), **kw) -> sandbox.Result:
    return sandbox.run([PY, "-c", textwrap.dedent(code)], scratch, limits, **kw)


def own_kernels() -> str:
    """What the command line of a kernel this test process started contains (not other graders')."""
    return str(tempdirs.run_dir() / "sandbox-kernel-")


def alive(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains ``token``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and token in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def scratch(tmp_path):
    return tmp_path / "scratch"


@pytest.fixture
def world_readable_dir():
    """A host directory anyone may read and write: only the mount namespace can hide it."""
    path = Path(tempfile.mkdtemp(prefix="instructor-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def tcp_server():
    """A listening socket on the host's loopback; yields (port, accepted connections)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    accepted = []

    def count():
        try:
            while True:
                accepted.append(server.accept()[0])
        except BlockingIOError:
            return len(accepted)

    yield server.getsockname()[1], count
    for conn in accepted:
        conn.close()
    server.close()


def test_files_outside_are_invisible_and_only_scratch_is_writable(scratch, world_readable_dir):
    secret = world_readable_dir / "solutions.py"
    secret.write_text("ANSWER = 42\n")
    secret.chmod(0o644)
    root_files = sorted(p for p in Path("/root").iterdir() if p.is_file())[:1]
    reads = [str(secret), str(REPO / "pyproject.toml"), *map(str, root_files)]
    planted = REPO / f".planted-{os.getpid()}.py"
    writes = [str(world_readable_dir / "planted.py"), str(planted)]
    try:
        result = _try_files(reads, writes, scratch)
    finally:  # should the sandbox be broken, leave the repository as it was
        planted.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for path in reads:
        assert report[path] != "read", f"{path} was readable"
    assert report[str(planted)] != "written"
    # /tmp inside is a private tmpfs: even a successful write there never reaches the host.
    assert not (world_readable_dir / "planted.py").exists()
    assert (scratch / "mine.txt").read_text() == "inside"


def _try_files(reads: list[str], writes: list[str], scratch: Path) -> sandbox.Result:
    return py(
        f"""
        import json
        report = {{}}
        for path in {reads!r}:
            try:
                open(path).read(); report[path] = "read"
            except OSError as err:
                report[path] = type(err).__name__
        for path in {writes!r}:
            try:
                open(path, "w").write("x"); report[path] = "written"
            except OSError as err:
                report[path] = type(err).__name__
        open("mine.txt", "w").write("inside")
        print(json.dumps(report))
    """,
        scratch,
    )


def test_host_loopback_is_unreachable(scratch, tcp_server):
    port, accepted = tcp_server
    result = py(
        f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3)
            print("connected")
        except OSError as err:
            print("blocked", type(err).__name__)
    """,
        scratch,
    )
    assert result.stdout.startswith("blocked"), result.stdout + result.stderr
    assert accepted() == 0


def test_memory_limit_stops_3gb_but_allows_100mb(scratch):
    result = py(
        """
        import numpy as np
        small = np.ones(100 * 1024**2 // 8)
        print("100MB ok", flush=True)
        big = np.ones(3 * 1024**3 // 8)
        print("3GB ok")
    """,
        scratch,
        Limits(memory_bytes=2 * 1024**3),
    )
    assert "100MB ok" in result.stdout
    assert "3GB ok" not in result.stdout
    assert "MemoryError" in result.stderr
    assert result.killed_reason == "memory"


def sandbox_user_pids() -> set[int]:
    """Live processes of this process's sandbox uids (other graders on the machine have their own block)."""
    first = sandbox.SANDBOX_ID_BASE + os.getpid() * sandbox.IDS_PER_PROCESS
    return {
        p.pid
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"]
        and first <= p.info["uids"].real < first + sandbox.IDS_PER_PROCESS
        and p.info["status"] != psutil.STATUS_ZOMBIE
    }


@pytest.mark.slow
@pytest.mark.alone  # counts the processes of every sandbox uid on the machine
@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user RLIMIT_NPROC counts all their processes")
def test_fork_bomb_is_capped_by_process_limit(scratch):
    limit = 24
    before = sandbox_user_pids()
    result = py(
        """
        import os, time
        if os.fork() == 0:
            while True:  # every child forks on, like a real fork bomb
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
        time.sleep(1.5)
        print(sum(name.isdigit() for name in os.listdir("/proc")), flush=True)
    """,
        scratch,
        Limits(processes=limit, wall_seconds=10),
    )
    assert result.returncode == 0, result.stderr
    # Every process in the sandbox's PID namespace is listed in its /proc:
    # bwrap's init (uid 0, not counted) plus at most `limit` student processes.
    assert limit // 2 < int(result.stdout) <= limit + 1
    assert sandbox_user_pids() <= before  # and the whole bomb is gone


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="per-sandbox uids need root")
def test_a_fork_bomb_does_not_starve_a_concurrent_sandbox(tmp_path):
    """Each sandbox has its own uid, so process limits are per sandbox, not shared."""
    bomb = threading.Thread(
        target=py,
        args=(
            """
        import os, time
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """,
            tmp_path / "bomb",
            Limits(processes=24, wall_seconds=6),
        ),
    )
    bomb.start()
    time.sleep(1.5)  # the bomb has used up its process limit by now
    result = py(
        """
        import threading, time
        threads = [threading.Thread(target=time.sleep, args=(0.3,)) for _ in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("16 threads ok")
    """,
        tmp_path / "neighbour",
        Limits(processes=24, wall_seconds=20),
    )
    bomb.join()
    assert "16 threads ok" in result.stdout, result.stderr


@pytest.mark.slow
def test_uninterruptible_loop_is_killed_at_wall_time(scratch):
    start = time.monotonic()
    result = py(
        """
        import signal
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            try:
                pass
            except BaseException:
                pass
    """,
        scratch,
        Limits(wall_seconds=1.5),
    )
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert result.returncode is None
    assert result.killed_reason == "wall time 1.5 s exceeded"
    assert 1.5 <= elapsed < 5


def test_output_is_capped_and_not_buffered(scratch):
    tracemalloc.start()
    try:
        result = py(
            """
            import sys
            block = "x" * 1024**2
            for _ in range(50):
                sys.stdout.write(block)
        """,
            scratch,
            Limits(output_bytes=1024**2),
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.returncode == 0 and not result.timed_out  # drained: the child never blocked
    assert result.truncated
    assert len(result.stdout) == 1024**2
    assert peak < 8 * 1024**2, f"parent held {peak / 1024**2:.0f} MB"


def test_background_processes_do_not_outlive_run(scratch):
    token = f"{time.time_ns() % 10**6}.5"
    result = py(
        f"""
        import os, subprocess
        p = subprocess.Popen(["sleep", "1{token}"], start_new_session=True)
        subprocess.run(["sh", "-c", "setsid sleep 2{token} > /dev/null 2>&1 &"])
        if os.fork() == 0:  # classic double fork into a new session
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "3{token}"])
            os._exit(0)
        os.wait()
        print("started", p.poll() is None, flush=True)
    """,
        scratch,
    )
    assert result.stdout.strip() == "started True", result.stderr
    for prefix in "123":
        assert alive(f"sleep {prefix}{token}") == []


@pytest.mark.parametrize(
    ("code", "expected"), [("import sys; sys.exit(3)", 3), ("import os; os._exit(7)", 7)], ids=["sys.exit", "os._exit"]
)
def test_exit_code_is_reported(scratch, code, expected):
    result = py(code, scratch)
    assert result.returncode == expected
    assert result.sandboxed and not result.timed_out and result.killed_reason is None


def kernel_dirs() -> set[Path]:
    """Runtime dirs (connection file, sockets) of SandboxedKernelManager."""
    return set(tempdirs.run_dir().glob("sandbox-kernel-*"))


def execute(cells: list[str], scratch: Path, **kw) -> nbformat.NotebookNode:
    """Run cells like nbgrader does: nbclient, our manager, the notebook's dir as cwd."""
    scratch.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    kw.setdefault("timeout", 20)
    client = NotebookClient(
        nb,
        kernel_manager_class=SandboxedKernelManager,
        allow_errors=True,
        resources={"metadata": {"path": str(scratch)}},
        **kw,
    )
    client.execute()
    return nb


@pytest.mark.slow
def test_kernel_runs_sandboxed_and_leaves_nothing_behind(scratch, tcp_server):
    port, accepted = tcp_server
    token = f"{time.time_ns() % 10**6}.25"
    dirs_before = kernel_dirs()
    config = Config({"SandboxedKernelManager": {"extra_env": {"GRADER_MARK": "on"}}})
    nb = execute(
        [
            "import os; print(1 + 1, os.environ['GRADER_MARK'])",
            f"open({str(REPO / 'pyproject.toml')!r}).read()",
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)",
            f"import subprocess; subprocess.Popen(['sleep', '{token}'], start_new_session=True)",
            "open('written.txt', 'w').write('kernel')",
        ],
        scratch,
        config=config,
    )
    first, opened, connected, _, _ = nb.cells
    assert first.outputs[0]["text"] == "2 on\n"
    assert opened.outputs[0]["output_type"] == "error"
    assert opened.outputs[0]["ename"] in {"FileNotFoundError", "PermissionError"}
    assert connected.outputs[0]["output_type"] == "error"
    assert accepted() == 0
    assert (scratch / "written.txt").read_text() == "kernel"
    assert alive(f"sleep {token}") == []
    assert alive(own_kernels()) == []  # the kernel itself (its connection file path)
    assert kernel_dirs() == dirs_before


@pytest.mark.slow
def test_kernel_interrupt_on_timeout_keeps_the_kernel(scratch):
    nb = execute(["import time; time.sleep(60)", "print('still alive')"], scratch, interrupt_on_timeout=True, timeout=2)
    assert nb.cells[1].outputs[0]["text"] == "still alive\n"


@pytest.mark.slow
def test_kernel_is_killed_after_its_wall_time(scratch):
    config = Config({"SandboxedKernelManager": {"limits": Limits(wall_seconds=3)}})
    dirs_before = kernel_dirs()
    start = time.monotonic()
    with pytest.raises(DeadKernelError):
        execute(["import time; time.sleep(60)"], scratch, config=config)
    assert time.monotonic() - start < 15
    assert alive(own_kernels()) == []
    assert kernel_dirs() == dirs_before  # cleaned up although nbclient found it dead


@pytest.mark.slow
def test_off_still_limits_and_is_announced(scratch, monkeypatch, capsys):
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "off")
    assert sandbox.check() is False
    assert sandbox.OFF_WARNING in capsys.readouterr().err
    memory = py("import numpy; numpy.ones(3 * 1024**3 // 8)", scratch)
    looping = py("while True:\n    pass", scratch, Limits(wall_seconds=1))
    assert not memory.sandboxed and not looping.sandboxed
    assert memory.killed_reason == "memory"
    assert looping.timed_out and looping.killed_reason == "wall time 1 s exceeded"


SABOTAGE = {  # what a cell puts where the kernel's stderr log used to be, in its writable runtime dir
    "fifo": "os.mkfifo(log)",
    "dev-zero": "os.symlink('/dev/zero', log)",
    "host-file": "os.symlink({secret!r}, log)",
}


@pytest.mark.slow
def test_kernel_runtime_dir_tricks_neither_hang_nor_leak(tmp_path):
    """The grader never opens what the kernel can replace: a FIFO, /dev/zero or a host file at kernel.log."""
    marker = f"host-secret-{time.time_ns()}"
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    script = textwrap.dedent(f"""
        import logging, sys
        sys.path.insert(0, {str(REPO / 'tests' / 'sandbox')!r})
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        from pathlib import Path
        from test_sandbox import execute
        for name, trick in {SABOTAGE!r}.items():
            cell = ("import os; from ipykernel import get_connection_file\\n"
                    "log = os.path.join(os.path.dirname(get_connection_file()), 'kernel.log')\\n"
                    "if os.path.lexists(log): os.remove(log)\\n" + trick.format(secret={str(secret)!r}) + "\\n"
                    "import sys; print('sabotaged', file=sys.__stderr__, flush=True)")
            nb = execute([cell, "print('next')"], Path({str(tmp_path)!r}) / name)
            print(name, nb.cells[1].outputs[0]["text"].strip(), flush=True)
    """)
    result = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["fifo", "next", "dev-zero", "next", "host-file", "next"]
    assert marker not in result.stderr and marker not in result.stdout
    assert "sabotaged" in result.stderr  # the kernel's own stderr still reaches the debug log


def test_sandbox_uids_of_different_graders_never_collide(monkeypatch):
    """Graders whose pids agree modulo any power of two still get disjoint uids, all valid 32-bit ids."""
    seen = {}
    for pid in (1000, 1000 + 4096, 1000 + 2 * 4096, 1001, sandbox.PID_LIMIT - 1):
        monkeypatch.setattr(sandbox.limits.os, "getpid", lambda pid=pid: pid)
        ids = {sandbox.new_sandbox_id() for _ in range(sandbox.IDS_PER_PROCESS)}
        assert len(ids) == sandbox.IDS_PER_PROCESS
        for uid in ids:
            assert uid not in seen, (pid, seen.get(uid))
            assert sandbox.SANDBOX_ID_BASE <= uid < 2**31 - 1
            seen[uid] = pid


def test_a_held_uid_is_never_handed_out_until_released():
    """A spare kernel waits while the notebook before it makes many probe sandboxes: they must not get its uid."""
    from autograder.sandbox.limits import release_sandbox_id

    held = sandbox.new_sandbox_id(hold=True)
    try:
        handed = [sandbox.new_sandbox_id() for _ in range(3 * sandbox.IDS_PER_PROCESS)]
        assert held not in handed and len(set(handed)) == sandbox.IDS_PER_PROCESS - 1
    finally:
        release_sandbox_id(held)
    assert held in {sandbox.new_sandbox_id() for _ in range(sandbox.IDS_PER_PROCESS)}
