"""The module's book page: launch links, vendored assets, the -W build, glued numbers, and the live page.

Fast tests check configuration and the page source. Slow tests build the book
once (session fixture) with BOOK_REPO_URL naming a student repository, check every
repository link against a real student release, and load the page in headless Chromium
both from a loopback server and from disk (file://).
"""

from __future__ import annotations

import ast
import base64
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tools/ is not an installed package

from tools import book  # noqa: E402

ABOUT = ROOT / "src" / "07_optimizers" / "ABOUT.md"
PAGE = "07_optimizers/ABOUT.html"
SCREENSHOT = ROOT / "artifacts" / "book-page.png"
# The build under test points its links at a student repository, to prove one variable moves every link.
FORK_URL, FORK_BRANCH = "https://github.com/acme/optim-07", "dev"

GLUE_TEXT = re.compile(r"\{glue(?::text|:md)?\}`([^`:]+)(?::[^`]*)?`")
GLUE_FIGURE = re.compile(r"^```\{glue:figure\}\s+(\S+)", re.MULTILINE)


def about_source() -> str:
    return ABOUT.read_text(encoding="utf-8")


# Sphinx turns straight quotes into typographic ones; compare them as straight.
STRAIGHT_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def page_text(markup: str) -> str:
    """Visible text of an HTML page: entities decoded, quotes straightened, whitespace collapsed."""
    markup = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.DOTALL)
    text = html.unescape(re.sub(r"<[^>]+>", " ", markup)).translate(STRAIGHT_QUOTES)
    return re.sub(r"\s+", " ", text)


# -- fast: configuration and page source --------------------------------------------------


def test_launch_links_open_files_of_the_student_release():
    from tools import student_dist

    released = {str(rel) for _, rel in student_dist.whitelisted()}
    for relative in (book.BINDER_NOTEBOOK, book.MODULE_SOURCE):
        assert relative in released, f"a launch link opens {relative}, which the student release does not ship"
    url, branch = book.repo_settings({})
    assert (url, branch) == (book.DEFAULT_REPO_URL, book.DEFAULT_BRANCH)
    assert book.source_url(url, branch).endswith(f"/blob/{branch}/{book.MODULE_SOURCE}")
    assert book.binder_url(url, branch).endswith("labpath=modules%2F07_optimizers%2Foptimizers.ipynb")


def test_one_repository_url_drives_every_link():
    url, branch = book.repo_settings({"BOOK_REPO_URL": FORK_URL + ".git/", "BOOK_REPO_BRANCH": FORK_BRANCH})
    assert (url, branch) == (FORK_URL, FORK_BRANCH)
    assert book.source_url(url, branch) == f"{FORK_URL}/blob/dev/modules/07_optimizers/optimizers.ipynb"
    assert book.binder_url(url, branch).startswith("https://mybinder.org/v2/gh/acme/optim-07/dev?")
    with pytest.raises(ValueError, match="github.com/OWNER/NAME"):
        book.binder_url("https://gitlab.com/someone/repo", "main")


def test_npm_versions_are_pinned_and_locked():
    pins = book.pinned_versions()
    assert set(pins) == set(book.VENDOR) == {"mermaid", "mathjax"}
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly, got {version}"
        assert lock[f"node_modules/{name}"]["version"] == version
    assert pins["mathjax"].startswith("3."), "mathjax_path points at the v3 es5 bundle"


def test_copy_vendor_refuses_missing_or_stale_node_modules(tmp_path):
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"mermaid": "11.0.0"}}))
    with pytest.raises(FileNotFoundError, match="npm ci"):
        book.copy_vendor(tmp_path / "out", root=tmp_path)
    package = tmp_path / "node_modules" / "mermaid"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"version": "10.9.0"}))
    with pytest.raises(RuntimeError, match="pins 11.0.0"):
        book.copy_vendor(tmp_path / "out", root=tmp_path)


def test_page_source_loads_nothing_from_outside():
    source = about_source()
    assert source.startswith("---\nfile_format: mystnb\n")
    for forbidden in ("<script", "<audio", "<iframe", "cdn.", "slide-viewer"):
        assert forbidden not in source, f"ABOUT.md contains {forbidden!r}"


def test_answers_are_collapsed_dropdowns():
    answers = re.findall(r":::\{admonition\} Answer\n:class: (\S+)", about_source())
    assert answers == ["dropdown"] * 5


def _tab_snippets() -> dict:
    tabs = re.findall(r":::\{tab-item\} (\w+)\n```python\n(.*?)```", about_source(), re.DOTALL)
    return dict(tabs)


def test_tinytorch_tab_code_trains(monkeypatch):
    """The tab is what a student runs after exporting: here the reference build stands in for their export."""
    from content.m07_optimizers.solution import optimizers as reference

    monkeypatch.setitem(sys.modules, "tinytorch.core.optimizers", reference)
    code = _tab_snippets()["TinyTorch"]
    namespace: dict = {}
    exec(compile(code, "TinyTorch tab", "exec"), namespace)
    y = namespace["y"]
    assert namespace["loss"].item() < 0.1 * float(np.mean(y**2)), "the TinyTorch tab's loop does not fit sin(2x)"


def test_pytorch_tab_code_trains():
    pytest.importorskip("torch")
    code = _tab_snippets()["PyTorch"]
    namespace: dict = {}
    exec(compile(code, "PyTorch tab", "exec"), namespace)
    y = namespace["y"]
    assert namespace["loss"].item() < 0.1 * float((y**2).mean()), "the PyTorch tab's loop does not fit sin(2x)"


# -- slow: the real build --------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules():
    """The pinned npm packages; installs them with `npm ci` when absent."""
    pins = book.pinned_versions()
    if not all((ROOT / "node_modules" / name / "package.json").exists() for name in pins):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node_modules is missing and npm is not installed: the book needs `npm ci`")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    return ROOT / "node_modules"


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, node_modules):
    """Build once, warnings as errors, into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "BOOK_REPO_URL": FORK_URL, "BOOK_REPO_BRANCH": FORK_BRANCH}
    # The same entry point as `make book`: sphinx-build -W --keep-going -b html src OUTDIR.
    command = [sys.executable, "-m", "tools.book", str(out / "html")]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    # Sphinx writes a failing notebook cell's traceback to a separate file: show it too.
    for saved in re.findall(r"traceback has been saved in:\s*(\S+)", log):
        log += Path(saved).read_text(errors="replace")[-4000:] if Path(saved).exists() else ""
    assert result.returncode == 0, f"sphinx-build -W failed after {seconds:.1f} s:\n{log[-6000:]}"
    print(f"\nbook built in {seconds:.1f} s into {out}")
    return out / "html", log


def _glue_data(html_dir: Path) -> dict:
    # myst-nb writes the executed notebook's glue next to the html folder.
    return json.loads((html_dir.parent / "jupyter_execute" / "07_optimizers" / "ABOUT.glue.json").read_text())


@pytest.mark.slow
def test_build_passes_with_warnings_as_errors(built_book):
    html_dir, log = built_book
    assert "build succeeded" in log and "book built in" in log
    assert (html_dir / PAGE).is_file() and (html_dir / "index.html").is_file()
    # Only the pages are built: the module's Jupytext source is not a page.
    assert not list(html_dir.rglob("07_optimizers.html"))


@pytest.mark.slow
def test_every_glued_value_resolves_and_is_on_the_page(built_book):
    html_dir, _ = built_book
    glue = _glue_data(html_dir)
    source = about_source()
    markup = (html_dir / PAGE).read_text(encoding="utf-8")
    text = page_text(markup)
    used = set(GLUE_TEXT.findall(source))
    assert len(used) > 40, "the page should glue its numbers, not type them"
    assert used <= set(glue), f"glue keys used but never glued: {sorted(used - set(glue))}"
    for key in sorted(used):
        data = glue[key]["data"]
        if "text/markdown" in data:  # {glue:md}: inline code, shown without its backticks
            value = data["text/markdown"].replace("`", "")
        else:
            value = str(ast.literal_eval(data["text/plain"]))
        assert " ".join(value.split()) in text, f"{key} = {value!r} is not on the page"

    figures = GLUE_FIGURE.findall(source)
    assert figures == ["convergence_fig"]
    png = base64.b64decode(glue["convergence_fig"]["data"]["image/png"])
    shown = [html_dir / "07_optimizers" / src for src in re.findall(r'<img[^>]+src="([^"]+\.png)"', markup)]
    assert any(path.read_bytes() == png for path in shown), "the glued convergence figure is not on the page"


@pytest.mark.slow
def test_measured_numbers_are_plausible(built_book):
    glue = _glue_data(built_book[0])

    def value(key):
        return ast.literal_eval(glue[key]["data"]["text/plain"])

    assert [value(f"mem_{k}") for k in ("sgd", "momentum", "adam", "adamw")] == ["1.00x", "2.00x", "3.00x", "3.00x"]
    assert float(value("peak_naive").rstrip("x")) > float(value("peak_inplace").rstrip("x"))
    assert value("order_gap") == value("order_predicted")  # the AdamW ordering gap is lr^2 * wd * u
    assert float(value("time_ours").split()[0]) > 0


@pytest.mark.slow
def test_links_and_assets_are_local_or_configured(built_book):
    html_dir, _ = built_book
    markup = (html_dir / PAGE).read_text(encoding="utf-8")
    assert f'href="{book.binder_url(FORK_URL, FORK_BRANCH)}"' in markup
    assert f'href="{book.source_url(FORK_URL, FORK_BRANCH)}"' in markup
    assert f'href="{FORK_URL}"' in markup  # the theme's repository button
    assert book.DEFAULT_REPO_URL not in markup

    scripts = re.findall(r'<script[^>]+src="([^"]+)"', markup)
    styles = re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', markup)
    assert scripts and styles
    assert not [url for url in scripts + styles if re.match(r"(https?:)?//", url)]
    assert "../_static/vendor/mathjax/es5/tex-mml-chtml.js" in " ".join(scripts)
    assert any(src.split("?")[0] == "../_static/vendor/mermaid/mermaid.min.js" for src in scripts), scripts
    assert "import mermaid" not in markup and 'type="module"' not in markup  # blocked over file://
    for package in book.VENDOR:
        assert (html_dir / "_static" / "vendor" / package / "LICENSE").is_file()


REPO_LINK = re.compile(r'href="((?:https://github\.com/|https://mybinder\.org/)[^"]*)"')


def release_path(url: str) -> str | None:
    """The file of the student repository a GitHub or Binder link opens ('' for the repository itself)."""
    from urllib.parse import parse_qs, unquote, urlparse

    parsed = urlparse(html.unescape(url))
    if parsed.netloc == "mybinder.org":
        assert parsed.path == f"/v2/gh/acme/optim-07/{FORK_BRANCH}", url
        return unquote(parse_qs(parsed.query)["labpath"][0])
    assert url.startswith(FORK_URL), f"a GitHub link outside the student repository: {url}"
    rest = url[len(FORK_URL) :].strip("/")
    if not rest:
        return ""
    kind, branch, path = rest.split("/", 2)
    assert kind in ("blob", "tree") and branch == FORK_BRANCH, url
    return path


@pytest.mark.slow
def test_every_repository_link_opens_a_file_of_the_student_release(built_book, tmp_path):
    html_dir, _ = built_book
    release = tmp_path / "release"
    result = subprocess.run(
        [sys.executable, "-m", "tools.student_dist", str(release)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    links = {url for page in html_dir.rglob("*.html") for url in REPO_LINK.findall(page.read_text())}
    paths = {release_path(url) for url in links}
    assert {"", book.BINDER_NOTEBOOK} <= paths, links  # the repository button, Binder and the notebook
    assert any("mybinder.org" in url for url in links) and any("/blob/" in url for url in links), links
    for path in paths - {""}:
        assert (release / path).is_file(), f"a link opens {path}, which the student release does not have"
        assert not path.startswith(("src/", "source/", "autograder/")), path


# -- slow: the page in a real browser -------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def live_page(built_book, chromium):
    """The built page open in headless Chromium, served from 127.0.0.1, with every request recorded."""
    html_dir, _ = built_book
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html_dir))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    requests, errors = [], []
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{origin}/{PAGE}", wait_until="load")
    page.wait_for_load_state("networkidle")
    yield page, origin, requests, errors
    page.close()
    server.shutdown()
    server.server_close()


def wait_until_rendered(page):
    """Mermaid and MathJax both render after the load event; wait for both to finish."""
    page.wait_for_selector(".mermaid svg", state="attached", timeout=30_000)
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")


@pytest.mark.slow
def test_mermaid_diagram_renders_to_svg(live_page):
    page = live_page[0]
    page.wait_for_selector(".mermaid svg", state="attached", timeout=30_000)
    svg = page.locator(".mermaid svg").first
    assert svg.is_visible()
    labels = svg.text_content()
    for name in ("Optimizer", "SGD", "Adam", "AdamW"):
        assert name in labels


@pytest.mark.slow
def test_math_is_typeset(live_page):
    page = live_page[0]
    wait_until_rendered(page)
    assert page.locator("mjx-container").count() > 20
    assert page.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"
    assert page.locator('mjx-container[display="true"]').count() >= 5


@pytest.mark.slow
def test_answers_start_collapsed_and_open_on_click(live_page):
    page = live_page[0]
    answers = page.locator(".admonition.dropdown")
    assert answers.count() == 5
    bodies = [answers.nth(i).locator("p:not(.admonition-title)").first for i in range(5)]
    assert not any(body.is_visible() for body in bodies), "an answer is visible before it is opened"
    answers.nth(0).locator(".admonition-title").click()
    bodies[0].wait_for(state="visible", timeout=5_000)
    assert bodies[0].is_visible() and not bodies[1].is_visible()


@pytest.mark.slow
def test_tabs_switch(live_page):
    page = live_page[0]
    tab_set = page.locator(".sd-tab-set").first
    panels = tab_set.locator(".sd-tab-content")
    assert panels.nth(0).is_visible() and not panels.nth(1).is_visible()
    tab_set.locator("label.sd-tab-label").nth(1).click()
    assert panels.nth(1).is_visible() and not panels.nth(0).is_visible()
    assert "torch.optim.AdamW" in panels.nth(1).inner_text()


@pytest.mark.slow
def test_page_makes_no_external_requests(live_page):
    page, origin, requests, errors = live_page

    def outside():
        return [url for url in requests if not url.startswith((origin + "/", "http://localhost", "data:", "blob:"))]

    page.wait_for_load_state("networkidle")
    assert outside() == [], f"the page asked the network for: {outside()}"
    wait_until_rendered(page)  # rendering fetches more (mermaid chunks, MathJax fonts): check those too
    page.wait_for_load_state("networkidle")
    assert outside() == [], f"the page asked the network for: {outside()}"
    assert any("/vendor/mermaid/mermaid.min.js" in url for url in requests)
    assert any("/vendor/mathjax/" in url and "woff" in url for url in requests), "MathJax fonts not loaded locally"
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.mark.slow
def test_page_renders_mermaid_and_math_from_disk(built_book, chromium):
    """Opened as a file (file://), as the README says: no server, ES-module imports are blocked there."""
    html_dir, _ = built_book
    errors = []
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((html_dir / PAGE).as_uri(), wait_until="load")
    wait_until_rendered(page)
    labels = page.locator(".mermaid svg").first.text_content()
    typeset = page.locator("mjx-container").count()
    tex_errors = page.locator("mjx-merror").count()
    page.close()
    assert all(name in labels for name in ("Optimizer", "SGD", "Adam", "AdamW")), labels
    assert typeset > 20 and tex_errors == 0
    assert errors == [], f"JavaScript errors on the page opened from disk: {errors}"


@pytest.mark.slow
def test_screenshot_saved(live_page):
    page = live_page[0]
    wait_until_rendered(page)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # hides the focused skip link
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
