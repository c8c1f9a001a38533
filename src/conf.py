"""Sphinx configuration for the module 07 book.

Build: ``npm ci && sphinx-build -W --keep-going -b html src _build/html``.
Environment: BOOK_REPO_URL / BOOK_REPO_BRANCH choose where the launch links point.
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

# Launch links: one repository URL, paths that exist in this repository.
REPO_URL, REPO_BRANCH = book.repo_settings()
BINDER_URL = book.binder_url(REPO_URL, REPO_BRANCH)
SOURCE_URL = book.source_url(REPO_URL, REPO_BRANCH)
myst_substitutions = {
    "binder_link": f"[Open the notebook in Binder]({BINDER_URL})",
    "source_link": f"[Read the module source on GitHub]({SOURCE_URL})",
}

html_theme = "sphinx_book_theme"
html_title = "Module 07: Optimizers"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_theme_options = {
    "repository_url": REPO_URL,
    "repository_branch": REPO_BRANCH,
    "path_to_docs": "src",
    "use_repository_button": True,
    # The theme's own launch button would open ABOUT.md; the page links the notebook instead.
    "launch_buttons": {},
}

# Local copies of the browser libraries (see tools/book.py): no CDN at view time.
mermaid_use_local = book.MERMAID_JS
mathjax_path = book.MATHJAX_JS


def _vendor_assets(app):
    if app.builder.format == "html":
        book.copy_vendor(Path(app.outdir) / "_static")


def setup(app):
    app.connect("builder-inited", _vendor_assets)
