"""The sandboxed kernel: a jupyter_client provisioner chosen through the kernel spec, and the
nbgrader preprocessor that runs nbconvert's own loop with it."""

from __future__ import annotations

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from nbformat.v4 import new_code_cell, new_notebook
from traitlets import TraitError
from traitlets.config import Config

from autograder import sandbox
from autograder.pipeline.execute import SandboxedExecute
from autograder.sandbox.provisioner import PROVISIONER_NAME, SandboxProvisioner

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(*sources: str):
    nb = new_notebook(cells=[new_code_cell(source) for source in sources])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def test_every_kernel_spec_names_the_sandbox_provisioner():
    km = sandbox.SandboxedKernelManager(kernel_name="python3")
    spec = km.kernel_spec
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == PROVISIONER_NAME
    assert spec.interrupt_mode == "message"  # a SIGINT to bwrap's group would end the sandbox
    # jupyter_client finds the provisioner through its entry point (pyproject.toml).
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance("k", spec, parent=km)
    assert isinstance(provisioner, SandboxProvisioner)
    assert provisioner.limits is km.limits  # the manager's traits configure it


def test_no_plain_kernel_spec_manager_can_be_given():
    km = sandbox.SandboxedKernelManager(kernel_name="python3")
    with pytest.raises(TraitError):
        km.kernel_spec_manager = KernelSpecManager()


@pytest.mark.slow
def test_a_configured_plain_kernel_manager_still_runs_sandboxed(tmp_path):
    """nbconvert's preprocess re-reads the config: a kernel_manager_class there must not unsandbox the kernel."""
    host_only = tmp_path / "host-only.txt"  # under the host's /tmp: the sandbox has a private one
    host_only.write_text("visible")
    folder = tmp_path / "submission"
    folder.mkdir()
    config = Config({"SandboxedExecute": {"kernel_manager_class": AsyncKernelManager}})
    nb, _ = SandboxedExecute(config=config, timeout=40).preprocess(
        notebook(f"import os; print(os.path.exists({str(host_only)!r}))"), {"metadata": {"path": str(folder)}}
    )
    assert nb.cells[0].outputs[0]["text"] == "False\n"


@pytest.mark.slow
def test_widget_state_reaches_the_notebook_metadata(tmp_path):
    """nbconvert's loop stores widget state (the copied loop this preprocessor had did not)."""
    nb, _ = SandboxedExecute(timeout=40).preprocess(
        notebook("import ipywidgets; ipywidgets.IntSlider(value=7)"), {"metadata": {"path": str(tmp_path)}}
    )
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert [model["state"]["value"] for model in state.values() if model["model_name"] == "IntSliderModel"] == [7]


@pytest.mark.slow
def test_a_killed_kernel_stops_the_notebook_not_the_batch(tmp_path):
    nb, _ = SandboxedExecute(timeout=40).preprocess(
        notebook("print('before')", "import os; os._exit(3)", "print('never')"), {"metadata": {"path": str(tmp_path)}}
    )
    assert nb.cells[0].outputs[0]["text"] == "before\n"
    assert nb.cells[1].outputs[-1]["ename"] == "AutograderStopped"
    assert nb.cells[1].outputs[-1]["evalue"].startswith("the kernel died")
    assert nb.cells[2].outputs[0]["text"].startswith("[not run by the autograder: the kernel died")


def test_the_kernel_refuses_to_start_without_the_sandbox(monkeypatch, tmp_path):
    """Defence in depth: a caller that skipped check() still gets no kernel outside bwrap."""
    import asyncio

    monkeypatch.delenv("AUTOGRADER_SANDBOX", raising=False)
    monkeypatch.setattr(sandbox.policy, "_probe", lambda: "bwrap not found on PATH")
    km = sandbox.SandboxedKernelManager(kernel_name="python3")
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        asyncio.run(km.start_kernel(cwd=str(tmp_path)))
    assert not km.has_kernel


def test_an_unregistered_provisioner_is_a_clear_refusal(monkeypatch):
    """An environment installed before the entry point existed says how to fix it."""
    import jupyter_client.provisioning.factory as factory

    monkeypatch.delitem(KernelProvisionerFactory.provisioners, PROVISIONER_NAME, raising=False)
    monkeypatch.setattr(factory, "entry_points", lambda **kw: [])
    km = sandbox.SandboxedKernelManager(kernel_name="python3")
    with pytest.raises(sandbox.SandboxUnavailable, match="pip install -e"):
        km.kernel_spec  # noqa: B018


@pytest.mark.slow
def test_a_timed_out_cell_leaves_nothing_polling(tmp_path):
    """nbclient's poller of a timed-out cell would be destroyed pending later (asyncio prints that
    on a Dask worker's console): the cell's pollers end with the cell."""
    import asyncio

    from jupyter_core.utils import ensure_event_loop

    nb, _ = SandboxedExecute(timeout=2).preprocess(
        notebook("x = 1", "while True: pass", "y = 2"), {"metadata": {"path": str(tmp_path)}}
    )
    assert nb.cells[1].outputs[-1]["evalue"] == "cell 1 ran longer than 2 s"
    assert [t for t in asyncio.all_tasks(ensure_event_loop()) if not t.done()] == []
