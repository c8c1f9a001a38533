"""The probe's results file is data from an adversary (issue 9, item 3; JSON since issue 16).

Student code runs in the probe process and can leave anything at ``out.json``.
Each forgery here must cost only its component, with a one-line reason, and
must never hang, allocate unbounded data, recurse without bound, follow a link,
or put long or crafted text into feedback. The payloads are written by hand (see ``lines_of``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from autograder.judge import checks
from autograder.judge import output as probe_output
from autograder.judge.output import MAX_FILE_BYTES, MAX_LINE_BYTES, InvalidOutput, parse, read_results
from autograder.probe import MAX_TEXT, PROBLEMS
from autograder.probe.output import append_check, append_problems, encode
from tools import reference

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024**2
SPEC = json.dumps(checks.probe_spec("SGD"))[:20_000]  # what a forged label tried to smuggle out


# -- payloads -------------------------------------------------------------------------------


def lines_of(flat: dict) -> bytes:
    """A results file by hand, as the probe writes it: one line per check, problems first."""
    by_check, out = {}, []
    for key, value in flat.items():
        if key == PROBLEMS:
            out.append(json.dumps({"problems": encode(value) if value.dtype.kind == "U" else value.tolist()}))
            continue
        check, index, label = key.split("|", 2)
        by_check.setdefault(check, []).append((int(index), label, value))
    for check, rows in by_check.items():
        out.append(
            json.dumps(
                {
                    "check": check,
                    "observations": [[label, encode(value)] for _, label, value in sorted(rows, key=lambda r: r[0])],
                }
            )
        )
    return ("\n".join(out) + "\n").encode()


def with_line(data: bytes, line: str) -> bytes:
    return data + line.encode() + b"\n"


@pytest.fixture(scope="module")
def good() -> dict:
    """A real SGD run of the reference solution, as the probe writes it."""
    flat = reference.run_module(reference.reference_module_text(), "SGD", "test")
    flat[PROBLEMS] = np.array("")
    return flat


@pytest.fixture(scope="module")
def asked():
    return probe_output.asked("SGD")


def reason(data: bytes, asked) -> str:
    with pytest.raises(InvalidOutput) as err:
        parse(data, asked)
    message = str(err.value)
    assert "\n" not in message and len(message) < 200
    return message


def first_key(flat: dict, check: str) -> str:
    return next(k for k in flat if k.startswith(check + "|"))


def sgd_plain_line(values: str) -> str:
    """A sgd-plain line whose first observation's value is the raw JSON text ``values``."""
    return '{"check":"sgd-plain","observations":[["[1] step 1: params[0]",' + values + ']]}'


# -- the file itself ------------------------------------------------------------------------


def test_a_real_results_file_reads_back_exactly(tmp_path, good):
    (tmp_path / "out.json").write_bytes(lines_of(good))
    flat = read_results(tmp_path, "out.json", "SGD")
    assert flat.keys() == good.keys()
    assert all(np.array_equal(flat[k], good[k]) and flat[k].dtype == good[k].dtype for k in good)
    assert all(r.score == r.max_score for r in checks.judge_component("SGD", flat, reference.load()))


def test_the_probes_own_writer_is_read_back_bit_for_bit(tmp_path, good):
    by_check = {}
    for key, value in good.items():
        if key != PROBLEMS:
            check, _, label = key.split("|", 2)
            by_check.setdefault(check, []).append((label, value))
    out = str(tmp_path / "out.json")
    append_problems(out, "")
    for check, items in by_check.items():
        append_check(out, check, items)
    flat = read_results(tmp_path, "out.json", "SGD")
    assert flat.keys() == good.keys()
    assert all(flat[k].tobytes() == good[k].tobytes() for k in good)


@pytest.mark.parametrize(
    "value",
    [
        np.array(
            [np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, np.float32(0.1)],
            dtype=np.float64,
        ),
        np.zeros((0, 2)),
        np.arange(24, dtype=np.float64).reshape(2, 3, 4),
        np.array(2.5),
    ],
)
def test_float64_round_trips_exactly_through_json_non_finite_included(value):
    text = json.dumps(encode(value), allow_nan=False)  # strict JSON: no NaN token is written
    back = probe_output._value(json.loads(text), "x")
    assert back.dtype == np.float64 and back.shape == value.shape
    assert back.tobytes() == value.tobytes()


def read_with_timeout(folder: Path, name: str = "out.json", timeout: float = 10.0) -> str:
    """The InvalidOutput reason, read in a thread: a grader that blocks fails the test instead of hanging it."""
    outcome = {}

    def target():
        try:
            read_results(folder, name, "SGD")
            outcome["reason"] = "read without complaint"
        except InvalidOutput as err:
            outcome["reason"] = str(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in [folder / name, *folder.parent.glob("*.fifo")]:
            if fifo.exists() and not fifo.is_file():
                with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
                    pass  # unblock the reader so the test process can end
        pytest.fail("reading the results file blocked")
    return outcome["reason"]


def test_a_symlink_to_a_host_path_is_never_followed(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    secret = tmp_path / "instructor-only.txt"
    secret.write_text("SECRET-HOST-CONTENT " * 100)
    blocking = tmp_path / "host.fifo"
    os.mkfifo(blocking)  # opening this for reading blocks until a writer comes: following the link hangs
    reasons = set()
    for target in (blocking, secret, tmp_path / "does-not-exist"):
        (scratch / "out.json").unlink(missing_ok=True)
        (scratch / "out.json").symlink_to(target)
        reasons.add(read_with_timeout(scratch))
    assert reasons == {"out.json is a symbolic link, not a file"}  # the same for every target: no existence oracle


def test_a_fifo_in_scratch_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "out.json")
    assert read_with_timeout(tmp_path) == "out.json is not a regular file"


def test_devices_are_refused(tmp_path):
    (tmp_path / "out.json").symlink_to("/dev/zero")
    assert read_with_timeout(tmp_path) == "out.json is a symbolic link, not a file"
    (tmp_path / "out.json").unlink()
    try:
        os.mknod(tmp_path / "out.json", 0o600 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero
    except PermissionError:
        pytest.skip("cannot create a device node here")
    assert read_with_timeout(tmp_path) == "out.json is not a regular file"


def test_a_hard_link_is_refused(tmp_path, good):
    (tmp_path / "elsewhere.json").write_bytes(lines_of(good))
    os.link(tmp_path / "elsewhere.json", tmp_path / "out.json")
    assert read_with_timeout(tmp_path) == "out.json is a hard link"


def test_a_file_over_the_cap_is_not_read(tmp_path):
    with open(tmp_path / "out.json", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    assert read_with_timeout(tmp_path) == f"out.json is larger than {MAX_FILE_BYTES // MiB} MiB"


def test_a_missing_file_is_not_an_invalid_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path, "out.json", "SGD")


# -- size, lines and nesting, checked before parsing ---------------------------------------


def test_a_line_over_the_cap_is_refused_before_parsing(good, asked, monkeypatch):
    parsed = []
    monkeypatch.setattr(probe_output.json, "loads", lambda *a, **k: parsed.append(a) or {})
    line = sgd_plain_line('{"shape":[1],"values":[' + "0," * (MAX_LINE_BYTES // 2) + '0]}')
    assert reason(line.encode(), asked) == f"line 1 is larger than {MAX_LINE_BYTES // MiB} MiB" and not parsed


def test_far_too_many_lines_are_refused_before_parsing(asked, monkeypatch):
    parsed = []
    monkeypatch.setattr(probe_output.json, "loads", lambda *a, **k: parsed.append(a) or {})
    assert reason(b"{}\n" * (asked.max_lines + 1), asked) == "it has more lines than the grader asked for"
    assert not parsed


@pytest.mark.parametrize("fill", ['0,', '"",', '"x",'])
def test_a_line_of_too_many_values_is_refused_before_parsing(asked, fill, monkeypatch):
    parsed = []
    monkeypatch.setattr(probe_output.json, "loads", lambda *a, **k: parsed.append(a) or {})
    line = sgd_plain_line('{"shape":[1],"values":[' + fill * (probe_output.MAX_ELEMENTS + 1) + '0]}')
    assert reason(line.encode(), asked) == "line 1 holds more values than the grader's format" and not parsed


@pytest.mark.parametrize(
    "payload",
    [
        "[" * 100_000,
        '{"a":' * 50_000,
        sgd_plain_line('[[[[[[[1]]]]]]]'),
        '{"check":"sgd-plain","observations":[["x",{"shape":[1],"values":[[[[0]]]]}]]}',
    ],
)
def test_deep_nesting_is_refused_before_the_parser_recurses(asked, payload, monkeypatch):
    parsed = []
    monkeypatch.setattr(probe_output.json, "loads", lambda *a, **k: parsed.append(a) or {})
    assert reason(payload.encode(), asked) == "line 1 nests deeper than the grader's format" and not parsed


def test_brackets_inside_strings_do_not_count_as_nesting(good, asked):
    key = first_key(good, "sgd-validation")
    text = "[" * 500 + '\\"{' * 100
    assert str(parse(lines_of(dict(good, **{key: np.array(text)})), asked)[key]) == text


def test_a_large_wrong_observation_fails_only_its_own_check(good, asked):
    """A real run may record a wrong-sized buffer: that fails its check, not the whole component."""
    key = first_key(good, "sgd-plain")
    flat = parse(lines_of(dict(good, **{key: np.zeros((100, 1000))})), asked)
    results = {r.id: r for r in checks.judge_component("SGD", flat, reference.load())}
    assert results["sgd-plain"].score == 0
    assert all(r.score == r.max_score for i, r in results.items() if i != "sgd-plain")


# -- JSON itself: strict, or refused ---------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_tokens_are_refused(asked, token):
    assert f"the token {token}" in reason(sgd_plain_line('{"shape":[1],"values":[' + token + ']}').encode(), asked)


@pytest.mark.parametrize(
    "number, why",
    [
        ("1" * 5000, "too many digits"),
        ("1e999", "out of float64's range"),
        ("-1e400", "out of float64's range"),
        ("0." + "0" * 100 + "1", "too many digits"),
    ],
)
def test_huge_numbers_are_refused(asked, number, why):
    assert why in reason(sgd_plain_line('{"shape":[1],"values":[' + number + ']}').encode(), asked)


def test_a_huge_integer_in_a_shape_is_refused(asked):
    assert "too many digits" in reason(sgd_plain_line('{"shape":[' + "9" * 100 + '],"values":[]}').encode(), asked)


@pytest.mark.parametrize(
    "line",
    [
        '{"check":"sgd-plain","check":"sgd-plain","observations":[]}',
        sgd_plain_line('{"shape":[1],"values":[1.0],"values":[2.0]}'),
        '{"problems":"","problems":"x"}',
    ],
)
def test_duplicate_keys_are_refused(asked, line):
    assert reason(line.encode(), asked) == "an object repeats a key"


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe" + b'{"problems":""}', '{"problems":"caf\u00e9"}'.encode("latin-1"), b'{"problems":"\xed\xa0\x80"}'],
)
def test_bytes_that_are_not_utf8_are_refused(asked, data):
    assert reason(data, asked) == "it is not UTF-8 text"


@pytest.mark.parametrize(
    "data",
    [
        b'{"problems": ""',
        b"PK\x03\x04 a zip",
        b"\x80\x04\x95 pickle".decode("latin-1").encode(),
        b"{'problems': ''}",
        b'{"problems":""} trailing',
    ],
)
def test_damaged_or_foreign_files_are_refused(asked, data):
    assert re.fullmatch(r"line 1 is not valid JSON \(\w+\)|it is not UTF-8 text|line 1 nests .*", reason(data, asked))


# -- checks and observations ---------------------------------------------------------------


@pytest.mark.parametrize("check", ["evil", "adam-resume", "../out", "sgd-plain\n", "x" * 200, 7, None])
def test_checks_not_asked_for_are_refused(good, asked, check):
    line = json.dumps({"check": check, "observations": []})
    assert reason(with_line(lines_of(without(good, "sgd-validation")), line), asked).startswith("check '")


def without(flat: dict, check: str) -> dict:
    """``flat`` less one check's line: room for one more line within the grader's count."""
    return {k: v for k, v in flat.items() if not k.startswith(check + "|")}


def test_a_check_reported_twice_is_refused(good, asked):
    line = json.dumps({"check": "sgd-plain", "observations": []})
    shorter = lines_of(without(good, "sgd-validation"))
    assert reason(with_line(shorter, line), asked) == "check 'sgd-plain' is reported twice"
    assert reason(with_line(shorter, '{"problems":""}'), asked) == "the problems are reported twice"


def test_more_observations_than_any_known_run_are_refused(good, asked):
    rows = [["[1] step 1: params[0]", "x"]] * (asked.bounds["sgd-plain"] + 1)
    line = json.dumps({"check": "sgd-plain", "observations": rows})
    assert "more observations than the grader asked for" in reason(line.encode(), asked)


@pytest.mark.parametrize(
    "line",
    [
        '{"check":"sgd-plain","observations":[],"extra":1}',
        '{"check":"sgd-plain"}',
        '[]',
        '"text"',
        '{"problems":"","check":"sgd-plain"}',
    ],
)
def test_lines_of_another_shape_are_refused(asked, line):
    assert re.search(r"keys the grader did not ask for|is not an object", reason(line.encode(), asked))


@pytest.mark.parametrize(
    "value, why",
    [
        ('{"shape":[1],"values":[true]}', "not a number"),
        ('{"shape":[1],"values":[null]}', "not a number"),
        ('{"shape":[1],"values":["1.5"]}', "not a number"),
        ('{"shape":[1],"values":[{"pickled":"object"}]}', "nests deeper than the grader's format"),
        ('{"shape":[2],"values":[1.0]}', "does not hold the values its shape declares"),
        ('{"shape":[1000000000000],"values":[0]}', "shape that is not a list"),
        ('{"shape":[-1],"values":[]}', "shape that is not a list"),
        ('{"shape":[1.5],"values":[0]}', "shape that is not a list"),
        ('{"shape":[1,1,1,1,1],"values":[0]}', "shape that is not a list"),
        ('{"shape":"3","values":[0,0,0]}', "shape that is not a list"),
        ('{"shape":[1],"values":[0],"dtype":"object"}', "is not a text or a {shape, values} object"),
        ('[1.0, 2.0]', "is not a text or a {shape, values} object"),
        ('3.0', "is not a text or a {shape, values} object"),
        ('null', "is not a text or a {shape, values} object"),
        ('"' + "x" * (MAX_TEXT + 1) + '"', f"at most {MAX_TEXT} characters"),
    ],
)
def test_only_float64_values_and_short_text_are_accepted(asked, value, why):
    assert why in reason(sgd_plain_line(value).encode(), asked)


@pytest.mark.parametrize("pair", ['"just a label"', '["label"]', '["label", 1, 2]', '[7, "x"]'])
def test_observations_must_be_label_value_pairs(asked, pair):
    line = '{"check":"sgd-plain","observations":[' + pair + ']}'
    assert "is not a [label, value] pair" in reason(line.encode(), asked)


def test_problems_must_be_short_text(good, asked):
    assert "'problems' is not one text" in reason(b'{"problems":[0.0,1.0]}', asked)
    assert "'problems' is not one text" in reason(json.dumps({"problems": "x" * (MAX_TEXT + 1)}).encode(), asked)


# -- labels and text never carry anything into feedback -------------------------------------


def spec_windows(text: str, width: int) -> set:
    return {SPEC[i : i + width] for i in range(0, len(SPEC) - width)} & {text[i : i + width] for i in range(len(text))}


def test_forged_labels_and_messages_never_reach_feedback(good, asked):
    forged, relabelled = {}, 0
    for n, (key, value) in enumerate(good.items()):
        if key == PROBLEMS:
            forged[key] = np.array(SPEC[:MAX_TEXT])
        elif n % 2:  # a label carrying the hidden inputs
            check, index, _ = key.split("|", 2)
            forged[f"{check}|{index}|{SPEC[n * 10 : n * 10 + 20_000]}"] = value
            relabelled += 1
        elif value.dtype.kind == "U":  # a message carrying them
            forged[key] = np.array("\x1b[2J\r" + SPEC[n : n + MAX_TEXT - 5])
        else:
            forged[key] = value + 1.0
    flat = parse(lines_of(forged), asked)
    assert sum(1 for k in flat if k.endswith("|" + probe_output.UNEXPECTED)) == relabelled > 0
    assert all(len(k) < 200 for k in flat)
    results = checks.judge_component("SGD", flat, reference.load())
    assert all(r.score == 0 for r in results)
    report = json.dumps([r.as_dict() for r in results])
    assert len(report) < 900 * len(results)  # a 20,000-character label or message made it 40 KB
    for r in results:
        assert len(r.message) < 800 and r.message.isprintable()
        assert not spec_windows(r.message, checks.QUOTED + 1)  # at most a quoted snippet, never more


def test_student_text_is_quoted_short_and_on_one_line(good, asked):
    key = first_key(good, "sgd-validation")  # the expected value is text ("ValueError")
    forged = dict(good, **{key: np.array("raised ValueError: \x1b[2J\r\n\u202e" + SPEC[: MAX_TEXT - 30])})
    flat = parse(lines_of(forged), asked)
    message = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-validation").message
    assert "got raised ValueError: [2J" in message and message.isprintable()
    assert not spec_windows(message, checks.QUOTED + 1) and spec_windows(message, 40)


def test_an_unknown_label_only_fails_its_own_check(good, asked):
    key = first_key(good, "sgd-validation")
    check, index, _ = key.split("|", 2)
    forged = {(f"{check}|{index}|" + "x" * 5000 if k == key else k): v for k, v in good.items()}
    flat = parse(lines_of(forged), asked)
    assert f"{check}|{index}|{probe_output.UNEXPECTED}" in flat
    results = {r.id: r for r in checks.judge_component("SGD", flat, reference.load())}
    assert results["sgd-validation"].score == 0 and "xxxxx" not in results["sgd-validation"].message
    assert all(r.score == r.max_score for i, r in results.items() if i != "sgd-validation")


def test_failure_labels_of_the_probe_are_still_shown(good, asked):
    keys = [k for k in good if k.startswith("sgd-plain|")]
    crashed = {k: v for k, v in good.items() if k not in keys[4:]}
    crashed[keys[4].rsplit("|", 1)[0] + "|[1] step 2: step()"] = np.array("raised ZeroDivisionError: boom")
    flat = parse(lines_of(crashed), asked)
    message = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-plain").message
    assert "Your step() raised ZeroDivisionError: boom at step 2 (scenario 1)" in message


# -- memory: the grader's peak while reading a file at the cap ------------------------------

PEAK = """
import resource, sys
from pathlib import Path
from autograder.judge import output as probe_output
probe_output.asked("SGD")                       # reference data loaded in both runs
if sys.argv[1] == "read":
    try:
        probe_output.read_results(Path(sys.argv[2]), "out.json", "SGD")
    except probe_output.InvalidOutput as err:
        print(err, file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_mib(*args) -> int:
    result = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(result.stdout)


@pytest.mark.parametrize("fill", ["numbers", "text", "numbers parsed", "text parsed"])
def test_reading_a_file_at_the_cap_keeps_the_graders_memory_small(tmp_path, good, fill):
    """Lines just under the line cap (or, "parsed", just under the count of values the grader parses),
    up to the file cap: the most a results file can make the grader read."""
    checks_asked = [k.split("|", 1)[0] for k in good if k != PROBLEMS]
    unit = "0," if fill.startswith("numbers") else '"",'
    count = (MAX_LINE_BYTES - 200) // len(unit)
    if fill.endswith("parsed"):
        count = probe_output.MAX_ELEMENTS - 10
    lines, size = [], 0
    for check in dict.fromkeys(checks_asked):
        line = '{"check":"' + check + '","observations":[["x",{"shape":[1],"values":[' + unit * count + '0]}]]}'
        if size + len(line) + 1 > MAX_FILE_BYTES:
            break
        lines.append(line)
        size += len(line) + 1
    (tmp_path / "out.json").write_text("\n".join(lines) + "\n")
    baseline, reading = peak_mib("baseline", str(tmp_path)), peak_mib("read", str(tmp_path))
    print(f"peak RSS: {baseline} MiB without reading, {reading} MiB reading {size // MiB} MiB of {fill}")
    assert reading - baseline < 48


# -- through the real sandboxed probe: top-level code in a solution cell replaces its results ------

FORGE = '''
import atexit as _atexit, os as _os

def _forge():
    if "sgd-plain" not in open("spec.json").read():
        return                           # only the SGD probe's results are replaced
    _os.remove("out.json")
{body}
_atexit.register(_forge)
'''
FORGED_LABELS = '''    import json as _json
    spec = open("spec.json").read()
    out = []
    for n, line in enumerate(open("out.json.bak").read().splitlines()):
        record = _json.loads(line)
        for k, pair in enumerate(record.get("observations", [])):
            if (n + k) % 2:
                pair[0] = spec[n + k:n + k + 20000]
            elif isinstance(pair[1], str):
                pair[1] = spec[n + k:n + k + 999]
        out.append(_json.dumps(record))
    open("out.json", "w").write("\\n".join(out) + "\\n")
'''


def sgd_cells(top_level: str) -> list:
    """The instructor's cells, with ``top_level`` appended to the student's SGD cell."""
    import nbformat

    from autograder.arrival.notebook import graded_code

    source = nbformat.read(ROOT / "source/07_optimizers/optimizers.ipynb", as_version=4)
    return [
        (name, code + "\n" + top_level if name == "your cell 'sgd'" else code)
        for name, code in graded_code(source, source)
    ]


def probe_sgd(top_level: str, timeout: float = 120.0) -> tuple:
    """(observations, reason) of the sandboxed SGD probe; the test fails, not hangs, if grading blocks."""
    from autograder.judge.hidden import probe_component

    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(r=probe_component(sgd_cells(top_level), "SGD")), daemon=True
    )
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "grading blocked on the probe's results"
    probed = outcome["r"]
    return (None, probed.failure) if probed.failure else (probed.flat, None)


def sandboxed():
    from autograder import sandbox

    return pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")


@pytest.mark.slow
@sandboxed()
def test_sandboxed_bomb_costs_only_its_component():
    body = (
        "    with open('out.json', 'w') as f:\n"
        "        f.write('[' * (2 * 1024 * 1024))\n"
    )  # nests without end: the parser would recurse
    flat, why = probe_sgd(FORGE.format(body=body))
    assert flat is None
    assert why == "the SGD checks reported an invalid results file (line 1 nests deeper than the grader's format)"


@pytest.mark.slow
@sandboxed()
def test_sandboxed_symlinks_to_host_paths_are_not_followed(tmp_path):
    secret = tmp_path / "instructor-only.txt"  # outside the sandbox: its /tmp is private
    secret.write_text("SECRET-HOST-CONTENT")
    reasons = set()
    for target in (secret, tmp_path / "does-not-exist", "/dev/zero"):
        flat, why = probe_sgd(FORGE.format(body=f"    _os.symlink({str(target)!r}, 'out.json')\n"))
        assert flat is None
        reasons.add(why)
    assert reasons == {"the SGD checks reported an invalid results file (out.json is a symbolic link, not a file)"}


@pytest.mark.slow
@sandboxed()
def test_sandboxed_fifo_does_not_hang_grading():
    flat, why = probe_sgd(FORGE.format(body="    _os.mkfifo('out.json')\n"))
    assert flat is None and why.endswith("(out.json is not a regular file)")


@pytest.mark.slow
@sandboxed()
def test_sandboxed_forged_labels_do_not_carry_the_scenario_inputs_into_feedback():
    body = "    pass\n"
    top = FORGE.format(body=body).replace(
        '    _os.remove("out.json")\n', '    _os.replace("out.json", "out.json.bak")\n' + FORGED_LABELS
    )
    flat, why = probe_sgd(top)
    assert why is None
    assert any(k.endswith("|" + probe_output.UNEXPECTED) for k in flat)
    results = checks.judge_component("SGD", flat, reference.load())
    for r in results:
        assert len(r.message) < 800 and r.message.isprintable()
        assert not spec_windows(r.message, checks.QUOTED + 1)


@pytest.mark.slow
@sandboxed()
def test_sandboxed_lying_subclass_still_fails_state_dtype():
    from tools.sample_class import LIAR

    top = (
        LIAR
        + '''
_real_step = SGD.step
def _step(self):
    for i, p in enumerate(self.params):
        if self.momentum and p.grad is not None and self.momentum_buffers[i] is None:
            self.momentum_buffers[i] = Float32Looking(p.data.shape, dtype=np.float64)
            self.momentum_buffers[i].fill(0)
    _real_step(self)
SGD.step = _step
'''
    )
    flat, why = probe_sgd(top)
    assert why is None
    memory = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-memory-dtype")
    assert memory.score == 0 and memory.diagnosis == "state-dtype"
