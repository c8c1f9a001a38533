"""A spare sandboxed kernel: the next notebook's kernel starts while this notebook runs.

Starting a sandboxed kernel (bwrap, an interpreter, ipykernel) is about half of a short
notebook's grading. A batch worker grades notebook after notebook, so it can start the
next kernel on the idle core while this one's cells run, as Jupyter Enterprise Gateway
prespawns kernels. The rules that keep it as safe as a kernel started on demand:

- a spare serves one notebook, then is shut down like any other kernel: nothing a
  notebook does can reach the next one's kernel;
- it is only taken with exactly the settings the notebook would start one with (the
  ``key``) and alive; its wall-time lifetime starts again when it is taken, and it
  holds its sandbox uid while it waits, so no sandbox of the notebook before shares it;
- only a batch asks for spares (``keep_ready``); one nobody took within ``MAX_AGE`` is
  shut down, and one left over dies with the process.

The spare starts on one long-lived thread of its own: bwrap's ``--die-with-parent`` is tied
to the thread that started it, so a short-lived thread would take its kernel with it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_core.utils import run_sync

from . import tempdirs
from .provisioner import SandboxedKernelManager, SandboxKernelSpecManager, SandboxProvisioner

#: Seconds a spare waits for its notebook: past that the batch has ended or stalled, and an
#: idle sandbox (its mounts, memory group and uid) would only be held.
MAX_AGE = 20.0

log = logging.getLogger(__name__)


@dataclass
class Spare:
    """A started kernel manager and the scratch folder that is its kernel's working directory."""

    key: tuple
    km: object
    scratch: Path
    born: float = field(default_factory=time.monotonic)
    _folder: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def usable(self, key: tuple) -> bool:
        fresh = time.monotonic() - self.born < MAX_AGE
        return self.key == key and fresh and run_sync(self.km.is_alive)()

    def remove_scratch(self) -> None:
        self._folder.close()

    def discard(self) -> None:
        """Shut the kernel down (its whole sandbox) and remove its folder, as nbclient ends a kernel:
        a dead one is only cleaned up (its launcher is reaped, so its process group is no longer ours)."""
        try:
            if run_sync(self.km.is_alive)():
                run_sync(self.km.shutdown_kernel)(now=True)
        finally:
            try:
                run_sync(self.km.cleanup_resources)()
            finally:
                self.remove_scratch()


_wanted = False
_lock = threading.Lock()
_next: Future | None = None
_starter: ThreadPoolExecutor | None = None
_starter_lock = threading.Lock()  # Dask may grade on several threads: one starter thread only


def settings_key(settings: dict, config, disk_bytes: int, arguments: list) -> tuple:
    """Everything a kernel starts with, as a spare's key: the kernel manager's settings, the
    configuration its classes read, the size of its folder and the kernel's arguments."""
    read = {
        c.__name__ for cls in (SandboxedKernelManager, SandboxKernelSpecManager, SandboxProvisioner) for c in cls.mro()
    }
    sections = sorted((name, repr(config[name])) for name in read if name in config)
    return repr(sorted(settings.items())), repr(sections), disk_bytes, tuple(arguments)


def keep_ready(wanted: bool = True) -> None:
    """A batch worker says that more notebooks follow, so a spare kernel is worth starting."""
    global _wanted
    _wanted = wanted


def take(key: tuple) -> Spare | None:
    """The spare started for these settings, if it is usable; any other is shut down."""
    spare = _pop_started()
    if spare is None:
        return None  # the notebook starts its own kernel, which fails closed as ever
    if spare.usable(key):
        spare.km.provisioner.renew_lifetime()  # its notebook's wall time starts now, as with a new kernel
        return spare
    _discard_later(spare)
    return None


def prepare(key: tuple, make_km: Callable[[], object], disk_bytes: int, start_kwargs: dict) -> None:
    """Start a spare with these settings on the starter thread, if a batch asked for one."""
    global _next
    if not _wanted:
        return
    with _lock:
        if _next is not None:
            return
        try:
            _next = _on_starter(_start, key, make_km, disk_bytes, start_kwargs)
        except RuntimeError:  # the interpreter is shutting down: no next notebook anyway
            return
        expiry = threading.Timer(MAX_AGE, _expire, args=(_next,))
        expiry.daemon = True
        expiry.start()


def _start(key: tuple, make_km: Callable[[], object], disk_bytes: int, start_kwargs: dict) -> Spare:
    spare = Spare(key, make_km(), Path())
    try:
        spare.scratch = Path(spare._folder.enter_context(tempdirs.capped_dir("autograde-kernel-", disk_bytes)))
        run_sync(spare.km.start_kernel)(cwd=str(spare.scratch), **start_kwargs)
    except BaseException:
        spare.discard()  # whatever of its sandbox got started
        raise
    return spare


def _expire(started: Future) -> None:
    """A spare nobody took in MAX_AGE: shut it down (unless a notebook took it meanwhile)."""
    global _next
    with _lock:
        if _next is not started:
            return
        _next = None
    started.add_done_callback(lambda done: done.exception() is None and _discard_later(done.result()))


def _discard_later(spare: Spare) -> None:
    try:
        _on_starter(_discard_logged, spare)
    except RuntimeError:  # shutting down: the sandbox dies with the process, its folders with the run folder
        log.debug("interpreter shutting down: the spare kernel ends with the process")


def _discard_logged(spare: Spare) -> None:
    try:
        spare.discard()
    except Exception:
        log.exception("could not shut down a spare kernel")
        raise


def _on_starter(fn: Callable, *args) -> Future:
    global _starter
    with _starter_lock:
        if _starter is None:
            _starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spare-kernel")
        return _starter.submit(fn, *args)


def _pop_started() -> Spare | None:
    """The spare prepared last, no longer anyone else's to take; None if none started."""
    global _next
    with _lock:
        started, _next = _next, None
    if started is None:
        return None
    try:
        return started.result()  # still starting: waiting beats starting another
    except Exception:  # noqa: BLE001 - a spare that failed to start (and was shut down) is only a missed shortcut
        return None


@atexit.register
def discard_all() -> None:
    """Shut down a spare nobody took (a batch worker's last one, at a clean exit)."""
    spare = _pop_started()
    if spare is not None:
        spare.discard()
