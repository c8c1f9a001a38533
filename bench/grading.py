"""Grading throughput: the hardened grader (serial, --jobs 2) next to stock nbgrader on the same notebooks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Stock nbgrader cannot survive the hostile cases (os._exit, endless loops) or grade the broken
# files, so throughput is compared on the submissions both can grade.
COMPARABLE = ("correct-", "bug-")


class TreeSampler:
    """Samples the process tree under ``pid``: peak RSS per grading worker and per kernel/probe, and
    the CPU time of every process seen (a sandbox is killed, never waited for, so the kernel's
    RUSAGE_CHILDREN misses it; a process shorter than one sample is missed here)."""

    def __init__(self, pid: int):
        self.root, self.workers, self.sandboxed, self.running = pid, 0, 0, True
        self.cpu_by_pid = {}
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.running:
            try:
                root = psutil.Process(self.root)
                for proc in [root, *root.children(recursive=True)]:  # serial graders grade in the root
                    times = proc.cpu_times()
                    self.cpu_by_pid[(proc.pid, proc.create_time())] = times.user + times.system
                    rss, cmd = proc.memory_info().rss, " ".join(proc.cmdline())
                    if "ipykernel" in cmd or "autograder.probe" in cmd:
                        self.sandboxed = max(self.sandboxed, rss)
                    elif "python" in cmd:
                        self.workers = max(self.workers, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()


def _timed(cmd: list, cwd: Path, env: dict) -> tuple:
    """(wall seconds, CPU seconds of the whole process tree, peak memory, stdout) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = TreeSampler(proc.pid)
    out, err = proc.communicate()
    memory.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {err[-2000:]}")
    return time.perf_counter() - start, sum(memory.cpu_by_pid.values()), memory, out


def sample_class(dest: Path) -> list:
    subprocess.run([sys.executable, "-m", "tools.sample_class", str(dest)], cwd=ROOT, check=True, capture_output=True)
    return sorted(
        p for p in (dest / "submitted").glob("*/07_optimizers/optimizers.ipynb") if p.parts[-3].startswith(COMPARABLE)
    )


def hardened(paths: list, jobs: int) -> dict:
    env = {**os.environ, "AUTOGRADER_SANDBOX": "required"}
    seconds, cpu, memory, out = _timed(
        [sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json", "--no-progress", "--jobs", str(jobs)],
        ROOT,
        env,
    )
    return {
        "seconds": seconds,
        "per_notebook": seconds / len(paths),
        "cpu_per_notebook": cpu / len(paths),
        "worker_rss": memory.workers,
        "sandboxed_rss": memory.sandboxed,
        "scores": [e["score"] for e in json.loads(out)],
    }


def stock(paths: list) -> dict:
    """Plain nbgrader 0.9.6, default pipeline, one `nbgrader autograde` over all students."""
    with tempfile.TemporaryDirectory(prefix="stock-course-") as tmp:
        course = Path(tmp)
        (course / "source/07_optimizers").mkdir(parents=True)
        shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", course / "source/07_optimizers/")
        (course / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.ClearHiddenTests.enforce_metadata = False\n"
        )
        for path in paths:
            dest = course / "submitted" / path.parts[-3] / "07_optimizers"
            dest.mkdir(parents=True)
            shutil.copy(path, dest / "optimizers.ipynb")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        nbgrader = [sys.executable, "-m", "nbgrader"]
        subprocess.run(
            [*nbgrader, "generate_assignment", "07_optimizers", "--force"],
            cwd=course,
            env=env,
            check=True,
            capture_output=True,
        )
        seconds, cpu, memory, _ = _timed([*nbgrader, "autograde", "07_optimizers", "--force"], course, env)
    return {
        "seconds": seconds,
        "per_notebook": seconds / len(paths),
        "cpu_per_notebook": cpu / len(paths),
        "worker_rss": memory.workers,
        "sandboxed_rss": memory.sandboxed,
    }


def breakdown(path: Path) -> dict:
    """Where one hardened grading's time goes, measured piece by piece in this process."""
    import copy

    import nbformat
    from jupyter_client.manager import KernelManager
    from nbconvert import HTMLExporter

    from autograder import course, sandbox
    from autograder.batch import template
    from autograder.judge import hidden
    from autograder.pipeline.execute import SandboxedExecute
    from autograder.sandbox import spare

    parts = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        template.make_template(Path(tmp) / "t", course.assignment())
    parts["course set-up (once per course, then a copy)"] = time.perf_counter() - start
    source = nbformat.read(ROOT / "source/07_optimizers/optimizers.ipynb", as_version=4)
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        executed, _ = SandboxedExecute(timeout=60).preprocess(copy.deepcopy(nb), {"metadata": {"path": tmp}})
        parts["notebook cells in the sandboxed kernel (its start included)"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:  # a batch's next notebook: its kernel started meanwhile
        spare.keep_ready()
        SandboxedExecute(timeout=60).preprocess(copy.deepcopy(nb), {"metadata": {"path": tmp}})
        spare.keep_ready(False)
        time.sleep(1.0)  # the spare is up
        start = time.perf_counter()
        SandboxedExecute(timeout=60).preprocess(copy.deepcopy(nb), {"metadata": {"path": tmp}})
        parts["notebook cells in a spare kernel (a batch's next notebook)"] = time.perf_counter() - start
    start = time.perf_counter()
    hidden.run_hidden_checks(source, nb)
    parts["hidden checks (4 sandboxed probes)"] = time.perf_counter() - start
    start = time.perf_counter()
    HTMLExporter(config=course.course_config(ROOT)).from_notebook_node(executed)
    parts["feedback page (the course's HTML export: sanitize, bounded render)"] = time.perf_counter() - start
    for label, cls in (("kernel start, plain", KernelManager), ("kernel start, sandboxed", None)):
        if cls is None:
            import asyncio

            async def start_stop():
                km = sandbox.SandboxedKernelManager(kernel_name="python3")
                t0 = time.perf_counter()
                await km.start_kernel(cwd=tempfile.mkdtemp())
                client = km.client()
                client.start_channels()
                await client.wait_for_ready(timeout=60)
                elapsed = time.perf_counter() - t0
                client.stop_channels()
                await km.shutdown_kernel(now=True)
                return elapsed

            parts[label] = asyncio.run(start_stop())
        else:
            km = cls(kernel_name="python3")
            t0 = time.perf_counter()
            km.start_kernel()
            client = km.client()
            client.start_channels()
            client.wait_for_ready(timeout=60)
            parts[label] = time.perf_counter() - t0
            client.stop_channels()
            km.shutdown_kernel(now=True)
    return parts
