"""Build a Binder-like environment for a student repository, as repo2docker would.

``python -m venv VENV``; ``pip install -r binder/requirements.txt``; then ``binder/postBuild``
with VENV first on PATH. Used by ``make student-dist ... --binder-venv`` and the journey tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class BinderVenvError(RuntimeError):
    """A step of the Binder-like build failed; the message holds its output."""


def binder_env(venv: Path, base: dict | None = None) -> dict:
    """Environment variables of a shell whose ``python``, ``pip`` and ``jupyter`` are VENV's."""
    env = dict(os.environ if base is None else base)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CONDA_PREFIX", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{Path(venv) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise BinderVenvError(f"`{' '.join(map(str, command))}` failed with exit code {result.returncode}:\n{tail}")
    return result


def build_binder_venv(repo: Path, venv: Path, python: str | None = None, timeout: float = 1800) -> dict:
    """Create VENV from REPO/binder; return the seconds each step took and postBuild's output."""
    repo, venv = Path(repo).resolve(), Path(venv).resolve()
    if venv.exists():
        raise BinderVenvError(f"{venv} already exists: a Binder-like environment starts empty")
    start = time.monotonic()
    _run([python or sys.executable, "-m", "venv", venv], timeout=timeout)
    env = binder_env(venv)
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-input", "-r", repo / "binder" / "requirements.txt"],
        cwd=repo,
        env=env,
        timeout=timeout,
    )
    installed = time.monotonic()
    post_build = _run(["bash", repo / "binder" / "postBuild"], cwd=repo, env=env, timeout=timeout)
    done = time.monotonic()
    return {
        "requirements": installed - start,
        "postBuild": done - installed,
        "postBuild_output": post_build.stdout + post_build.stderr,
    }
