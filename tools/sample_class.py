"""Generate the sample class: student notebooks made from small snippets, with expected grades.

``python -m tools.sample_class DEST`` writes ``DEST/submitted/<name>/07_optimizers/optimizers.ipynb``
for every case below and ``DEST/expected.json`` with each case's expected component scores
(``make sample-class`` writes them to ``demo/``, a course of its own, never the repository's ``submitted/``)
and diagnoses. Cases: correct alternatives, one per catalogued misconception, hostile code
(each attack would visibly change the score if it worked) and files that are not notebooks.
Each entry of ``expected.json`` says whether it is an ``attack``: those may only be graded
in the sandbox (``make demo`` leaves them out when bubblewrap is missing).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat

from autograder.arrival.notebook import grade_id
from autograder.judge.checks import judge_component
from content.m07_optimizers import COMPONENTS
from content.m07_optimizers.misconceptions import VARIANTS, apply
from tinytorch.export import without_markers

from .reference import load, run_cells

ROOT = Path(__file__).resolve().parent.parent
STUDENT = ROOT / "modules" / "07_optimizers" / "optimizers.ipynb"
SOURCE = ROOT / "source" / "07_optimizers" / "optimizers.ipynb"
CELL = {"Optimizer": "optimizer", "SGD": "sgd", "Adam": "adam", "AdamW": "adamw"}
ATTACK_PREFIX = "hostile-"  # every case named so is an attack on the grader
NETWORK_PORT = 47807  # the end-to-end test listens here; a connection means the sandbox leaked

# -- snippets: edits of the reference cells -----------------------------------------------------

NAIVE_SGD_STEP = '''        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad, dtype=p.data.dtype)
            g = g + self.weight_decay * p.data
            if self.momentum:
                if self.momentum_buffers[i] is None:
                    self.momentum_buffers[i] = np.zeros_like(p.data)
                self.momentum_buffers[i] = self.momentum * self.momentum_buffers[i] + g
                g = self.momentum_buffers[i]
            p.data = (p.data - self.lr * g).astype(p.data.dtype)   # a new array, but float32 as before
        self.step_count += 1
'''
NAIVE_ADAM_STEP = '''        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad, dtype=p.data.dtype)
            g = self.adjusted_gradient(g, p.data)
            if self.m_buffers[i] is None:
                self.m_buffers[i] = np.zeros_like(p.data)
                self.v_buffers[i] = np.zeros_like(p.data)
            self.m_buffers[i] = self.beta1 * self.m_buffers[i] + (1 - self.beta1) * g
            self.v_buffers[i] = self.beta2 * self.v_buffers[i] + (1 - self.beta2) * g ** 2
            m_hat = self.m_buffers[i] / (1 - self.beta1 ** self.step_count)
            v_hat = self.v_buffers[i] / (1 - self.beta2 ** self.step_count)
            self.apply_update(p.data, m_hat / (np.sqrt(v_hat) + self.eps))
'''


def _method_body(code: str, cls: str, method: str) -> str:
    """The body text of ``cls.method`` inside a cell (between the docstring and the next def)."""
    start = code.index(f"def {method}(", code.index(f"class {cls}"))
    doc_end = code.index('"""', code.index('"""', start) + 3) + 4
    nxt = code.find("\n    def ", doc_end)
    return code[doc_end : nxt + 1 if nxt != -1 else len(code)]


def replace_body(code: str, cls: str, method: str, body: str) -> str:
    old = _method_body(code, cls, method)
    return code.replace(old, body if body.endswith("\n") else body + "\n", 1)


def prepend_to_body(code: str, cls: str, method: str, lines: str) -> str:
    old = _method_body(code, cls, method)
    return code.replace(old, lines + old, 1)


SABOTAGE = "        self.lr = self.lr * 3  # the attack worked: this run now scores less\n"

ATTACKS = {
    "hostile-patched-asserts": (  # a wrong SGD that would pass if comparisons were patched
        "import numpy.testing\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
        "np.isclose = lambda *a, **k: True\n"
    ),
    "hostile-silenced-tracebacks": (
        "import sys\ntry:\n    ip = get_ipython()\n    ip.showtraceback = lambda *a, **k: None\n"
        "    ip._showtraceback = lambda *a, **k: None\n    ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
        "except NameError:\n    pass\nsys.excepthook = lambda *a: None\nsys.stderr = open('/dev/null', 'w')\n"
    ),
}


def _read_attack(root: Path) -> str:
    return f'''        import glob, os
        targets = glob.glob("/tmp/autograde-course-*/course/source/*/*.ipynb") + [
            "{root}/source/07_optimizers/optimizers.ipynb", "{root}/demo/source/07_optimizers/optimizers.ipynb",
            "{root}/content/m07_optimizers/reference/Adam.json",
            "{root}/content/m07_optimizers/solution/optimizers.py", "../../../source/07_optimizers/optimizers.ipynb",
            os.path.expanduser("~/.bashrc"), "/root/.bashrc"]
        for target in targets:
            try:
                with open(target, "rb") as f:
                    if f.read(1):
{SABOTAGE.replace("        ", "                        ", 1)}            except OSError:
                pass
'''


def _write_attack(root: Path) -> str:
    return f'''        import glob, sqlite3
        for db in glob.glob("/tmp/autograde-course-*/course/gradebook.db") + ["{root}/gradebook.db",
                                                                           "{root}/demo/gradebook.db"]:
            try:
                con = sqlite3.connect(db)
                con.execute("UPDATE grade SET auto_score = max_score")
                con.commit()
            except Exception:
                pass
        for target in ["{root}/autograder/PWNED", "{root}/gradebook.db"]:
            try:
                with open(target, "a") as f:
                    f.write("pwned")
{SABOTAGE.replace("        ", "                ", 1)}            except OSError:
                pass
'''


NETWORK_ATTACK = f'''        import socket
        try:
            socket.create_connection(("127.0.0.1", {NETWORK_PORT}), timeout=1).close()
{SABOTAGE.replace("        ", "            ", 1)}        except OSError:
            pass
'''
FRAME_PEEK = '''        import sys
        frame = sys._getframe(1)
        while frame is not None:
            for name, value in list(frame.f_locals.items()):
                if "expect" in name.lower() and isinstance(value, (list, dict)):
                    self._peeked = value          # found answers: a broken step would now cheat
            frame = frame.f_back
        return None  # a broken step: does nothing, unless the peeking found the answers
'''
BACKGROUND = '''        import subprocess
        if not getattr(self, "_spawned", False):
            self._spawned = True
            subprocess.Popen(["sleep", "617"], start_new_session=True)
'''
FLOOD = '''        print("x" * 1_000_000)
        import sys
        print("y" * 100_000, file=sys.stderr)
'''
NOISY = '''        import sys, warnings
        print("debug: stepping", file=sys.stderr)
        warnings.warn("this warning must not cost points")
        print("an ordinary print")
'''


def never_steps(component: str) -> float:
    """Points of the component's checks that only construct the optimizer (validation): a probe
    killed in step() keeps them, each check after a kill runs in a fresh sandbox."""
    from autograder.judge.checks import checks_for

    return float(sum(c.points for c in checks_for(component) if all(s["kind"] == "validation" for s in c.scenarios)))


def cases(root: Path = ROOT) -> list:
    """[(name, edits, twin, fixed)]: ``edits`` {cell id: code -> code} make the submission.

    Expected grades come from judging ``twin`` in this process: the same code without
    its attack (hostile code never runs here; None means the submission itself), then
    ``fixed`` sets the score of components whose probe is killed (os._exit, an endless loop)
    in step(): a kill costs only the checks that step, so what is left is ``never_steps``.
    """
    out = [
        ("correct-reference", {}, None, {}),
        (
            "correct-naive-allocating",
            {
                "sgd": lambda c: replace_body(c, "SGD", "step", NAIVE_SGD_STEP),
                "adam": lambda c: replace_body(c, "Adam", "step", NAIVE_ADAM_STEP),
            },
            None,
            {},
        ),
        ("correct-pytorch-adamw-order", {"adamw": lambda c: apply(c, VARIANTS[-1])}, None, {}),
        (
            "correct-noisy-stderr",
            {
                "sgd": lambda c: prepend_to_body(c, "SGD", "step", NOISY),
                "adam": lambda c: prepend_to_body(c, "Adam", "step", NOISY),
            },
            {},
            {},
        ),
    ]
    seen = set()
    for variant in VARIANTS:
        if not variant.accepted and variant.slug not in seen:
            seen.add(variant.slug)
            out.append(
                (f"bug-{variant.slug}", {CELL[variant.component]: (lambda v: lambda c: apply(c, v))(variant)}, None, {})
            )

    def attack(cls: str, text: str, method: str = "step") -> dict:
        return {CELL[cls]: lambda c: prepend_to_body(c, cls, method, text)}

    def broken(cls: str) -> dict:
        return {CELL[cls]: lambda c: replace_body(c, cls, "step", "        self.step_count += 1\n")}

    out += [
        (
            "hostile-patched-asserts",
            {"sgd": lambda c: ATTACKS["hostile-patched-asserts"] + broken("SGD")["sgd"](c)},
            broken("SGD"),
            {},
        ),
        (
            "hostile-silenced-tracebacks",
            {"adam": lambda c: ATTACKS["hostile-silenced-tracebacks"] + broken("Adam")["adam"](c)},
            broken("Adam"),
            {},
        ),
        (
            "hostile-frame-peek",
            {"sgd": lambda c: replace_body(c, "SGD", "step", FRAME_PEEK)},
            {"sgd": lambda c: replace_body(c, "SGD", "step", "        return None\n")},
            {},
        ),
        ("hostile-read-course-files", attack("SGD", _read_attack(root)), {}, {}),
        ("hostile-write-gradebook", attack("SGD", _write_attack(root)), {}, {}),
        (
            "hostile-os-exit-adamw",
            attack("AdamW", "        import os\n        os._exit(0)\n", "apply_update"),
            {},
            {"AdamW": never_steps("AdamW")},
        ),
        (
            "hostile-infinite-loop-sgd",
            attack(
                "SGD",
                "        while True:\n            try:\n                pass\n"
                "            except BaseException:\n                pass\n",
            ),
            {},
            {"SGD": never_steps("SGD")},
        ),
        (
            "hostile-huge-allocation",
            attack("Adam", "        self._hog = bytearray(6 * 1024**3)\n"),
            attack("Adam", "        raise MemoryError()\n"),
            {},
        ),
        ("hostile-output-flood", attack("SGD", FLOOD), {}, {}),
        ("hostile-background-process", attack("SGD", BACKGROUND), {}, {}),
        ("hostile-network", attack("SGD", NETWORK_ATTACK), {}, {}),
        (
            "hostile-sys-exit",
            attack("SGD", "        import sys\n        sys.exit(0)\n"),
            attack("SGD", "        raise SystemExit(0)\n"),
            {},
        ),
    ]
    out += probe_output_cases(root)
    return out


# -- the probe's results file and the structure it reports (issue 9 item 3, issue 11 memory) ------
# Top-level code in a solution cell runs in the probe process, so it can replace the
# results file at exit; an ndarray subclass can lie about its dtype. None may raise a score.

LIAR = """
class Float32Looking(np.ndarray):
    \"\"\"Holds float64, says float32.\"\"\"

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def nbytes(self):
        return self.size * 4

    @property
    def itemsize(self):
        return 4

"""
HIDING_DICT = """    @property
    def __dict__(self):
        return {"params": self.params, "momentum_buffers": self.momentum_buffers}

"""
CACHED_ARRAYS = (
    "        self.betas = np.asarray(betas)                # 16 bytes of hyperparameters\n"
    "        self._lr_array = np.array([lr])               # a cached scalar array\n"
    "        self._t = np.zeros(())                        # a 0-d counter\n"
)
FORGE_RESULTS = """
import atexit as _atexit, os as _os

def _forge_results():
    if "sgd-plain" not in open("spec.json").read():
        return                           # only the SGD probe's results are replaced
{body}
_atexit.register(_forge_results)
"""
# A results file the grader must refuse before parsing: one line of 2 MiB of "[", nesting
# without end, which a recursive parser would follow.
RESULTS_BOMB = """    with open("out.json", "w") as f:
        f.write("[" * 2**21)
"""
FORGED_LABELS = """    import json as _json
    spec = open("spec.json").read()
    out = []
    for n, line in enumerate(open("out.json.real").read().splitlines()):
        record = _json.loads(line)
        for k, pair in enumerate(record.get("observations", [])):
            if (n + k) % 2:
                pair[0] = spec[n + k:n + k + 20000]                      # the hidden inputs as a label
            elif isinstance(pair[1], str):
                pair[1] = spec[n + k:n + k + 999]                        # and as a message
        out.append(_json.dumps(record))
    open("out.json", "w").write("\\n".join(out) + "\\n")
"""


def _forging(body: str) -> dict:
    return {"sgd": lambda c: c + FORGE_RESULTS.format(body=body)}


def probe_output_cases(root: Path = ROOT) -> list:
    """Cases for the probe's output and structure; the forgeries cost SGD its points, nothing else."""
    lying = {
        "sgd": lambda c: (
            c.replace("class SGD(Optimizer):", LIAR + "class SGD(Optimizer):", 1)
            .replace(
                "self.momentum_buffers[i] = np.zeros_like(param.data)",
                "self.momentum_buffers[i] = Float32Looking(param.data.shape, dtype=np.float64)\n"
                "                self.momentum_buffers[i].fill(0)",
                1,
            )
            .replace("    def has_momentum(self)", HIDING_DICT + "    def has_momentum(self)", 1)
        )
    }
    cached = {
        "adam": lambda c: c.replace(
            "        self.weight_decay = weight_decay\n",
            "        self.weight_decay = weight_decay\n" + CACHED_ARRAYS,
            1,
        )
    }
    host_file = f"    _os.remove('out.json')\n    _os.symlink({str(root / 'source/07_optimizers/optimizers.ipynb')!r}, 'out.json')\n"
    labels = '    _os.replace("out.json", "out.json.real")\n' + FORGED_LABELS
    return [
        ("correct-adam-cached-arrays", cached, None, {}),
        ("hostile-lying-dtype", lying, None, {}),
        ("hostile-results-bomb", _forging("    _os.remove('out.json')\n" + RESULTS_BOMB), {}, {"SGD": 0.0}),
        ("hostile-results-symlink", _forging(host_file), {}, {"SGD": 0.0}),
        ("hostile-results-labels", _forging(labels), {}, {"SGD": 0.0}),
    ]


def fill(student_nb, source_nb, edits: dict):
    """The student notebook with every solution cell answered (reference code, then the edits)."""
    nb = copy.deepcopy(student_nb)
    reference = {grade_id(c): c.source for c in source_nb.cells if grade_id(c)}
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid and cell.metadata["nbgrader"].get("solution"):
            code = without_markers(reference[gid])
            cell.source = edits[gid](code) if gid in edits else code
    return nb


def expected_scores(nb, source_nb) -> dict:
    """Component scores the trusted judge gives this notebook's code, run in this process."""
    from autograder.arrival.notebook import graded_code

    cells = graded_code(source_nb, nb)
    ref = load()
    scores = {}
    for component in COMPONENTS:
        results = judge_component(component, run_cells(cells, component), ref)
        scores[component] = {
            "score": float(sum(r.score for r in results)),
            "diagnoses": sorted({r.diagnosis for r in results if r.diagnosis}),
        }
    return scores


BROKEN = {
    "broken-empty-file": b"",
    "broken-corrupt-json": b'{"cells": [{"cell_type": "code", "source": "import num',
    "broken-json-not-a-notebook": b'{"name": "optimizers", "answers": [1, 2, 3]}',
}


def write(dest: Path, root: Path = ROOT) -> dict:
    """Write every submission and ``expected.json``; return the expectations."""
    student = nbformat.read(STUDENT, as_version=4)
    source = nbformat.read(SOURCE, as_version=4)
    expected = {}
    for name, edits, twin, fixed in cases(root):
        nb = fill(student, source, edits)
        _save(dest, name, nb)
        judged = expected_scores(nb if twin is None else fill(student, source, twin), source)
        for component, score in fixed.items():
            judged[component] = {"score": score, "diagnoses": []}
        expected[name] = {"components": judged, "error": False}
    expected.update(_structure_attacks(dest, student, source))
    expected.update(_corpus_styles(dest, student, source))
    for name, raw in BROKEN.items():
        _path(dest, name).parent.mkdir(parents=True, exist_ok=True)
        _path(dest, name).write_bytes(raw)
        expected[name] = {"components": {c: {"score": 0.0, "diagnoses": []} for c in COMPONENTS}, "error": True}
    for name, case in expected.items():  # one rule for every block above: the demo reads it
        case["attack"] = is_attack(name)
    (dest / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected


def is_attack(name: str) -> bool:
    """Hostile code or structure: only ever graded inside the sandbox."""
    return name.startswith(ATTACK_PREFIX)


def _path(dest: Path, name: str) -> Path:
    return dest / "submitted" / name / "07_optimizers" / "optimizers.ipynb"


def _save(dest: Path, name: str, nb) -> None:
    _path(dest, name).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, _path(dest, name))


def _structure_attacks(dest: Path, student, source) -> dict:
    """Attacks on the notebook's metadata and cells, on top of a zero-grad bug they try to hide."""
    base = fill(student, source, {"optimizer": lambda c: apply(c, next(v for v in VARIANTS if v.slug == "zero-grad"))})
    raised, renamed, deleted = (copy.deepcopy(base) for _ in range(3))
    for cell in raised.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata["nbgrader"]["points"] = 1000
    for cell in renamed.cells:
        if grade_id(cell) == "test_optimizer":
            cell.metadata["nbgrader"].update(grade_id="my_own_test", points=500)
            cell.source = "print('all good')"
    deleted.cells = [c for c in deleted.cells if grade_id(c) != "test_optimizer"]
    judged = expected_scores(base, source)
    out = {}
    for name, nb in (
        ("hostile-raised-points", raised),
        ("hostile-changed-grade-ids", renamed),
        ("hostile-deleted-test-cell", deleted),
    ):
        _save(dest, name, nb)
        out[name] = {"components": judged, "error": False}
    return out


# -- student styles from the variant corpus (tools/corpus.py) ---------------------------------
# Helper cells the student added, own-step AdamW, a crash on None, float64 that spreads to the
# parameters, an Adam bug AdamW inherits. ``expected.json`` also lists the slugs each must name.

CORPUS_STYLES = {
    "style-correct-b-helper-cells": "correct-b",
    "style-correct-a-own-adamw": "correct-a-own-adamw",
    "style-bug-b-none-grad-crash": "bug-b-adam-none-grad-not-skipped",
    "style-bug-b-state-dtype-params-float64": "bug-b-adam-state-dtype",
    "style-bug-b-own-adamw-step-count-per-param": "bug-b-own-adamw-step-count-per-param",
    "style-bug-a-eps-inside-sqrt-inherited": "bug-a-adam-eps-inside-sqrt",
}


def _corpus_styles(dest: Path, student, source) -> dict:
    from .corpus import entries, notebook

    by_name = {e.name: e for e in entries()}
    out = {}
    for name, entry_name in CORPUS_STYLES.items():
        entry = by_name[entry_name]
        nb = notebook(entry, student, source)
        _save(dest, name, nb)
        out[name] = {
            "components": expected_scores(nb, source),
            "error": False,
            "bugs": {c: sorted(s) for c, s in entry.bugs.items()},
            "inherited": list(entry.inherited),
        }
    return out


def not_a_demo_folder(dest: Path) -> str | None:
    """Why ``dest`` must not receive the sample class (an instructor's course), or None."""
    if dest.resolve() == ROOT.resolve():
        return (
            f"{dest} is the repository, the instructor's course: its submitted/ holds real submissions. "
            "Write the sample class to a folder of its own: `make sample-class` writes demo/"
        )
    if (dest / "submitted").exists() and not (dest / "expected.json").exists():
        return (
            f"{dest}/submitted/ exists and is not a sample class (no expected.json): it may hold real "
            "submissions. Choose an empty folder"
        )
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="course folder to write submitted/ and expected.json into")
    args = parser.parse_args(argv)
    refusal = not_a_demo_folder(args.dest)
    if refusal:
        print(f"sample_class: {refusal}", file=sys.stderr)
        return 2
    expected = write(args.dest)
    print(f"wrote {len(expected)} submissions to {args.dest / 'submitted'} and {args.dest / 'expected.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
