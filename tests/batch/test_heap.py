"""A long-lived grading worker (a Dask worker, a pool worker) does not grow with the notebooks it grades."""

from __future__ import annotations

import subprocess
import sys

# Eight threads each allocate 60 MB in small pieces and keep 1 %: the pattern of a grading's
# client and probe threads reading a flooded output. Prints how much the process grew (MiB).
CHURN = """
import sys, threading, psutil
from autograder.batch.heap import run_tidily

def churn(kept):
    junk = [bytes(600) + i.to_bytes(8, "little") for i in range(100_000)]
    kept.append(junk[::100])

def grading():
    kept = []
    threads = [threading.Thread(target=churn, args=(kept,)) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return kept

before = psutil.Process().memory_info().rss
kept = run_tidily(grading) if sys.argv[1] == "tidily" else grading()
print((psutil.Process().memory_info().rss - before) / 2**20)
"""


def grown_mib(how: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHURN, how], capture_output=True, text=True, check=True)
    return float(out.stdout)


def test_a_task_run_tidily_leaves_the_heap_near_what_it_keeps():
    plain, tidily = grown_mib("plain"), grown_mib("tidily")
    assert plain > 200  # without the cap and the trim, the freed pieces stay in eight arenas
    assert tidily < plain / 4, (plain, tidily)
