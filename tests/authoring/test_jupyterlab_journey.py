"""A student's journey in a real JupyterLab, set up from the student repository's binder/ files alone.

1. ``python -m tools.student_dist`` writes a student repository into a temporary directory;
2. a new venv gets ``pip install -r binder/requirements.txt`` and ``binder/postBuild``
   (what repo2docker does on Binder), both timed;
3. JupyterLab runs in that repository on 127.0.0.1 with a token; Debian's Chromium,
   driven by Playwright, then does what a student does:

   * opens modules/07_optimizers/optimizers.ipynb and runs all cells: the first test
     cell fails with NotImplementedError (read from the output area in the page);
   * writes ``Optimizer`` and ``SGD`` into their cells and runs them and their tests with
     Shift+Enter: "all visible tests pass". The code is put into the cell through
     JupyterLab's own model (``sharedModel.setSource``), because typing a class into
     CodeMirror 6 with auto-indent garbles it; running is through the keyboard;
   * presses nbgrader's Validate button: the result dialog lists the Adam and AdamW tests
     as failing and not the Optimizer and SGD tests;
   * exports with ``python -m tinytorch.export``: the exporter writes all of a module or
     nothing, so with Adam and AdamW still stubs it refuses and names them;
   * finishes Adam and AdamW, restarts the kernel and runs everything: the notebook's
     last cell exports; Validate now reports success;
4. a new Python process of that venv imports ``SGD`` from ``tinytorch.core.optimizers``
   and gets the student's class (a mark set in the notebook), with working numbers.

Screenshots go to artifacts/journey-*.png. Timings are printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, STUDENT_SGD_CHECK, free_port, solution_source

from tools.binder_venv import binder_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
INSTRUCTOR_NB = ROOT / "source" / "07_optimizers" / "optimizers.ipynb"
STUDENT_NB = "modules/07_optimizers/optimizers.ipynb"
SECOND = 1000  # Playwright counts milliseconds


# ----------------------------------------------------------------------------- helpers


def lab_env(venv: Path, home: Path) -> dict:
    """The venv first on PATH, and Jupyter's per-user directories empty, as in a new Binder session."""
    env = binder_env(venv)
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        ("IPYTHONDIR", "ipython"),
        ("MPLCONFIGDIR", "matplotlib"),
    ):
        env[name] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.pop("MPLBACKEND", None)
    # No news pop-up over the notebook, and no requests to the internet from the page.
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    return env


def http(url: str, method: str = "GET", data: bytes | None = None) -> tuple:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


class Lab:
    """JupyterLab started from the venv in the student repository; stopped by its own process group."""

    def __init__(self, dist: Path, venv: Path, home: Path):
        self.port, self.token = free_port(), secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "jupyterlab.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                str(venv / "bin" / "jupyter"),
                "lab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={dist}",
                "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to read and set cells
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],  # Binder runs as a user; containers here as root
            cwd=dist,
            env=lab_env(venv, home),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"JupyterLab exited:\n{self.log_text()}"
            try:
                if self.get("/api/status")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer within 120 s:\n{self.log_text()}")

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def get(self, path: str) -> tuple:
        return http(self.url(path))

    def log_text(self) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-80:])

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                http(self.url("/api/shutdown"), method="POST", data=b"")  # stops the kernels too
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGTERM)  # the group of the server this test started
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        self.log.close()


# ----------------------------------------------------------------------------- the page
class Notebook:
    """The open notebook in the page: cells are found by their nbgrader/Jupyter cell id."""

    def __init__(self, page):
        self.page = page

    def current(self) -> str:
        return "window.jupyterapp.shell.currentWidget"

    def wait_until_ready(self) -> list:
        self.page.wait_for_function(
            f"() => window.jupyterapp && {self.current()} && {self.current()}.content"
            f" && {self.current()}.content.widgets.length > 40",
            timeout=120 * SECOND,
        )
        self.wait_idle()
        # Tag every cell's DOM node with its cell id, so locators can find it.
        return self.page.evaluate(
            f"""() => {{ const cells = {self.current()}.content.widgets;
                cells.forEach(c => c.node.setAttribute('data-journey-id', c.model.id));
                return cells.map(c => c.model.id); }}"""
        )

    def wait_idle(self, timeout: float = 120) -> None:
        self.page.wait_for_function(
            f"""() => {{ const s = {self.current()}.sessionContext;
                return s.session && s.session.kernel && s.session.kernel.connectionStatus === 'connected'
                       && s.kernelDisplayStatus === 'idle'; }}""",
            timeout=timeout * SECOND,
        )

    def cell(self, cell_id: str):
        return self.page.locator(f'[data-journey-id="{cell_id}"]')

    def output(self, cell_id: str):
        return self.cell(cell_id).locator(".jp-OutputArea")

    def set_source(self, cell_id: str, code: str) -> None:
        same = self.page.evaluate(
            f"""([id, code]) => {{ const cell = {self.current()}.content.widgets.find(c => c.model.id === id);
                cell.model.sharedModel.setSource(code);
                return cell.model.sharedModel.getSource() === code; }}""",
            [cell_id, code],
        )
        assert same, f"could not set the source of {cell_id}"

    def run_with_shift_enter(self, cell_id: str) -> None:
        """Select the cell by clicking its prompt, then Shift+Enter, as a student does."""
        cell = self.cell(cell_id)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").first.click()
        active = self.page.evaluate(f"() => {self.current()}.content.activeCell.model.id")
        assert active == cell_id, f"clicking {cell_id} selected {active}"
        self.page.keyboard.press("Shift+Enter")

    def menu(self, top: str, item: str) -> None:
        self.page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        self.page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def save(self) -> None:
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(f"() => !{self.current()}.context.model.dirty", timeout=30 * SECOND)

    def validate(self):
        """Press nbgrader's Validate button; return the result dialog."""
        self.page.locator(".validate-button").click()
        dialog = self.page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for(timeout=240 * SECOND)
        return dialog


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def binder_dist(binder_repo, tmp_path):
    """A new student dist and a new venv built from its binder/ files alone (once per session, in
    tests/conftest.py), with timings."""
    assert "postBuild: tinytorch installed" in binder_repo.times["postBuild_output"]
    return binder_repo.dist, binder_repo.venv, tmp_path, binder_repo.times


def test_student_journey_in_jupyterlab(binder_dist, capsys):
    dist, venv, work, times = binder_dist
    journey = run_journey(dist, venv, work)
    timings = (
        f"binder venv: requirements {times['requirements']:.1f} s + postBuild {times['postBuild']:.1f} s "
        f"(with the dist: {times['total']:.1f} s); journey in JupyterLab: {journey:.1f} s"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "journey-timings.txt").write_text(timings + "\n")
    with capsys.disabled():
        print(f"\n[journey] {timings}")


def run_journey(dist: Path, venv: Path, work: Path) -> float:
    """The journey (steps 3 and 4 of the module docstring); returns its seconds."""
    from playwright.sync_api import expect, sync_playwright

    env = binder_env(venv)
    mark = f"journey-{secrets.token_hex(6)}"
    started = time.monotonic()
    lab = Lab(dist, venv, work / "home")
    try:
        # The server side of postBuild: Validate is served, the formgrader is not;
        # Jupytext serves a .py file as a notebook.
        assert lab.get("/formgrader")[0] == 404
        assert lab.get("/nbgrader_version?version=x")[0] == 200
        status, body = lab.get("/api/contents/tinytorch/core/tensor.py?type=notebook&content=1")
        assert status == 200 and json.loads(body)["type"] == "notebook", body[:300]

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(lab.url(f"/lab/tree/{STUDENT_NB}"), timeout=120 * SECOND)
                nb = Notebook(page)
                cell_ids = nb.wait_until_ready()
                assert {"optimizer", "test_optimizer", "sgd", "test_sgd", "adam", "adamw"} <= set(cell_ids)

                # The student's JupyterLab: a Validate button, no instructor "Nbgrader" menu.
                expect(page.locator(".validate-button")).to_be_visible()
                assert page.locator("#jp-mainmenu-nbgrader").count() == 0
                expect(page.locator("#jp-menu-panel")).not_to_contain_text("Nbgrader")
                screenshot(page, "01-opened")

                # Run All: the first test cell fails, because Optimizer is still a stub.
                nb.menu("Run", "Run All Cells")
                expect(nb.output("test_optimizer")).to_contain_text("NotImplementedError", timeout=120 * SECOND)
                nb.wait_idle()
                nb.cell("test_optimizer").scroll_into_view_if_needed()
                screenshot(page, "02-run-all-notimplemented")

                # Write Optimizer and SGD; run each and its test with Shift+Enter.
                nb.set_source("optimizer", solution_source("optimizer"))
                nb.run_with_shift_enter("optimizer")
                nb.run_with_shift_enter("test_optimizer")
                expect(nb.output("test_optimizer")).to_contain_text(
                    "Optimizer: all visible tests pass", timeout=60 * SECOND
                )
                nb.set_source("sgd", solution_source("sgd") + f'\n\n\nSGD.written_by = "{mark}"\n')
                nb.run_with_shift_enter("sgd")
                nb.run_with_shift_enter("test_sgd")
                expect(nb.output("test_sgd")).to_contain_text("SGD: all visible tests pass", timeout=60 * SECOND)
                expect(nb.output("test_optimizer")).not_to_contain_text("Error")
                nb.wait_idle()
                screenshot(page, "03-sgd-passes")

                # Validate: nbgrader saves, reruns the notebook and lists the failing test cells.
                dialog = nb.validate()
                expect(dialog.locator("#validation-message")).to_have_class(re.compile("validation-failed"))
                text = dialog.inner_text()
                assert "def test_adam():" in text and "def test_adamw():" in text, text[:2000]
                assert "NotImplementedError" in text
                assert "def test_sgd():" not in text and "def test_optimizer():" not in text, text[:2000]
                screenshot(page, "04-validate-adam-adamw-fail")
                dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
                expect(dialog).to_have_count(0)

                # Export now: all or nothing, so it refuses and names what is left. Nothing is written.
                placeholder = (dist / "tinytorch" / "core" / "optimizers.py").read_text()
                refused = subprocess.run(
                    [str(venv / "bin" / "python"), "-m", "tinytorch.export", STUDENT_NB],
                    cwd=dist,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert refused.returncode == 1, refused
                assert "Adam, AdamW still raise NotImplementedError" in refused.stderr, refused.stderr
                assert "SGD" not in refused.stderr
                assert (dist / "tinytorch" / "core" / "optimizers.py").read_text() == placeholder

                # Finish Adam and AdamW, save, restart and run everything: the last cell exports.
                for exercise, test, passed in (
                    ("adam", "test_adam", "Adam: all visible tests pass"),
                    ("adamw", "test_adamw", "AdamW: all visible tests pass"),
                ):
                    nb.set_source(exercise, solution_source(exercise))
                    nb.run_with_shift_enter(exercise)
                    nb.run_with_shift_enter(test)
                    expect(nb.output(test)).to_contain_text(passed, timeout=60 * SECOND)
                nb.save()
                nb.menu("Kernel", "Restart Kernel and Run All Cells…")
                page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
                last = cell_ids[-1]
                expect(nb.output(last)).to_contain_text("Exported", timeout=300 * SECOND)
                nb.wait_idle(timeout=300)
                exported_text = nb.output(last).inner_text()
                assert re.search(r"Exported \d+ cells to \S*tinytorch/core/optimizers\.py", exported_text), (
                    exported_text
                )
                for test, passed in (
                    ("test_optimizer", "Optimizer"),
                    ("test_sgd", "SGD"),
                    ("test_adam", "Adam"),
                    ("test_adamw", "AdamW"),
                ):
                    expect(nb.output(test)).to_contain_text(f"{passed}: all visible tests pass")
                errors = page.locator(
                    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Error"
                )
                assert errors.count() == 0, errors.all_inner_texts()
                nb.cell(last).scroll_into_view_if_needed()
                screenshot(page, "05-restart-run-all-exported")

                # The written answers are graded by people, but Validate wants every one answered.
                for cell_id in cell_ids:
                    if cell_id.startswith("written_"):
                        nb.set_source(cell_id, f"My answer for {cell_id}: the state grows with the parameters.")
                nb.save()
                dialog = nb.validate()
                expect(dialog).to_contain_text("Success! Your notebook passes all the tests.")
                screenshot(page, "06-validate-success")
                dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
            finally:
                browser.close()
    finally:
        lab.stop()
    journey = time.monotonic() - started

    # A fresh Python of the Binder venv, outside the repository, imports the student's own class.
    exported = (dist / "tinytorch" / "core" / "optimizers.py").read_text()
    assert exported.startswith("# Exported from your notebook optimizers.ipynb")
    check = STUDENT_SGD_CHECK
    outside = work / "elsewhere"
    outside.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check], cwd=outside, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(dist / "tinytorch" / "core" / "optimizers.py"), mark, "0.855"]
    return journey
