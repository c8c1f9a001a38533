"""The misconception catalog: each slug is a small edit of the reference solution.

The grader diagnoses a failing check by running these edited solutions through
the same scenarios (``make reference`` stores their runs) and naming the one
whose run the student's reproduces. The edits are applied to the code exported
from ``src/``, so the catalog cannot drift from the update rules: an edit that
no longer applies fails ``make reference`` loudly. MISCONCEPTIONS.md documents
each slug for students and instructors; its table is the one source of the
explanations the feedback shows (``EXPLANATIONS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# (class whose body is edited, exact text to find, replacement)
Edit = tuple


@dataclass(frozen=True)
class Variant:
    slug: str
    component: str
    edits: tuple
    accepted: bool = False  # a correct alternative (graded as a pass), not a bug


SGD_DECAY = "grad = grad + self.weight_decay * weights    # a new array: param.grad stays intact"
ADAM_DECAY = "            return grad + self.weight_decay * weights\n"
ADAM_T = (
    "        self.step_count += 1\n"
    "        correction1 = 1 - self.beta1 ** self.step_count\n"
    "        correction2 = 1 - self.beta2 ** self.step_count\n"
)
SKIP = "            if param.grad is None:\n                continue\n"
TREAT_AS_ZERO = "            if param.grad is None:\n                param.grad = np.zeros_like(param.data)\n"
ADAMW_DECAY = "            weights *= 1 - self.lr * self.weight_decay"

VARIANTS = (
    Variant("zero-grad", "Optimizer", (("Optimizer", "param.grad = None", "param.grad = np.zeros_like(param.data)"),)),
    Variant("zero-grad", "Optimizer", (("Optimizer", "param.grad = None", "pass"),)),
    Variant("momentum-dampening", "SGD", (("SGD", "velocity += grad", "velocity += (1 - self.momentum) * grad"),)),
    Variant("nesterov", "SGD", (("SGD", "grad = velocity", "grad = grad + self.momentum * velocity"),)),
    Variant("weight-decay-ignored", "SGD", (("SGD", SGD_DECAY, "pass"),)),
    Variant(
        "weight-decay-after-momentum",
        "SGD",
        (
            ("SGD", SGD_DECAY, "pass"),
            (
                "SGD",
                "            weights -= self.lr * grad",
                "            grad = grad + self.weight_decay * weights\n            weights -= self.lr * grad",
            ),
        ),
    ),
    Variant("gradient-mutated", "SGD", (("SGD", SGD_DECAY, "grad += self.weight_decay * weights"),)),
    Variant("none-grad-not-skipped", "SGD", (("SGD", SKIP, TREAT_AS_ZERO),)),
    Variant(
        "state-aliasing",
        "SGD",
        (
            (
                "SGD",
                "None if v is None else v.copy() for v in self.momentum_buffers",
                "v for v in self.momentum_buffers",
            ),
        ),
    ),
    Variant(
        "state-aliasing",
        "SGD",
        (("SGD", "v = v.astype(param.data.dtype, copy=True)", "v = v.astype(param.data.dtype, copy=False)"),),
    ),
    Variant(
        "lr-cached",
        "SGD",
        (
            ("SGD", "self.lr = lr", "self.lr = self._lr = lr"),
            ("SGD", "weights -= self.lr * grad", "weights -= self._lr * grad"),
        ),
    ),
    Variant("state-dtype", "SGD", (("SGD", "np.zeros_like(param.data)", "np.zeros(param.data.shape)"),)),
    Variant(
        "nan-accepted",
        "SGD",
        (
            (
                "SGD",
                "check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)",
                "if lr < 0 or momentum < 0 or momentum >= 1 or weight_decay < 0:\n"
                "            raise ValueError(\"lr, momentum or weight_decay out of range\")",
            ),
        ),
    ),
    Variant(
        "no-bias-correction",
        "Adam",
        (
            ("Adam", "correction1 = 1 - self.beta1 ** self.step_count", "correction1 = 1"),
            ("Adam", "correction2 = 1 - self.beta2 ** self.step_count", "correction2 = 1"),
        ),
    ),
    Variant(
        "step-count-off-by-one",
        "Adam",
        (("Adam", ADAM_T, ADAM_T.replace("self.step_count\n", "(self.step_count + 1)\n")),),
    ),
    Variant(
        "step-count-off-by-one",
        "Adam",
        (("Adam", ADAM_T, ADAM_T.replace("self.step_count\n", "(self.step_count - 1)\n")),),
    ),
    Variant(
        "step-count-per-param",
        "Adam",
        (
            ("Adam", ADAM_T, ""),
            (
                "Adam",
                "            if self.m_buffers[i] is None:\n",
                ADAM_T.replace("        ", "            ") + "            if self.m_buffers[i] is None:\n",
            ),
        ),
    ),
    Variant(
        "eps-inside-sqrt",
        "Adam",
        (
            (
                "Adam",
                "            np.sqrt(scratch, out=scratch)\n            scratch += self.eps",
                "            scratch += self.eps\n            np.sqrt(scratch, out=scratch)",
            ),
        ),
    ),
    Variant(
        "missing-one-minus-beta",
        "Adam",
        (("Adam", "np.multiply(grad, 1 - self.beta1, dtype", "np.multiply(grad, 1, dtype"),),
    ),
    Variant("missing-one-minus-beta", "Adam", (("Adam", "            scratch *= 1 - self.beta2\n", ""),)),
    Variant(
        "missing-one-minus-beta",
        "Adam",
        (
            ("Adam", "np.multiply(grad, 1 - self.beta1, dtype", "np.multiply(grad, 1, dtype"),
            ("Adam", "            scratch *= 1 - self.beta2\n", ""),
        ),
    ),
    Variant("betas-swapped", "Adam", (("Adam", "self.beta1, self.beta2 = betas", "self.beta2, self.beta1 = betas"),)),
    Variant(
        "decoupled-decay-in-adam",
        "Adam",
        (
            ("Adam", ADAM_DECAY, "            return grad\n"),
            (
                "Adam",
                "        update *= self.lr\n        weights -= update\n",
                "        update *= self.lr\n        weights -= update\n"
                "        weights *= 1 - self.lr * self.weight_decay\n",
            ),
        ),
    ),
    Variant("weight-decay-ignored", "Adam", (("Adam", ADAM_DECAY, "            return grad\n"),)),
    Variant(
        "gradient-mutated",
        "Adam",
        (("Adam", ADAM_DECAY, "            grad += self.weight_decay * weights\n            return grad\n"),),
    ),
    Variant("none-grad-not-skipped", "Adam", (("Adam", SKIP, TREAT_AS_ZERO),)),
    Variant(
        "lr-cached",
        "Adam",
        (("Adam", "self.lr = lr", "self.lr = self._lr = lr"), ("Adam", "update *= self.lr", "update *= self._lr")),
    ),
    Variant(
        "state-dtype",
        "Adam",
        (
            ("Adam", "self.m_buffers[i] = np.zeros_like(param.data)", "self.m_buffers[i] = np.zeros(param.data.shape)"),
            ("Adam", "self.v_buffers[i] = np.zeros_like(param.data)", "self.v_buffers[i] = np.zeros(param.data.shape)"),
            ("Adam", "dtype=weights.dtype)", "dtype=np.float64)"),
        ),
    ),
    Variant(
        "nan-accepted",
        "Adam",
        (
            (
                "Adam",
                "check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)",
                "if lr < 0 or eps < 0 or weight_decay < 0 or min(betas) < 0 or max(betas) >= 1:\n"
                "            raise ValueError(\"lr, betas, eps or weight_decay out of range\")",
            ),
        ),
    ),
    Variant(
        "coupled-decay",
        "AdamW",
        (
            ("AdamW", "        return grad\n", "        return grad + self.weight_decay * weights\n"),
            ("AdamW", ADAMW_DECAY, "            pass"),
        ),
    ),
    Variant("decay-missing-lr", "AdamW", (("AdamW", ADAMW_DECAY, "            weights *= 1 - self.weight_decay"),)),
    Variant("weight-decay-ignored", "AdamW", (("AdamW", ADAMW_DECAY, "            pass"),)),
    Variant(
        "PyTorch's ordering, decay before the step: param*(1 - lr*wd) - lr*update",
        "AdamW",
        (
            (
                "AdamW",
                "        update *= self.lr\n        weights -= update\n"
                "        if self.weight_decay != 0:\n" + ADAMW_DECAY,
                "        if self.weight_decay != 0:\n" + ADAMW_DECAY + "\n"
                "        update *= self.lr\n        weights -= update",
            ),
        ),
        accepted=True,
    ),
)

SLUGS = tuple(dict.fromkeys(v.slug for v in VARIANTS if not v.accepted))


def class_span(text: str, name: str) -> tuple:
    """(start, end) of ``class name(...)`` up to the next top-level definition."""
    match = re.search(rf"^class {name}\b.*?:\n", text, re.MULTILINE)
    if not match:
        raise ValueError(f"no class {name} in the reference module")
    following = re.compile(r"^(class |def |[A-Za-z_])", re.MULTILINE).search(text, match.end())
    return match.start(), following.start() if following else len(text)


def apply(text: str, variant: Variant) -> str:
    """The reference module with one variant's edits; each edit must match exactly once."""
    for cls, old, new in variant.edits:
        start, end = class_span(text, cls)
        body = text[start:end]
        if body.count(old) != 1:
            raise ValueError(
                f"misconception {variant.slug!r}: expected the text {old!r} exactly once in "
                f"class {cls}, found it {body.count(old)} times; update autograder/misconceptions.py "
                "to match src/07_optimizers/07_optimizers.py"
            )
        text = text[:start] + body.replace(old, new) + text[end:]
    return text


# -- explanations: MISCONCEPTIONS.md is their one source ------------------------------------------

CATALOG = Path(__file__).resolve().parent / "MISCONCEPTIONS.md"


@dataclass(frozen=True)
class Explanation:
    slug: str
    components: str
    does: str  # "what the code does", verbatim from the table (Markdown)
    fix: str  # "what to fix", verbatim


def read_explanations(text: str) -> dict:
    """{slug: Explanation} from the catalog's table rows ``| `slug` | components | does | fix |``."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        match = re.fullmatch(r"`([a-z-]+)`", cells[0]) if line.startswith("| `") else None
        if match:
            if len(cells) != 4:
                raise ValueError(f"{CATALOG.name}: the row of {match.group(1)!r} needs 4 cells, has {len(cells)}")
            rows[match.group(1)] = Explanation(match.group(1), *cells[1:])
    return rows


EXPLANATIONS = read_explanations(CATALOG.read_text(encoding="utf-8"))
_missing = set(SLUGS) - set(EXPLANATIONS)
if _missing:
    raise RuntimeError(f"{CATALOG} has no row for {sorted(_missing)}: every catalogued slug needs its explanation")
