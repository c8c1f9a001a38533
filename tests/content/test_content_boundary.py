"""The engine knows no course module, and the sandboxed probe gets only the content's probe extension."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from autograder.judge import content, hidden

ROOT = Path(__file__).resolve().parents[2]
MODULE_WORDS = re.compile(r"sgd|adam|07_optimizers|momentum|betas", re.IGNORECASE)
CLASS_NAME = re.compile(r"\bOptimizer\b")


def module_names_in(folder: Path) -> dict:
    """{relative path: [lines]} of every engine text file naming a module or one of its classes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        lines = [line.strip() for line in text.splitlines() if MODULE_WORDS.search(line) or CLASS_NAME.search(line)]
        if lines:
            found[path.relative_to(folder).as_posix()] = lines
    return found


def test_the_engine_names_no_module_and_no_optimizer():
    found = module_names_in(ROOT / "autograder")
    assert not found, f"the engine names a module: {found}"


def test_the_content_is_found_through_its_entry_point():
    assert "07_optimizers" in content.assignments()
    module = content.load("07_optimizers")
    assert isinstance(module, content.ModuleContent) and module.__name__ == "content.m07_optimizers"
    assert content.only() is module
    with pytest.raises(content.ContentError, match="no content for assignment '08_nothing'"):
        content.load("08_nothing")


def imported_modules(path: Path) -> set:
    """Every module a file imports, at the top or inside a function ('.' prefix: relative)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_the_probe_imports_only_the_stdlib_numpy_and_ipythons_parser():
    allowed = set(sys.stdlib_module_names) | {"numpy", "IPython"}
    for path in (ROOT / "autograder" / "probe").glob("*.py"):
        foreign = {n for n in imported_modules(path) if not n.startswith(".") and n.split(".")[0] not in allowed}
        assert not foreign, f"{path.name} imports {foreign}: the probe runs in the sandbox with stdlib + numpy"


def test_the_probe_extension_imports_no_solution_and_no_reference_data():
    for _, path in content.only().PROBE_EXTENSIONS:
        names = imported_modules(path)
        allowed = [
            n
            for n in names
            if n.split(".")[0] in ("numpy", "__future__")
            or n.startswith("autograder.probe")
            or n == "tinytorch.core.tensor"
        ]
        assert set(allowed) == names, f"{path.name} imports {names - set(allowed)}"


def test_the_probe_runtime_holds_the_probe_and_its_extension_only():
    module = content.only()
    runtime = hidden.runtime_dir(module)
    files = {p.relative_to(runtime).as_posix() for p in runtime.rglob("*") if p.is_file()}
    probe = {f"autograder/probe/{p.name}" for p in (ROOT / "autograder" / "probe").glob("*.py")}
    extensions = {f"{name.replace('.', '/')}.py" for name, _ in module.PROBE_EXTENSIONS}
    packages = {
        ".".join(name.split(".")[:k]) for name, _ in module.PROBE_EXTENSIONS for k in range(1, name.count(".") + 1)
    }
    stubs = {"autograder/__init__.py"} | {f"{package.replace('.', '/')}/__init__.py" for package in packages}
    assert {f for f in files if not f.startswith("tinytorch/")} == probe | extensions | stubs
    assert all((runtime / stub).read_text() == "" for stub in stubs)
    assert not [f for f in files if re.search(r"solution|reference|\.json$|\.md$", f)]
