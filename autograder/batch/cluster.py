"""Grading on a Dask cluster: a lost worker costs nothing but time.

When a Dask worker dies while it holds a notebook (out of memory, preempted, its node
lost), the scheduler gives the notebook to another worker; after the notebook has been
on ``distributed.scheduler.allowed-failures`` + 1 workers that all died, the scheduler
gives up on it (``KilledWorker``), since that notebook is probably what kills them. A task
that fails by raising (a worker's broken environment, say) is retried ``RETRIES`` times,
on whichever worker the scheduler picks. Only then does the notebook get an error, which
says why; every other notebook's result is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from .heap import run_tidily

#: Extra runs of a task that raised; worker deaths are bounded by the scheduler's allowed-failures.
RETRIES = 2


def lost(err: BaseException) -> str:
    """The one-line error of a notebook the cluster could not grade."""
    from distributed import KilledWorker

    if isinstance(err, KilledWorker):
        return (
            "grading worker died: every Dask worker that took this notebook died (more than the "
            "scheduler's distributed.scheduler.allowed-failures), so it was not retried again"
        )
    text = " ".join(str(err).split())[:300] or "no message"
    return f"grading worker died: {type(err).__name__}: {text} (after {RETRIES} retries)"


def run_on_dask(
    scheduler: str, fn: Callable, calls: list[list], failed: Callable, on_done: Callable[[], None] | None = None
) -> list:
    """``fn(*args)`` for each of ``calls`` on the cluster at ``scheduler``, in order.

    A call the cluster could not complete becomes ``failed(args, why)``. ``pure=False``:
    the same notebook submitted twice is graded twice, never served from the cluster's cache.
    A Dask worker lives for many notebooks: ``run_tidily`` keeps its heap from growing with them.
    """
    from distributed import Client

    with Client(scheduler) as client:
        futures = [client.submit(run_tidily, fn, *args, retries=RETRIES, pure=False) for args in calls]
        out = []
        for future, args in zip(futures, calls):
            try:
                out.append(future.result())
            except Exception as err:  # that notebook's loss, never the batch's
                out.append(failed(args, lost(err)))
            if on_done:
                on_done()
        return out
