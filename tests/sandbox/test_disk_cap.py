"""Bounded disk: a sandbox that writes until failure stops at its folder's cap; the host temp dir does not grow."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.judge.hidden import PROBE_LIMITS
from autograder.sandbox import tempdirs

pytestmark = [
    pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here"),
    pytest.mark.skipif(os.geteuid() != 0, reason="size-capped tmpfs scratch needs root (see ARCHITECTURE.md)"),
]
CAP = 8 * 1024**2
# Many files, each under the per-file limit, until the disk says no.
FILL = textwrap.dedent("""
    import os, sys
    folder = sys.argv[1]
    n = 0
    try:
        while True:
            with open(os.path.join(folder, f"fill-{n}"), "wb") as f:
                f.write(b"x" * 1024**2)
            n += 1
    finally:
        print(n, flush=True)
""")


def fs_type(path: Path) -> str:
    """The filesystem mounted exactly at ``path`` (from /proc/self/mountinfo), or ""."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return fields[fields.index("-") + 1]
    return ""


def test_probe_scratch_is_capped_and_says_why():
    with tempdirs.capped_dir("probe-fill-", CAP) as scratch:
        result = sandbox.run([sys.executable, "-c", FILL, "."], scratch, PROBE_LIMITS)
        written = sum(p.stat().st_size for p in scratch.iterdir())
        assert fs_type(scratch) == "tmpfs"  # host memory within the cap, never the host temp dir's disk
    assert result.returncode != 0 and "No space left on device" in result.stderr
    assert result.killed_reason == "disk space: its writable folder (capped at 8 MiB) filled up"
    assert int(result.stdout) <= 8 and written <= CAP
    assert not scratch.exists()


def test_sandbox_tmp_is_capped_too(tmp_path):
    result = sandbox.run(
        [sys.executable, "-c", FILL, "/tmp"], tmp_path / "scratch", sandbox.Limits(file_bytes=4 * 1024**2)
    )
    assert "No space left on device" in result.stderr
    assert int(result.stdout) <= 4


def test_the_probe_uses_a_capped_scratch(monkeypatch):
    """hidden.probe_component's scratch is a tmpfs of PROBE_LIMITS.disk_bytes."""
    from autograder.judge import hidden

    seen = {}

    def spy(command, scratch, limits, **kw):
        st = os.statvfs(scratch)
        seen.update(mount=os.path.ismount(scratch), size=st.f_blocks * st.f_frsize)
        return sandbox.Result(1, "", "", False, None, False, True)

    monkeypatch.setattr(sandbox, "run", spy)
    hidden.probe_component([], "SGD")
    assert seen == {"mount": True, "size": PROBE_LIMITS.disk_bytes}


@pytest.mark.slow
def test_kernel_scratch_is_capped(tmp_path):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    from traitlets.config import Config

    config = Config({"SandboxedKernelManager": {"limits": sandbox.Limits(disk_bytes=CAP)}})
    nb = new_notebook(
        cells=[
            new_code_cell(f"import sys; sys.argv = ['x', '.']\n{FILL}"),
            new_code_cell("import os\nst = os.statvfs('.')\nprint(os.path.ismount('.'), st.f_blocks * st.f_frsize)"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb, kernel_manager_class=sandbox.SandboxedKernelManager, allow_errors=True, timeout=60, config=config
    ).execute()  # no cwd given: the manager makes its own capped one
    fill, size = nb.cells
    assert any(
        o.get("ename") == "OSError" and "No space left on device" in o.get("evalue", "") for o in fill.outputs
    ), fill.outputs
    assert size.outputs[0]["text"] == f"True {CAP}\n"
