"""Sphinx configuration for the module 07 book.

Build: ``npm ci && sphinx-build -W --keep-going -b html src _build/html``.
Environment: BOOK_REPO_URL / BOOK_REPO_BRANCH name the student repository (the one
`make student-dist` writes) that the launch links open.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tools.book; tinytorch itself is installed in the venv

from tools import book  # noqa: E402

project = "TinyTorch Module 07: Optimizers"
author = "TinyTorch contributors"
copyright = "TinyTorch contributors"

extensions = [
    "myst_nb",
    "sphinx_design",
    "sphinxcontrib.mermaid",
    "sphinx_togglebutton",
]

# Only the pages: src/ also holds the module's Jupytext source and other material.
root_doc = "index"
include_patterns = ["index.md", "07_optimizers/ABOUT.md"]
exclude_patterns = ["_build", "_static", "**/.ipynb_checkpoints", "07_optimizers/07_optimizers.py"]

myst_enable_extensions = ["colon_fence", "dollarmath", "substitution"]
myst_heading_anchors = 3

# Every number on the page is measured when the book is built, so always execute.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True

# Launch links: one repository URL (the student release), paths that exist there.
REPO_URL, REPO_BRANCH = book.repo_settings()
BINDER_URL = book.binder_url(REPO_URL, REPO_BRANCH)
SOURCE_URL = book.source_url(REPO_URL, REPO_BRANCH)
myst_substitutions = {
    "binder_link": f"[Open the notebook in Binder]({BINDER_URL})",
    "source_link": f"[Read the module's notebook on GitHub]({SOURCE_URL})",
}

html_theme = "sphinx_book_theme"
html_title = "Module 07: Optimizers"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_theme_options = {
    "repository_url": REPO_URL,
    "repository_branch": REPO_BRANCH,
    "use_repository_button": True,
    # The theme's own launch button would open ABOUT.md; the page links the notebook instead.
    "launch_buttons": {},
}

# Local copies of the browser libraries (see tools/book.py): no CDN at view time.
# sphinxcontrib-mermaid only emits `<script type="module">import mermaid ...`, which
# Chromium blocks over file://; its script is replaced by mermaid's UMD build below.
mermaid_use_local = book.MERMAID_JS
mathjax_path = book.MATHJAX_JS


def _vendor_assets(app):
    if app.builder.format == "html":
        book.copy_vendor(Path(app.outdir) / "_static")


def _classic_mermaid(app, pagename, templatename, context, doctree):
    from sphinxcontrib.mermaid import mermaid

    if doctree is not None and doctree.next_node(mermaid) is not None:
        app.add_js_file(book.MERMAID_JS)
        app.add_js_file(None, body=book.MERMAID_INIT)


def setup(app):
    from sphinxcontrib.mermaid import install_js

    app.connect("builder-inited", _vendor_assets)
    for listener in list(app.events.listeners["html-page-context"]):
        if listener.handler is install_js:
            app.disconnect(listener.id)
    app.connect("html-page-context", _classic_mermaid)
