"""Memory and dtype are measured by the grader's ruler, not reported by the student's objects.

Issue 9 (forgeable structure) and issue 11 (memory checks count the state that
grows with the parameters). Each submission below is the reference solution
with a small edit, run through the probe in this process and judged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from autograder.judge import checks
from content.m07_optimizers.misconceptions import Variant, apply
from tools import reference

# The payloads (an ndarray subclass claiming float32 while holding float64, a __dict__
# property, cached hyperparameter arrays) are shared with the sample class.
from tools.sample_class import CACHED_ARRAYS, HIDING_DICT, LIAR


@pytest.fixture(scope="module")
def text():
    return reference.reference_module_text()


def edited(text: str, component: str, *edits) -> str:
    """The reference with ``edits`` ((class, old, new), ...), each applied exactly once."""
    return apply(text, Variant("test", component, tuple(edits)))


def judged(code: str, component: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = reference.run_module(code, component, "test")
    return {r.id: r for r in checks.judge_component(component, flat, reference.load())}


def lying_sgd(text: str) -> str:
    code = edited(
        text,
        "SGD",
        (
            "SGD",
            "self.momentum_buffers[i] = np.zeros_like(param.data)",
            "self.momentum_buffers[i] = Float32Looking(param.data.shape, dtype=np.float64)\n"
            "                self.momentum_buffers[i].fill(0)",
        ),
        ("SGD", "    def has_momentum(self)", HIDING_DICT + "    def has_momentum(self)"),
    )
    return code.replace("class SGD(Optimizer):", LIAR + "class SGD(Optimizer):", 1)


def test_an_ndarray_subclass_lying_about_its_dtype_still_fails_state_dtype(text):
    results = judged(lying_sgd(text), "SGD")
    memory = results["sgd-memory-dtype"]
    assert memory.score == 0 and memory.diagnosis == "state-dtype"
    assert "expected 2, got 3" in memory.message
    # everything else is computed correctly, so only the structure check costs points
    assert all(r.score == r.max_score for i, r in results.items() if i != "sgd-memory-dtype")


def test_a_dict_property_cannot_hide_per_parameter_state(text):
    code = edited(
        text,
        "SGD",
        (
            "SGD",
            "                self.momentum_buffers[i] = np.zeros_like(param.data)\n",
            "                self.momentum_buffers[i] = np.zeros_like(param.data)\n"
            "                self._cache = getattr(self, '_cache', {})\n"
            "                self._cache[i] = np.zeros(param.data.shape)\n",
        ),
        ("SGD", "    def has_momentum(self)", HIDING_DICT + "    def has_momentum(self)"),
    )
    memory = judged(code, "SGD")["sgd-memory-dtype"]
    assert memory.score == 0 and "expected 2, got 4" in memory.message


def test_hyperparameter_arrays_and_cached_scalars_never_change_a_memory_verdict(text):
    code = edited(
        text,
        "Adam",
        (
            "Adam",
            "        self.weight_decay = weight_decay\n",
            "        self.weight_decay = weight_decay\n" + CACHED_ARRAYS,
        ),
    )
    for component in ("Adam", "AdamW"):  # AdamW inherits the constructor
        results = judged(code, component)
        assert all(r.score == r.max_score for r in results.values()), [r.message for r in results.values()]


def test_state_that_grows_with_the_parameters_still_counts(text):
    code = edited(
        text,
        "Adam",
        (
            "Adam",
            "        self.weight_decay = weight_decay\n",
            "        self.weight_decay = weight_decay\n        self.previous = [p.data.copy() for p in self.params]\n",
        ),
    )
    memory = judged(code, "Adam")["adam-memory-dtype"]
    assert memory.score == 0 and "expected 3, got 4" in memory.message


def test_state_in_one_flat_buffer_counts_like_per_parameter_buffers(text):
    """A rule that only counted arrays shaped like a parameter would miss this."""
    code = edited(
        text,
        "Adam",
        (
            "Adam",
            "        self.weight_decay = weight_decay\n",
            "        self.weight_decay = weight_decay\n"
            "        self.flat = np.zeros(sum(p.data.size for p in self.params), np.float32)\n",
        ),
    )
    memory = judged(code, "Adam")["adam-memory-dtype"]
    assert memory.score == 0 and "expected 3, got 4" in memory.message


def test_a_forged_memory_table_is_not_a_measurement():
    scenario = next(c for c in checks.catalog() if c.id == "adam-memory-dtype").scenarios[0]
    for table in (
        np.array([[-2048.0, 4.0]]),
        np.array([[np.nan, 4]]),
        np.array([[2048.5, 4]]),
        np.zeros(3),
        np.array("3.0"),
    ):
        assert str(checks.memory_ratio(table, scenario)) == "not a measurement"
    rows = np.array([[2048, 4], [32, 4], [60, 4]] * 3 + [[2, 8], [1, 8]], dtype=np.float64)
    assert float(checks.memory_ratio(rows, scenario)) == 3.0
