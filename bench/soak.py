"""The soak: many submissions (the sample class replicated, attacks included) through ``course-autograde``.

``python -m bench --soak N`` runs it twice, each into its own PostgreSQL gradebook: ``--jobs 2``
on this machine, then ``--scheduler`` on a two-worker LocalCluster. It records throughput, the
peak RSS of each grading process early and late in the run (flat means no growth per notebook),
temporary folders left behind (0) and open file descriptors early and late (flat), and writes
the "Soak" part of bench/results.md's scale section. Off in plain ``make bench`` (it is long).
"""

from __future__ import annotations

import math
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


class Watch:
    """Samples grading processes: RSS and open fds of each, in the second and the last fifth of the run."""

    def __init__(self, pids_of):
        self.pids_of, self.samples, self.running = pids_of, [], True  # samples: (t, pid, rss, fds)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.start = time.monotonic()
        self.thread.start()

    def _sample(self):
        while self.running:
            for pid in self.pids_of():
                try:
                    proc = psutil.Process(pid)
                    self.samples.append((time.monotonic() - self.start, pid, proc.memory_info().rss, proc.num_fds()))
                except psutil.Error:
                    pass
            time.sleep(0.5)

    def stop(self) -> dict:
        self.running = False
        self.thread.join()
        end = max((t for t, *_ in self.samples), default=0.0)
        early = [s for s in self.samples if end / 5 <= s[0] <= end * 2 / 5]  # after every process warmed up
        late = [s for s in self.samples if s[0] >= end * 4 / 5]
        peak = lambda rows, i: max((r[i] for r in rows), default=0)  # noqa: E731
        return {
            "rss_early": peak(early, 2),
            "rss_late": peak(late, 2),
            "fds_early": peak(early, 3),
            "fds_late": peak(late, 3),
            "processes": len({s[1] for s in self.samples}),
        }


def replicate(sample: Path, course: Path, n: int) -> int:
    """``n`` submissions in ``course/submitted``: the sample class's cases, mixed, each under a new id.

    Cases are taken with a stride, so attacks, broken files and correct notebooks alternate
    through the run instead of coming in alphabetical blocks. Returns how many are attacks.
    """
    cases = sorted(p for p in (sample / "submitted").iterdir())
    stride = next(s for s in range(7, 7 + len(cases)) if math.gcd(s, len(cases)) == 1)
    attacks = 0
    for i in range(n):
        case = cases[(i * stride) % len(cases)]
        attacks += case.name.startswith("hostile-")
        shutil.copytree(case, course / "submitted" / f"{case.name[:40]}-{i:05d}", symlinks=True)
    return attacks


def course_for(sample: Path, where: Path, n: int) -> tuple:
    course = where / "course"
    shutil.copytree(ROOT / "source", course / "source")
    attacks = replicate(sample, course, n)
    return course, attacks


def run_course(course: Path, db_url: str, tmpdir: Path, extra: list, pids_of) -> dict:
    env = {
        **os.environ,
        "AUTOGRADER_DB_URL": db_url,
        "AUTOGRADER_SANDBOX": "required",
        "TMPDIR": str(tmpdir),
        "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
        "AUTOGRADER_COURSE_ROOT": str(course),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "07_optimizers", "--force", "--log-level=WARN"],
        cwd=course,
        env=env,
        check=True,
        capture_output=True,
    )
    env.pop("AUTOGRADER_COURSE_ROOT")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder", "course-autograde", "--course", str(course), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = Watch(lambda: pids_of(proc.pid))
    out, err = proc.communicate()
    figures = watch.stop()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"course-autograde failed: {err[-2000:]}")
    return {"seconds": seconds, "summary": out.strip().splitlines()[-1], **figures}


def pool_workers(cli_pid: int) -> list:
    """The CLI and its pool workers (its direct children)."""
    try:
        cli = psutil.Process(cli_pid)
        return [cli_pid] + [c.pid for c in cli.children() if "--multiprocessing-fork" in c.cmdline()]
    except psutil.Error:
        return []


def soak(n: int) -> list:
    from distributed import Client, LocalCluster

    from tools.postgres import create_database, throwaway_postgres

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, throwaway_postgres("soak_jobs2") as db:
        tmp = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "tools.sample_class", str(tmp / "sample")], cwd=ROOT, check=True, capture_output=True
        )
        for label in ("jobs2", "dask"):
            (tmp / label / "tmp").mkdir(parents=True)
            course, attacks = course_for(tmp / "sample", tmp / label, n)
            url = db if label == "jobs2" else create_database(db, "soak_dask")
            print(f"soak: {n} submissions ({attacks} attacks), {label}...", file=sys.stderr)
            if label == "jobs2":
                results[label] = run_course(course, url, tmp / label / "tmp", ["--jobs", "2"], pool_workers)
            else:
                # Dask workers grade in their own processes: their temporary folders go where the CLI's do.
                os.environ["TMPDIR"] = str(tmp / label / "tmp")
                os.environ["AUTOGRADER_SANDBOX"] = "required"
                with (
                    LocalCluster(
                        n_workers=2,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",
                        local_directory=str(tmp / label / "dask"),
                    ) as cluster,
                    Client(cluster.scheduler_address) as client,
                ):
                    workers = list(client.run(os.getpid).values())
                    results[label] = run_course(
                        course,
                        url,
                        tmp / label / "tmp",
                        ["--scheduler", cluster.scheduler_address],
                        lambda cli, workers=workers: [p for p in workers if psutil.pid_exists(p)],
                    )
            # counted once the workers are gone: a live worker keeps its own run folder
            results[label]["left"] = [p.name for p in (tmp / label / "tmp").iterdir()]
    return section(n, attacks, results)


def section(n: int, attacks: int, results: dict) -> list:
    mib = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    lines = [
        "## Soak (scale)",
        "",
        f"{n} submissions (the sample class replicated, {attacks} of them attacks) through `course-autograde` "
        "into PostgreSQL. Regenerate: `python -m bench --soak 1000` (not part of plain `make bench`).",
        "",
        "| run | seconds | submissions/hour | peak RSS per grading process, 2nd fifth / last fifth | "
        "open fds, 2nd fifth / last fifth | temp folders left | summary |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"jobs2": "`--jobs 2` (this machine)", "dask": "two-worker LocalCluster (`--scheduler`)"}
    for label, r in results.items():
        lines.append(
            f"| {names[label]} | {r['seconds']:.0f} | {n * 3600 / r['seconds']:.0f} | "
            f"{mib(r['rss_early'])} / {mib(r['rss_late'])} | {r['fds_early']} / {r['fds_late']} | "
            f"{len(r['left'])} {' '.join(r['left'])} | {r['summary'].split(' into ')[0]} |"
        )
    best = min(r["seconds"] for r in results.values()) / n
    lines += [
        "",
        f"Projection: 10,000 submissions at {best:.1f} s each per 2-core machine take "
        f"{10_000 * best / 3600:.1f} h on one machine, {10_000 * best / 3600 / 10:.1f} h on 10, "
        f"{10_000 * best / 60 / 50:.0f} min on 50 (grading is independent per submission; the "
        "PostgreSQL gradebook takes one short transaction per test cell).",
        "",
    ]
    return lines


def write(lines: list, results_md: Path) -> None:
    """Replace (or add) the soak section of bench/results.md, keeping the rest of the last full run."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    head, marker, rest = text.partition("## Soak (scale)")
    tail = rest.partition("\n## ")[2] if marker else ""
    results_md.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + ("\n## " + tail if tail else "\n"))
