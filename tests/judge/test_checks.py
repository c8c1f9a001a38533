"""The hidden checks and the misconception catalog, judged in-process (fast)."""

import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder.arrival.notebook import component_cells, grade_points
from autograder.judge import checks
from content.m07_optimizers.misconceptions import SLUGS, VARIANTS, apply
from tools import reference

ROOT = Path(__file__).resolve().parents[2]
ISSUE_SLUGS = (
    "zero-grad momentum-dampening nesterov weight-decay-ignored weight-decay-after-momentum "
    "gradient-mutated none-grad-not-skipped state-aliasing no-bias-correction step-count-off-by-one "
    "step-count-per-param eps-inside-sqrt missing-one-minus-beta betas-swapped decoupled-decay-in-adam "
    "coupled-decay decay-missing-lr lr-cached state-dtype nan-accepted"
).split()


@pytest.fixture(scope="module")
def text():
    return reference.reference_module_text()


def judged(text, component):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some bugs divide by zero on purpose
        return checks.judge_component(component, reference.run_module(text, component, "test"), reference.load())


def test_points_add_up_to_100_and_agree_with_the_source_notebook():
    assert sum(c.points for c in checks.catalog()) == 100
    source = nbformat.read(ROOT / "source/07_optimizers/optimizers.ipynb", as_version=4)
    cells = component_cells(source)
    points = {cells[gid]: value for gid, value in grade_points(source).items() if gid in cells}  # not written
    assert points == {comp: sum(c.points for c in checks.checks_for(comp)) for comp in checks.COMPONENTS}


def test_catalog_has_exactly_the_issue_slugs_and_documents_them():
    assert sorted(SLUGS) == sorted(ISSUE_SLUGS)
    documented = set(
        re.findall(r"^\| `([a-z-]+)` \|", (ROOT / "content/m07_optimizers/MISCONCEPTIONS.md").read_text(), re.M)
    )
    assert documented == set(ISSUE_SLUGS)


@pytest.mark.parametrize("component", checks.COMPONENTS)
def test_reference_gets_full_marks(text, component):
    results = judged(text, component)
    assert all(r.score == r.max_score and r.diagnosis is None for r in results)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v.accepted], ids=lambda v: v.slug)
def test_every_misconception_loses_points_and_is_named(text, variant):
    results = judged(apply(text, variant), variant.component)
    failing = [r for r in results if r.score < r.max_score]
    assert failing, "a catalogued bug must never get full marks"
    assert variant.slug in {r.diagnosis for r in failing}
    for r in failing:
        assert re.search(r"step \d+|after|Optimizer|dtype|memory|\(", r.message)


def test_pytorch_ordering_passes_and_is_named(text):
    accepted = next(v for v in VARIANTS if v.accepted)
    results = judged(apply(text, accepted), "AdamW")
    assert all(r.score == r.max_score for r in results)
    assert any("PyTorch's ordering" in r.message for r in results)


def test_two_bugs_at_once_are_both_named(text):
    both = apply(
        apply(text, next(v for v in VARIANTS if v.slug == "betas-swapped")),
        next(v for v in VARIANTS if v.slug == "eps-inside-sqrt"),
    )
    failing = [r for r in judged(both, "Adam") if r.score < r.max_score]
    assert failing and {"betas-swapped", "eps-inside-sqrt"} <= {s for r in failing for s in r.diagnoses}


def test_failure_messages_name_the_divergence_not_the_inputs(text):
    variant = next(v for v in VARIANTS if v.slug == "nesterov")
    failing = [r for r in judged(apply(text, variant), "SGD") if r.score < r.max_score]
    message = failing[0].message
    assert re.search(r"step \d+: params\[\d\]: first differs at element \(\d+, \d+\): expected -?\d", message)
    assert len(message) < 400 and "[[" not in message  # no arrays, no configuration


def test_reference_data_matches_the_source():
    assert reference.same(reference.build(), reference.load_flat()), "run `make reference`"


def test_reference_data_drift_is_detected():
    data = reference.load_flat()
    key = next(k for k in data if k.startswith("R|sgd-plain"))
    tampered = dict(data, **{key: data[key] + 1.0})
    assert not reference.same(reference.build(), tampered)


def test_an_edit_that_no_longer_applies_fails_loudly(text):
    from content.m07_optimizers.misconceptions import Variant

    with pytest.raises(ValueError, match="exactly once"):
        apply(text, Variant("made-up", "SGD", (("SGD", "this text is not in the source", "x"),)))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v.accepted], ids=lambda v: v.slug)
def test_each_signature_fires_on_its_own_variant(text, variant):
    from autograder.judge.signatures import fired

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert variant.slug in fired(
            reference.run_module(apply(text, variant), variant.component, "t"), variant.component
        )


@pytest.mark.parametrize("component", checks.COMPONENTS)
def test_no_signature_fires_on_the_reference(text, component):
    from autograder.judge.signatures import fired

    assert fired(reference.run_module(text, component, "t"), component) == {}


def test_every_catalogued_slug_has_a_signature():
    from content.m07_optimizers.signatures import SIGNATURES

    assert set(SIGNATURES) == set(SLUGS)


def test_an_adam_bug_is_named_in_adamws_table_as_inherited(text):
    results = judged(apply(text, next(v for v in VARIANTS if v.slug == "eps-inside-sqrt")), "AdamW")
    failing = [r for r in results if r.score < r.max_score]
    assert failing and all(r.diagnoses == ["eps-inside-sqrt"] for r in failing)
    assert all(r.inherited_from == {"eps-inside-sqrt": "Adam"} for r in failing)


def test_a_crash_names_the_exception_and_the_step(text):
    crashing = text.replace(
        "            blockwise(update, param.data, gradient_array(param), self.m_buffers[i], self.v_buffers[i])",
        "            if self.step_count == 2:\n                raise KeyError('boom')\n"
        "            blockwise(update, param.data, gradient_array(param), self.m_buffers[i], "
        "self.v_buffers[i])",
    )
    assert crashing != text
    failing = [r for r in judged(crashing, "Adam") if r.score < r.max_score]
    assert failing
    assert "Your step() raised KeyError: 'boom' at step 2 (scenario 1)" in failing[0].message


def test_a_failure_without_a_diagnosis_says_what_to_look_at(text):
    broken = text.replace('        return self.momentum > 0\n', '        return True\n')
    failing = [r for r in judged(broken, "SGD") if r.score < r.max_score]
    assert [r.id for r in failing] == ["sgd-checkpoint"] and failing[0].diagnoses == []
    assert "Look at get_momentum_state()/set_momentum_state()" in failing[0].message


def test_malformed_signature_observations_never_crash_the_judge(text):
    from autograder.judge.signatures import fired

    flat = reference.run_module(text, "SGD", "t")
    forged = {k: (np.zeros((0,)) if k.startswith("sig:") else v) for k, v in flat.items()}
    assert set(fired(forged, "SGD")) <= set(SLUGS)  # may name anything, must not crash
    assert all(r.score == r.max_score for r in checks.judge_component("SGD", forged, reference.load()))


def test_output_with_forged_labels_names_no_misconception(text):
    """Labels the grader never asked for mean the student's code wrote the results file: no diagnosis from it."""
    variant = next(v for v in VARIANTS if v.slug == "state-dtype" and v.component == "SGD")
    flat = reference.run_module(apply(text, variant), "SGD", "t")
    named = {slug for r in checks.judge_component("SGD", flat, reference.load()) for slug in r.diagnoses}
    assert "state-dtype" in named
    flat[f"sgd-plain|999|{checks.UNEXPECTED}"] = np.array("forged")
    results = checks.judge_component("SGD", flat, reference.load())
    assert [r.diagnoses for r in results if r.diagnoses] == []
    assert any(r.score < r.max_score for r in results)


def test_a_float64_promoting_update_fails_memory_dtype_and_is_named(text):
    """The textbook `p.data = p.data - lr * g`: right values, but an np.float64 lr makes the parameters float64."""
    from tools import corpus

    promoting = corpus.fill(corpus.SGD_A, corpus.SGD_A_OK, corpus.DTYPE_PROMOTED_A)
    results = checks.judge_component(
        "SGD", reference.run_cells([("reference", text), ("sgd", promoting)], "SGD"), reference.load()
    )
    failing = {r.id: r.diagnoses for r in results if r.score < r.max_score}
    assert failing == {"sgd-memory-dtype": ["state-dtype"]}


def test_the_same_parameter_twice_costs_the_interface_check_only(text):
    """Optimizer.__init__ accepting a duplicate is one bug: the subclasses that inherit it lose nothing more."""
    accepting = text.replace("            if id(param) in seen:", "            if False:")
    assert accepting != text
    lost = {c: [r.id for r in judged(accepting, c) if r.score < r.max_score] for c in checks.COMPONENTS}
    assert lost == {"Optimizer": ["optimizer-interface"], "SGD": [], "Adam": [], "AdamW": []}
    message = next(r.message for r in judged(accepting, "Optimizer") if r.id == "optimizer-interface")
    assert "twice" in message


@pytest.mark.parametrize("name", ["lr", "weight_decay", "eps"])
def test_a_validation_that_lets_nan_through_fails(text, name):
    """Today's checks never passed NaN for weight_decay or eps: a helper that only compares got full marks."""
    trap = text.replace(
        '''    if not math.isfinite(number):''', f'''    if not math.isfinite(number) and name != {name!r}:'''
    )
    assert trap != text
    for component in ("Adam", "AdamW"):
        lost = [r.id for r in judged(trap, component) if r.score < r.max_score]
        assert lost == [f"{component.lower()}-validation"]


def test_affects_compare_variants_only_for_a_check_a_diagnosis_asks_about(monkeypatch):
    """Loading the reference data compares no variant with the reference: a correct run asks for none."""
    from autograder.judge import reference as data

    calls = []
    monkeypatch.setattr(data, "first_divergence", lambda got, expected: calls.append(got) or "differs")
    affects = data.Affects({"a": [], "b": []}, {"a": [("slug-a", "run a")], "b": [("slug-b", "run b")]})
    assert calls == []
    assert affects.get("a") == {"slug-a"} and calls == ["run a"]
    assert affects.get("a") == {"slug-a"} and calls == ["run a"]  # worked out once
    assert affects.get("c", ()) == ()
