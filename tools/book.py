"""Settings and assets for the module's book (``src/conf.py`` imports this).

Two jobs, kept out of conf.py so tests can import them without Sphinx:

* launch links (Binder, "read the notebook") are derived from ONE repository URL,
  ``BOOK_REPO_URL`` (and ``BOOK_REPO_BRANCH``): the *student* repository that
  ``make student-dist`` writes, never this course repository, so every link names
  a file of the student release (tests/authoring/test_book.py checks each one);
* mermaid and MathJax come from ``node_modules`` (installed by ``npm ci`` from
  package-lock.json) and are copied into the build's ``_static/vendor`` with
  their licences, so a built page never asks a CDN for anything. Both load as
  classic scripts (mermaid's UMD build, MathJax's es5 bundle), so the page also
  renders opened from disk (``file://``), where ES-module imports are blocked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote, urlparse

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_REPO_URL = "https://github.com/tinytorch/optimizers-07"
DEFAULT_BRANCH = "main"

# Paths in the student release (`make student-dist`) that the links open; tests check
# they exist there. Students read the module's code in its notebook.
BINDER_NOTEBOOK = "modules/07_optimizers/optimizers.ipynb"
MODULE_SOURCE = BINDER_NOTEBOOK

# Vendored copies, relative to the build's _static/ (what conf.py points at).
MERMAID_JS = "vendor/mermaid/mermaid.min.js"
MATHJAX_JS = "vendor/mathjax/es5/tex-mml-chtml.js"
# Runs after mermaid.min.js (a classic script that defines the global `mermaid`).
MERMAID_INIT = 'mermaid.initialize({startOnLoad: true, securityLevel: "strict"});'

# npm package -> [(path inside the package, path under _static/vendor/<package>)].
VENDOR = {
    "mermaid": [
        ("dist/mermaid.min.js", "mermaid.min.js"),  # the UMD build: one file, no imports
        ("LICENSE", "LICENSE"),
    ],
    "mathjax": [
        ("es5", "es5"),  # MathJax loads its fonts and extensions relative to itself
        ("LICENSE", "LICENSE"),
    ],
}


def repo_settings(environ=os.environ) -> tuple[str, str]:
    """(repository URL, branch) from BOOK_REPO_URL / BOOK_REPO_BRANCH, with defaults."""
    url = environ.get("BOOK_REPO_URL") or DEFAULT_REPO_URL
    url = url.rstrip("/").removesuffix(".git")
    return url, environ.get("BOOK_REPO_BRANCH") or DEFAULT_BRANCH


def source_url(repo_url: str, branch: str, path: str = MODULE_SOURCE) -> str:
    return f"{repo_url}/blob/{branch}/{path}"


def binder_url(repo_url: str, branch: str, path: str = BINDER_NOTEBOOK) -> str:
    """mybinder.org link that opens ``path`` in JupyterLab (GitHub repositories only)."""
    parsed = urlparse(repo_url)
    owner_name = parsed.path.strip("/")
    if parsed.netloc != "github.com" or owner_name.count("/") != 1:
        raise ValueError(f"BOOK_REPO_URL must look like https://github.com/OWNER/NAME, got {repo_url!r}")
    return f"https://mybinder.org/v2/gh/{owner_name}/{branch}?labpath={quote(path, safe='')}"


def pinned_versions(root: Path = ROOT) -> dict:
    return json.loads((root / "package.json").read_text())["dependencies"]


def copy_vendor(static_dir: Path, root: Path = ROOT) -> list[Path]:
    """Copy the pinned npm assets into ``static_dir/vendor``; return the files written.

    Fails (rather than falling back to a CDN) when ``npm ci`` has not been run or
    node_modules holds another version than package.json pins.
    """
    written = []
    for package, pin in pinned_versions(root).items():
        package_dir = root / "node_modules" / package
        manifest = package_dir / "package.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} is missing: run `npm ci` in {root} before building the book")
        installed = json.loads(manifest.read_text())["version"]
        if installed != pin:
            raise RuntimeError(f"node_modules has {package} {installed} but package.json pins {pin}: run `npm ci`")
        for source, target in VENDOR[package]:
            src, dest = package_dir / source, Path(static_dir) / "vendor" / package / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                # Source maps are large and only help debugging the libraries themselves.
                shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.map"))
                written.extend(p for p in dest.rglob("*") if p.is_file())
            else:
                shutil.copy2(src, dest)
                written.append(dest)
    return written


def build(outdir: Path = ROOT / "_build" / "html") -> int:
    """``sphinx-build -W --keep-going -b html src OUTDIR``; returns its exit status."""
    from sphinx.cmd.build import build_main

    return build_main(["-W", "--keep-going", "-b", "html", str(ROOT / "src"), str(outdir)])


if __name__ == "__main__":  # `make book`: python -m tools.book [OUTDIR]
    import sys
    import time

    start = time.perf_counter()
    status = build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html")
    print(f"book {'built' if status == 0 else 'FAILED'} in {time.perf_counter() - start:.1f} s")
    sys.exit(status)
