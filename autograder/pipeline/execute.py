"""SandboxedExecute: nbgrader's Execute with the kernel in the sandbox and no way to end the batch.

It runs nbconvert's own ``ExecutePreprocessor.preprocess`` loop (widget metadata
included) and adds only what grading needs, at nbclient's documented points:
``preprocess`` (fail closed, the scratch folder), ``create_kernel_manager`` (the
sandbox's settings), ``preprocess_cell`` (stop after a lost kernel, the notebook's
wall time), the ``on_notebook_start`` / ``on_cell_execute`` hooks (the output
budgets) and ``process_message`` (the output caps).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import time
from pathlib import Path

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer, default

from .. import sandbox
from ..judge import content
from ..judge.hidden import runtime_dir
from ..sandbox import spare, tempdirs


async def end_cell_pollers() -> None:
    """Cancel what nbclient left polling for an abandoned cell, and let it finish.

    After a cell timeout nbclient leaves its IOPub poller waiting (``CellTimeoutError`` is a
    ``CellControlSignal``, which it does not cancel for). Where that loop never runs again (a
    Dask task has its own context, so its own jupyter_core loop) the poller is later destroyed
    pending, and asyncio prints "Task was destroyed but it is pending!" on the worker's console.
    """
    pollers = [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task() and task.get_coro().__qualname__.startswith("NotebookClient._async_poll")
    ]
    for task in pollers:
        task.cancel()
    if pollers:
        await asyncio.wait(pollers, timeout=1.0)


class SandboxedExecute(Execute):
    """nbgrader's Execute, with the kernel in the sandbox and no way to end the batch.

    The kernel runs on a scratch copy of the notebook's folder. A cell that
    kills the kernel or outlives its timeout stops execution: that cell gets
    an error output, later cells a note, and grading goes on (scores come from
    HiddenChecks, not from this kernel).
    """

    total_seconds = Float(300.0, help="wall time for the whole notebook").tag(config=True)
    max_output_bytes = Integer(256 * 1024, help="output kept per cell (every kind)").tag(config=True)
    max_notebook_output_bytes = Integer(4 * 1024**2, help="output kept for the whole notebook").tag(config=True)
    memory_bytes = Integer(2 * 1024**3, help="address-space limit of the kernel").tag(config=True)
    disk_bytes = Integer(256 * 1024**2, help="size cap of the kernel's writable folder (as root)").tag(config=True)

    @default("shutdown_kernel")
    def _shutdown_kernel_default(self):
        # Every output is in once the last cell's reply came, and the sandbox is killed whole
        # anyway: waiting for the kernel's own atexit work (about 0.4 s) serves no grade.
        return "immediate"

    def __init__(self, **kw):
        kw.setdefault("kernel_manager_class", sandbox.SandboxedKernelManager)
        super().__init__(**kw)
        self.interrupt_on_timeout = False  # an interrupt-proof loop must not stall us
        self.on_notebook_start = self._new_notebook_budget
        self.on_cell_execute = self._new_cell_budget
        self._cell_bytes = self._notebook_bytes = 0
        self._deadline = None
        self._stopped = None
        self._assignment = None
        self._submitted = Path(".")
        self._spare = None  # the spare kernel this notebook runs in, if a batch prepared one

    def preprocess(self, nb, resources=None, km=None):
        # Fail closed before the kernel starts: nbgrader records this notebook as failed.
        sandbox.check(announce=self.log.warning)
        metadata = resources.setdefault("metadata", {})
        submitted = metadata.get("path")
        self._assignment = (resources.get("nbgrader") or {}).get("assignment")
        self._deadline = time.monotonic() + self.total_seconds
        self._stopped = None
        self._submitted = Path(submitted or ".")
        # A spare kernel a batch started for this notebook, if its settings are this notebook's.
        self._spare = spare.take(self._settings_key(self._kernel_settings(nb)))
        try:
            with contextlib.ExitStack() as folder:
                if self._spare is not None:
                    scratch = self._spare.scratch  # the spare's kernel already works there
                else:
                    scratch = folder.enter_context(tempdirs.capped_dir("autograde-kernel-", self.disk_bytes))
                self._copy_submitted(self._submitted, scratch)
                metadata["path"] = str(scratch)  # nbclient starts a new kernel there
                return super().preprocess(nb, resources, km)
        finally:  # the kernel's scratch is gone: later steps (HiddenChecks) read the submission's folder
            metadata["path"] = submitted
            taken, self._spare = self._spare, None
            if taken is not None:
                # nbclient shut the kernel down if it got that far; if not (an error before), we do.
                if run_sync(taken.km.is_alive)():
                    taken.discard()
                else:
                    taken.remove_scratch()

    def _copy_submitted(self, source_dir: Path, scratch: Path) -> None:
        for item in sorted(source_dir.iterdir()) if source_dir.is_dir() else ():
            # Submitted regular files (no symlinks) while they fit, leaving half the cap to the kernel.
            room = min(64 * 1024**2, shutil.disk_usage(scratch).free - self.disk_bytes // 2)
            if item.is_file() and not item.is_symlink() and item.stat().st_size < room:
                shutil.copy2(item, scratch / item.name)

    def create_kernel_manager(self):
        """The spare kernel this notebook took, if any, else a new one; then the next notebook's spare."""
        # Set here, after nbconvert's preprocess re-read the config: no config may swap in a plain kernel.
        self.kernel_manager_class = sandbox.SandboxedKernelManager
        settings = self._kernel_settings(self.nb)
        key = self._settings_key(settings)
        new_km = functools.partial(sandbox.SandboxedKernelManager, **settings, config=self.config)
        if self._spare is not None and self._spare.key == key:
            self.km = self._spare.km
        else:  # no spare, or the re-read config changed a setting: preprocess discards that spare
            self.km = new_km()
        spare.prepare(key, new_km, self.disk_bytes, {"extra_arguments": self._start_arguments()})
        return self.km

    def _settings_key(self, settings: dict) -> tuple:
        return spare.settings_key(settings, self.config, self.disk_bytes, self._start_arguments())

    def _kernel_settings(self, nb) -> dict:
        # The kernel nbclient's create_kernel_manager would pick: the configured one, else the notebook's.
        self.kernel_name = self.kernel_name or nb.metadata.get("kernelspec", {}).get("name") or NATIVE_KERNEL_NAME
        # the assignment's own content: naming it spares a scan of the installed modules per notebook
        runtime = runtime_dir(content.only(self._assignment or None))
        return {
            "kernel_name": self.kernel_name,
            "limits": sandbox.Limits(
                memory_bytes=self.memory_bytes,
                cpu_seconds=int(self.total_seconds),
                wall_seconds=self.total_seconds + 30,  # from the kernel's start, or from taking a spare
                processes=64,
                disk_bytes=self.disk_bytes,
            ),  # the tree's memory budget counts this tmpfs
            "ro_paths": [str(runtime)],
            "extra_env": {"PYTHONPATH": str(runtime), "NBGRADER_EXECUTION": "autograde"},
        }

    def _start_arguments(self) -> list:
        # What nbclient's start_new_kernel adds for an ipykernel, so a spare starts as a new kernel would.
        named = any(arg.startswith("--HistoryManager.hist_file") for arg in self.extra_arguments)
        ipykernel = self.kernel_name in {"python", "python2", "python3"}  # KernelManager.ipykernel
        history = ipykernel and self.ipython_hist_file and not named
        return [*self.extra_arguments, *([f"--HistoryManager.hist_file={self.ipython_hist_file}"] if history else [])]

    def preprocess_cell(self, cell, resources, index):
        """Run one cell unless the notebook already stopped; a lost kernel stops it, not the batch."""
        if cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        if self._stopped is None and time.monotonic() > self._deadline:
            self._stopped = f"the notebook used up its {self.total_seconds:.0f} s"
        if self._stopped is not None:
            cell.outputs = [new_output("stream", name="stdout", text=f"[not run by the autograder: {self._stopped}]\n")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
            run_sync(end_cell_pollers)()
            reason = self._stop_reason(err, index)
            cell.outputs.append(
                new_output(
                    "error", ename="AutograderStopped", evalue=reason, traceback=[f"AutograderStopped: {reason}"]
                )
            )
            self._stopped = f"{reason} in an earlier cell"
            return cell, self.resources

    def _stop_reason(self, err: Exception, index: int) -> str:
        if isinstance(err, DeadKernelError):
            return self.km.killed_reason() or "the kernel died (os._exit, a crash or a resource limit)"
        if isinstance(err, CellTimeoutError):
            return f"cell {index} ran longer than {self.timeout} s"
        return f"the kernel stopped responding ({type(err).__name__})"

    def _new_notebook_budget(self, **_):
        self._notebook_bytes = 0
        self.interrupt_on_timeout = False  # again: nbconvert's preprocess re-read the config

    def _new_cell_budget(self, **_):
        self._cell_bytes = 0

    # Kernel messages that change the notebook. update_display_data and comm messages
    # never reach output(): nbclient rewrites earlier outputs (display ids) or stores
    # widget state itself, so the caps are applied here, before nbclient sees a message.
    _GROWS = frozenset(
        {"stream", "display_data", "execute_result", "error", "update_display_data", "comm_open", "comm_msg"}
    )

    def process_message(self, msg, cell, cell_index):
        """Charge every notebook-changing message to the cell's and the notebook's caps; drop the excess."""
        if msg.get("msg_type") in self._GROWS:
            size = self._message_bytes(msg)
            self._cell_bytes += size
            self._notebook_bytes += size
            over = [
                (spent, cap, what)
                for spent, cap, what in (
                    (self._cell_bytes, self.max_output_bytes, "for this cell"),
                    (self._notebook_bytes, self.max_notebook_output_bytes, "for the whole notebook"),
                )
                if spent > cap
            ]
            if over:
                spent, cap, what = over[0]
                if spent - size <= cap:  # the first message past this cap: say so once
                    cell.outputs.append(
                        new_output(
                            "stream",
                            name="stdout",
                            text=f"\n[output truncated by the autograder after {cap // 1024} KiB {what}]\n",
                        )
                    )
                return None
        return super().process_message(msg, cell, cell_index)

    def _message_bytes(self, msg) -> int:
        """What a message may add to the notebook: an update rewrites every output of its display id."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        size += sum(len(buf) for buf in msg.get("buffers") or ())
        if msg.get("msg_type") in {"update_display_data", "display_data", "execute_result"}:
            transient = msg.get("content", {}).get("transient")
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            targets = self._display_id_map.get(display_id, {}) if isinstance(display_id, str) else {}
            size *= max(1, sum(len(indices) for indices in targets.values()))
        return size
