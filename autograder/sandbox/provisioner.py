"""The sandboxed Jupyter kernel: a jupyter_client kernel provisioner, for nbclient and nbgrader.

:class:`SandboxProvisioner` is a :class:`~jupyter_client.provisioning.LocalProvisioner`
that wraps the kernel command in bwrap and keeps every guarantee :func:`.runner.run`
gives: rlimits, the tree's memory group, a wall-clock lifetime, nothing outliving
the kernel. It uses only the provisioner interface (``pre_launch``,
``launch_kernel``, ``kill``, ``cleanup``) and is registered under the entry point
``autograder-sandbox`` of ``jupyter_client.kernel_provisioners``.

:class:`SandboxedKernelManager` selects it the documented way, through the kernel
spec's ``kernel_provisioner`` metadata: its kernel spec manager names the provisioner
in every spec it hands out, and the trait only accepts that manager, so no
configuration can swap in a plain kernel.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from traitlets import Dict, Instance, Integer, List, Unicode, default

from . import tempdirs
from .bwrap import BWRAP_ENV, base_env, bwrap_argv
from .limits import Limits, drops_privileges, new_sandbox_id, prepare_dir, release_sandbox_id
from .policy import SandboxUnavailable, use_bwrap
from .tree import TreeCap, kill_group, kill_namespace, pidfd_from_info, set_rlimits

#: The provisioner's entry point name (pyproject.toml, ``jupyter_client.kernel_provisioners``).
PROVISIONER_NAME = "autograder-sandbox"

_SETTINGS = ("limits", "scratch_dir", "ro_paths", "extra_env", "runtime_bytes")


class SandboxProvisioner(LocalProvisioner):
    """Starts the kernel inside the sandbox and kills its whole tree when the kernel goes.

    The kernel has its own network namespace, so it talks to us over unix sockets
    (transport "ipc") in a private runtime directory bound into the sandbox. The
    ``cwd`` of the launch (nbclient passes the notebook's directory) becomes the
    writable scratch dir. Interrupts go as messages: a SIGINT to bwrap's process
    group would kill bwrap, and the kernel sits in a session of its own anyway. The
    whole sandbox is killed on shutdown and after ``limits.wall_seconds``, a lifetime
    limit for the kernel. Each setting not given to the provisioner itself (kernel
    spec ``config`` stanza or its own config section) is its kernel manager's trait of
    the same name, so ``SandboxedKernelManager.limits`` configures it.
    """

    limits = Instance(Limits, help="rlimits and kernel lifetime").tag(config=True)
    scratch_dir = Unicode(help="writable dir when the launch gets no cwd").tag(config=True)
    ro_paths = List(Unicode(), help="extra paths visible read-only").tag(config=True)
    extra_env = Dict(value_trait=Unicode(), help="extra environment variables").tag(config=True)
    runtime_bytes = Integer(help="size cap of the runtime dir (as root)").tag(config=True)

    @default("limits")
    def _limits_default(self):
        return getattr(self.parent, "limits", None) or Limits()

    @default("scratch_dir")
    def _scratch_dir_default(self):
        return getattr(self.parent, "scratch_dir", "")

    @default("ro_paths")
    def _ro_paths_default(self):
        return list(getattr(self.parent, "ro_paths", []))

    @default("extra_env")
    def _extra_env_default(self):
        return dict(getattr(self.parent, "extra_env", {}))

    @default("runtime_bytes")
    def _runtime_bytes_default(self):
        return getattr(self.parent, "runtime_bytes", 16 * 1024**2)

    _runtime: Path | None = None  # connection file and sockets (the kernel can write here)
    _own_scratch: Path | None = None  # a temp cwd we created, removed on cleanup
    _info_fds: tuple[int, int] | None = None
    _pidfd: int | None = None
    _watchdog: threading.Timer | None = None
    _cap: TreeCap | None = None  # the kernel tree's memory group or seccomp filter
    _memory_watch: tuple[threading.Event, threading.Thread] | None = None  # the OOM watcher, its stop
    _killed: str | None = None  # why we killed the kernel, kept once its group is gone
    _log_file = None  # the kernel's stderr: an unnamed file only this process can reach
    _uid: int | None = None  # the sandbox uid this kernel holds

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        sandboxed = use_bwrap()  # fail closed: raises SandboxUnavailable before anything starts
        km = self.parent
        scratch = kwargs.get("cwd") or self.scratch_dir
        if not scratch:
            scratch = self._own_scratch = tempdirs.mkdtemp("sandbox-kernel-cwd-")
            tempdirs.mount_cap(scratch, self.limits.disk_bytes)
        scratch = Path(scratch).resolve()
        kwargs["cwd"] = str(scratch)
        if self._runtime is None:  # kept across restarts, like the connection file
            self._runtime = tempdirs.mkdtemp("sandbox-kernel-")
            tempdirs.mount_cap(self._runtime, self.runtime_bytes)  # sockets, key
            # LocalProvisioner.pre_launch writes the connection file from these.
            km.transport = "ipc"
            km.ip = str(self._runtime / "s")  # sockets are <ip>-<port>; unix socket paths are short
            km.connection_file = str(self._runtime / "kernel.json")
        self.kernel_spec.interrupt_mode = "message"
        self._killed = None

        kwargs = await super().pre_launch(**kwargs)
        kernel_cmd = kwargs["cmd"]

        # HOME in the private /tmp keeps .ipython/.cache/.config out of the student's
        # directory; the inline backend puts figures into the notebook's outputs.
        env = {"HOME": "/tmp", "MPLBACKEND": "module://matplotlib_inline.backend_inline", **self.extra_env}
        if sandboxed:
            self._release_uid()  # a restart's old kernel is gone
            uid = self._uid = new_sandbox_id(hold=True)
            prepare_dir(scratch, uid)
            if drops_privileges():  # the kernel's own uid binds sockets and reads the key
                # No symlink followed: on a restart the old kernel had write access here.
                os.chown(self._runtime, uid, uid, follow_symlinks=False)
                os.chown(km.connection_file, uid, uid, follow_symlinks=False)
            self._info_fds = os.pipe()
            self._release_cap()  # a restart's old tree is gone: its group goes too
            # The runtime dir is a tmpfs the kernel writes: its budget covers it too.
            self._cap = TreeCap.new(self.limits, extra_bytes=self.runtime_bytes)
            kwargs["cmd"] = bwrap_argv(
                kernel_cmd,
                scratch,
                ro_paths=self.ro_paths,
                rw_paths=[self._runtime],
                env=env,
                limits=self.limits,
                info_fd=self._info_fds[1],
                uid=uid,
                seccomp_fd=self._cap.seccomp_fd,
            )
            kwargs.update(env=dict(BWRAP_ENV), pass_fds=(self._info_fds[1], *self._cap.pass_fds()))
            preexec = self._cap.preexec(self.limits)
        else:
            kwargs["env"] = base_env(scratch, {**env, "HOME": str(self._runtime)})
            preexec = functools.partial(set_rlimits, self.limits)
        # Kernel messages travel over zmq; raw fd 1/2 output only goes to a log
        # (which RLIMIT_FSIZE caps), never to the grader's terminal. The log is an
        # unnamed file outside every folder the sandbox can write: the kernel can
        # neither swap it for a FIFO or a symlink nor make us read anything but it.
        self._close_log()
        self._log_file = tempfile.TemporaryFile(dir=tempdirs.run_dir())  # noqa: SIM115
        kwargs.update(stdout=subprocess.DEVNULL, stderr=self._log_file, preexec_fn=preexec)
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        kwargs.pop("cmd", None)
        try:
            info = await super().launch_kernel(cmd, **kwargs)
        finally:
            if self._info_fds is not None:
                info_r, info_w = self._info_fds
                self._info_fds = None
                os.close(info_w)
                if self._cap is not None:
                    self._cap.close_fd()
                self._pidfd = pidfd_from_info(info_r, timeout=30)
        self.renew_lifetime()
        if self._cap is not None and self._cap.group is not None:
            stop = threading.Event()
            watcher = threading.Thread(target=self._watch_memory, args=(self._cap, stop), daemon=True)
            self._memory_watch = (stop, watcher)
            watcher.start()
        return info

    def renew_lifetime(self) -> None:
        """Start the kernel's wall-time lifetime now (at launch; again when a spare kernel is taken)."""
        self._stop_watchdog()
        self._watchdog = threading.Timer(self.limits.wall_seconds, self._wall_time_exceeded)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog.join()  # it must not race us for the pidfd
            self._watchdog = None

    def _release_uid(self) -> None:
        if self._uid is not None:
            release_sandbox_id(self._uid)
            self._uid = None

    async def kill(self, restart: bool = False) -> None:
        self._kill_tree()
        await super().kill(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        self._kill_tree()  # also after a polite shutdown: the kernel may have left children
        await super().cleanup(restart=restart)
        self._release_cap()
        if not restart and self._runtime is not None:
            tail = self._log_tail()
            self._close_log()
            # "bwrap:" lines mean the sandbox itself could not be set up (e.g. a missing
            # ro_path): the only clue to a bare "Kernel died before replying".
            level = logging.WARNING if "bwrap:" in tail else logging.DEBUG
            if tail.strip():
                self.log.log(level, "sandboxed kernel stderr (tail):\n%s", tail)
            tempdirs.remove(self._runtime)
            self._runtime = None
            self._release_uid()
            if self._own_scratch is not None:
                tempdirs.remove(self._own_scratch)
                self._own_scratch = None

    def killed_reason(self) -> str | None:
        """Why we killed the kernel (its tree's memory, its wall time), or None if we did not."""
        if self._cap is not None and self._cap.oom_killed():
            self._killed = self._cap.reason()
        return self._killed

    # ----------------------------------------------------------------- the tree

    def _watch_memory(self, cap: TreeCap, stop: threading.Event) -> None:
        """Kill the whole kernel tree once its group had an OOM kill (cgroup v1 kills only one process)."""
        while not stop.wait(0.25):
            if cap.oom_killed():
                self._killed = cap.reason()
                self.log.warning("kernel sandbox %s: killing the kernel", self._killed)
                self._kill_sandbox()
                cap.kill()
                return

    def _wall_time_exceeded(self) -> None:
        self.log.warning("kernel wall time %s s exceeded: killing it", self.limits.wall_seconds)
        self._killed = f"wall time {self.limits.wall_seconds:.0f} s exceeded"
        self._kill_sandbox()

    def _kill_sandbox(self) -> None:
        """SIGKILL the sandbox's PID 1 (so its namespace) and bwrap; the pidfd stays open for _kill_tree."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._kill_launcher()

    def _kill_launcher(self) -> None:
        """SIGKILL bwrap's (with ``off``: the kernel's) process group, if not yet reaped."""
        proc = self.process
        if proc is not None and proc.poll() is None:  # unreaped, so the pgid is still ours
            kill_group(proc.pid)

    def _kill_tree(self) -> None:
        self._stop_watchdog()
        if self._memory_watch is not None:
            stop, watcher = self._memory_watch
            stop.set()
            watcher.join()  # like the watchdog: it must not race us for the pidfd
            self._memory_watch = None
        kill_namespace(self._pidfd)
        self._pidfd = None
        self._kill_launcher()
        if self._cap is not None:
            self.killed_reason()  # latch an OOM kill before the group goes
            self._cap.kill()

    def _release_cap(self) -> None:
        if self._cap is not None:
            self.killed_reason()
            self._cap.release()
            self._cap = None

    def _log_tail(self, size: int = 2000) -> str:
        """The last ``size`` bytes of the kernel's stderr, read from our own descriptor."""
        if self._log_file is None:
            return ""
        with contextlib.suppress(OSError):
            fd = self._log_file.fileno()
            end = os.fstat(fd).st_size
            return os.pread(fd, size, max(end - size, 0)).decode(errors="replace")
        return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class SandboxKernelSpecManager(KernelSpecManager):
    """Hands out kernel specs that name :class:`SandboxProvisioner` and interrupt by message."""

    def get_kernel_spec(self, kernel_name: str):
        spec = super().get_kernel_spec(kernel_name)
        spec.metadata = {**spec.metadata, "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME}}
        spec.interrupt_mode = "message"
        if not KernelProvisionerFactory.instance().is_provisioner_available(spec):
            raise SandboxUnavailable(
                f"refusing to start a kernel: the sandbox's kernel provisioner {PROVISIONER_NAME!r} is not "
                "registered in this Python environment. No student code was run. Reinstall the package "
                "(make env, or pip install -e .) so that its jupyter_client.kernel_provisioners entry point exists."
            )
        return spec


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs inside the sandbox (:class:`SandboxProvisioner`).

    Its traits configure the provisioner; ``killed_reason()`` says why the sandbox
    killed the kernel, for the message nbgrader records.
    """

    limits = Instance(Limits, kw={}, help="rlimits and kernel lifetime").tag(config=True)
    scratch_dir = Unicode("", help="writable dir when start_kernel gets no cwd").tag(config=True)
    ro_paths = List(Unicode(), help="extra paths visible read-only").tag(config=True)
    extra_env = Dict(value_trait=Unicode(), help="extra environment variables").tag(config=True)
    runtime_bytes = Integer(16 * 1024**2, help="size cap of the runtime dir (as root)").tag(config=True)
    # Only a spec manager that names the sandbox provisioner: no configuration can swap in a plain kernel.
    kernel_spec_manager = Instance(SandboxKernelSpecManager)

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        return SandboxKernelSpecManager(data_dir=self.data_dir, parent=self)

    def killed_reason(self) -> str | None:
        """Why the sandbox killed the kernel (its tree's memory, its wall time), or None."""
        provisioner = self.provisioner
        return provisioner.killed_reason() if isinstance(provisioner, SandboxProvisioner) else None
