"""Sandboxed kernel start: seconds from start_kernel to the first kernel_info reply, and the shutdown.

    .venv/bin/python -m bench.kernel_start [N]

Runs N sandboxed kernels one after another in this process (the first pays the
once-per-process bwrap probe and memory-cap detection, reported apart) and prints
the median of the rest, with a plain jupyter_client kernel for comparison. Shutdown is
timed graceful (nbclient's default) and immediate (what SandboxedExecute uses).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

from jupyter_client.manager import AsyncKernelManager

from autograder import sandbox


async def _cycle(km_class, now: bool = False) -> tuple[float, float]:
    km = km_class(kernel_name="python3")
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.perf_counter()
        await km.start_kernel(cwd=cwd)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        started = time.perf_counter() - t0
        client.stop_channels()
        t1 = time.perf_counter()
        await km.shutdown_kernel(now=now)
        return started, time.perf_counter() - t1


def measure(n: int = 6) -> dict:
    sandbox.check()
    first = asyncio.run(_cycle(sandbox.SandboxedKernelManager))
    runs = [asyncio.run(_cycle(sandbox.SandboxedKernelManager)) for _ in range(n - 1)]
    immediate = [asyncio.run(_cycle(sandbox.SandboxedKernelManager, now=True)) for _ in range(n - 1)]
    plain = [asyncio.run(_cycle(AsyncKernelManager)) for _ in range(3)]
    return {
        "sandboxed start (first in process)": first[0],
        "sandboxed start (median)": statistics.median(r[0] for r in runs),
        "sandboxed shutdown, graceful (median)": statistics.median(r[1] for r in runs),
        "sandboxed shutdown, immediate (median)": statistics.median(r[1] for r in immediate),
        "plain start (median)": statistics.median(r[0] for r in plain),
        "plain shutdown (median)": statistics.median(r[1] for r in plain),
    }


if __name__ == "__main__":
    for label, seconds in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 6).items():
        print(f"{label:38s} {seconds:6.2f} s")
