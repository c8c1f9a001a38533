"""The probe's results file is data from an adversary (issue 9, item 3).

Student code runs in the probe process and can leave anything at ``out.npz``.
Each forgery here must cost only its component, with a one-line reason, and
must never hang, inflate unbounded data, follow a link, or put long or crafted
text into feedback. The payloads are written by hand (see ``zip_bytes``).
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from autograder import checks, probe_output, reference
from autograder.probe import MAX_TEXT, PROBLEMS
from autograder.probe_output import MAX_FILE_BYTES, InvalidOutput, parse, read_results

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024**2
SPEC = json.dumps(checks.probe_spec("SGD"))[:20_000]      # what a forged label tried to smuggle out


# -- payloads -------------------------------------------------------------------------------

def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=True)
    return out.getvalue()


ZEROS_MIB = zlib.compressobj(9, zlib.DEFLATED, -15)
ONE_MIB_OF_ZEROS = ZEROS_MIB.compress(b"\0" * MiB) + ZEROS_MIB.flush(zlib.Z_FULL_FLUSH)   # history reset after it


def deflated_zeros_npy(mib: int) -> tuple:
    """(raw deflate data, crc, size) of a float64 npy of ``mib`` MiB of zeros, in about 1 KiB per MiB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (mib * MiB // 8,)})
    head = header.getvalue()
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH) + ONE_MIB_OF_ZEROS * mib + comp.flush()
    crc = zlib.crc32(head)
    for _ in range(mib):
        crc = zlib.crc32(b"\0" * MiB, crc)
    return data, crc, len(head) + mib * MiB


def zip_bytes(members: list) -> bytes:
    """A zip archive by hand, so sizes can lie: members are (name, data) or (name, data, method, crc, size)."""
    out, central = io.BytesIO(), io.BytesIO()
    for member in members:
        name, data = member[0].encode(), member[1]
        method, crc, size = member[2:] if len(member) > 2 else (0, zlib.crc32(data), len(data))
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, method, 0, 0x21, crc, len(data), size,
                              len(name), 0) + name + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, method, 0, 0x21, crc, len(data),
                                  size, len(name), 0, 0, 0, 0, 0, offset) + name)
    start, cd = out.tell(), central.getvalue()
    n = len(members)
    return out.getvalue() + cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), start, 0)


def members_of(flat: dict) -> list:
    return [(f"{key}.npy", npy(value)) for key, value in flat.items()]


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


# -- the file itself ------------------------------------------------------------------------

def test_a_real_results_file_reads_back_exactly(tmp_path, good):
    (tmp_path / "out.npz").write_bytes(zip_bytes(members_of(good)))
    flat = read_results(tmp_path, "out.npz", "SGD")
    assert flat.keys() == good.keys()
    assert all(np.array_equal(flat[k], good[k]) for k in good)
    assert all(r.score == r.max_score for r in checks.judge_component("SGD", flat, reference.load()))


def test_the_probes_own_writer_is_read_back(tmp_path, good):
    np.savez(tmp_path / "out.npz", **good)
    assert read_results(tmp_path, "out.npz", "SGD").keys() == good.keys()


def read_with_timeout(folder: Path, name: str = "out.npz", timeout: float = 10.0) -> str:
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
                    pass             # unblock the reader so the test process can end
        pytest.fail("reading the results file blocked")
    return outcome["reason"]


def test_a_symlink_to_a_host_path_is_never_followed(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    secret = tmp_path / "instructor-only.txt"
    secret.write_text("SECRET-HOST-CONTENT " * 100)
    blocking = tmp_path / "host.fifo"
    os.mkfifo(blocking)              # opening this for reading blocks until a writer comes: following the link hangs
    reasons = set()
    for target in (blocking, secret, tmp_path / "does-not-exist"):
        (scratch / "out.npz").unlink(missing_ok=True)
        (scratch / "out.npz").symlink_to(target)
        reasons.add(read_with_timeout(scratch))
    assert reasons == {"out.npz is a symbolic link, not a file"}    # the same for every target: no existence oracle


def test_a_fifo_in_scratch_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "out.npz")
    assert read_with_timeout(tmp_path) == "out.npz is not a regular file"


def test_devices_are_refused(tmp_path):
    (tmp_path / "out.npz").symlink_to("/dev/zero")
    assert read_with_timeout(tmp_path) == "out.npz is a symbolic link, not a file"
    (tmp_path / "out.npz").unlink()
    try:
        os.mknod(tmp_path / "out.npz", 0o600 | 0o020000, os.makedev(1, 5))    # a character device: /dev/zero
    except PermissionError:
        pytest.skip("cannot create a device node here")
    assert read_with_timeout(tmp_path) == "out.npz is not a regular file"


def test_a_hard_link_is_refused(tmp_path, good):
    (tmp_path / "elsewhere.npz").write_bytes(zip_bytes(members_of(good)))
    os.link(tmp_path / "elsewhere.npz", tmp_path / "out.npz")
    assert read_with_timeout(tmp_path) == "out.npz is a hard link"


def test_a_file_over_the_cap_is_not_read(tmp_path):
    with open(tmp_path / "out.npz", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)              # sparse: costs no disk
    assert read_with_timeout(tmp_path) == f"out.npz is larger than {MAX_FILE_BYTES // MiB} MiB"


def test_a_missing_file_is_not_an_invalid_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path, "out.npz", "SGD")


# -- members --------------------------------------------------------------------------------

def test_a_member_declaring_hundreds_of_mib_is_refused_before_inflating(good, asked, monkeypatch):
    data, crc, size = deflated_zeros_npy(300)
    key = first_key(good, "sgd-plain")
    inflated = []
    monkeypatch.setattr(probe_output, "_inflate", lambda *a: inflated.append(a) or b"")
    message = reason(zip_bytes([(f"{key}.npy", data, 8, crc, size)]), asked)
    assert "declares more than 1 MiB" in message and not inflated


def test_a_member_declaring_a_small_size_is_not_inflated_past_it(good, asked):
    data, crc, size = deflated_zeros_npy(300)
    key = first_key(good, "sgd-plain")
    message = reason(zip_bytes([(f"{key}.npy", data, 8, crc, 1000)]), asked)
    assert re.search(r"inflates past 1 MiB|is damaged \(BadZipFile\)", message)


def test_inflating_stops_at_the_cap_whatever_the_header_says(good):
    """The second line behind the declared-size check: zipfile's own bound is not relied on."""
    import zipfile

    data, crc, size = deflated_zeros_npy(300)
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes([("m.npy", data, 8, crc, size)])))
    with pytest.raises(InvalidOutput, match="inflates past 1 MiB"):
        probe_output._inflate(archive, archive.infolist()[0], "m.npy")


def test_a_member_declaring_more_than_it_holds_is_refused(good, asked):
    key = first_key(good, "sgd-plain")
    body = npy(good[key])
    assert "declares more than 1 MiB" in reason(zip_bytes([(f"{key}.npy", body, 0, zlib.crc32(body), 300 * MiB)]),
                                                asked)


def test_small_members_cannot_add_up_past_the_total_cap(good, asked):
    keys = [k for k in good if k.startswith("sgd-momentum-decay|")][:10]
    member = npy(np.zeros(MiB // 8 - 16))                   # just under 1 MiB each
    assert "inflate past 8 MiB in all" in reason(zip_bytes([(f"{k}.npy", member) for k in keys]), asked)


@pytest.mark.parametrize("name", ["evil.npy", "adam-resume|000|[1] step 1: params[0].npy",
                                  "sgd-plain|999|[1] step 1: params[0].npy", "sgd-plain|0|x.npy",
                                  "../out.npy", "__problems__"])
def test_members_not_asked_for_are_refused(good, asked, name):
    members = members_of(good) + [(name, npy(np.zeros(3)))]
    assert reason(zip_bytes(members), asked).startswith("member '")


def test_a_member_reported_twice_is_refused(good, asked):
    key = first_key(good, "sgd-plain")
    other = key.split("|")[0] + "|" + key.split("|")[1] + "|another label"
    for extra in (key, other):
        assert "reported twice" in reason(zip_bytes(members_of(good) + [(f"{extra}.npy", npy(np.zeros(3)))]), asked)


def test_far_too_many_entries_are_refused_before_zipfile_reads_them(asked):
    many = [(f"x{i}.npy", b"") for i in range(2 * asked.max_members + 100)]
    assert reason(zip_bytes(many), asked) == "it has far more members than the grader asked for"


@pytest.mark.parametrize("value, why", [
    (np.array([{"pickled": "object"}], dtype=object), "|O data"),
    (np.arange(4), "<i8 data"),
    (np.zeros(3, np.complex128), "<c16 data"),
    (np.zeros(3, [("a", "<f8")]), "data in 1 dimensions"),
    (np.zeros(3, ">f8"), ">f8 data"),
    (np.zeros((1,) * 5), "in 5 dimensions"),
    (np.array(["two", "strings"]), "more than one string"),
    (np.array("x" * (MAX_TEXT + 1)), f"longer than {MAX_TEXT} characters"),
])
def test_only_float64_values_and_short_text_are_accepted(good, asked, value, why):
    key = first_key(good, "sgd-plain")
    forged = dict(good, **{key: value})
    assert why in reason(zip_bytes(members_of(forged)), asked)


def test_problems_must_be_text(good, asked):
    assert "not float64 values or text" in reason(zip_bytes(members_of(dict(good, **{PROBLEMS: np.zeros(3)}))), asked)


def test_a_pickle_disguised_as_a_member_is_refused(good, asked):
    import pickle

    key = first_key(good, "sgd-plain")
    payload = pickle.dumps(np.zeros(3))
    assert "is not a plain array" in reason(zip_bytes([(f"{key}.npy", payload)]), asked)


def test_a_header_claiming_a_huge_shape_is_refused_before_any_allocation(good, asked):
    key = first_key(good, "sgd-plain")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    message = reason(zip_bytes([(f"{key}.npy", header.getvalue() + b"\0" * 8)]), asked)
    assert "does not hold the data its header declares" in message


def test_damaged_archives_are_refused(good, asked):
    data = zip_bytes(members_of(good))
    assert "not a readable zip archive" in reason(b"PK\x05\x06 not a zip", asked)
    assert "not a readable zip archive" in reason(data[:-30], asked)
    tampered = bytearray(data)
    tampered[200] ^= 0xFF                      # inside the first member's data: its CRC no longer matches
    assert "is damaged" in reason(bytes(tampered), asked)


# -- labels and text never carry anything into feedback -------------------------------------

def spec_windows(text: str, width: int) -> set:
    return {SPEC[i:i + width] for i in range(0, len(SPEC) - width)} & {text[i:i + width] for i in range(len(text))}


def test_forged_labels_and_messages_never_reach_feedback(good, asked):
    forged, relabelled = {}, 0
    for n, (key, value) in enumerate(good.items()):
        if key == PROBLEMS:
            forged[key] = np.array(SPEC[:MAX_TEXT])
        elif n % 2:                                              # a label carrying the hidden inputs
            check, index, _ = key.split("|", 2)
            forged[f"{check}|{index}|{SPEC[n * 10:n * 10 + 20_000]}"] = value
            relabelled += 1
        elif value.dtype.kind == "U":                            # a message carrying them
            forged[key] = np.array("\x1b[2J\r" + SPEC[n:n + MAX_TEXT - 5])
        else:
            forged[key] = value + 1.0
    flat = parse(zip_bytes(members_of(forged)), asked)
    assert sum(1 for k in flat if k.endswith("|" + probe_output.UNEXPECTED)) == relabelled > 0
    assert all(len(k) < 200 for k in flat)
    results = checks.judge_component("SGD", flat, reference.load())
    assert all(r.score == 0 for r in results)
    report = json.dumps([r.as_dict() for r in results])
    assert len(report) < 900 * len(results)                     # a 20,000-character label or message made it 40 KB
    for r in results:
        assert len(r.message) < 800 and r.message.isprintable()
        assert not spec_windows(r.message, checks.QUOTED + 1)    # at most a quoted snippet, never more


def test_student_text_is_quoted_short_and_on_one_line(good, asked):
    key = first_key(good, "sgd-validation")                # the expected value is text ("ValueError")
    forged = dict(good, **{key: np.array("raised ValueError: \x1b[2J\r\n\u202e" + SPEC[:MAX_TEXT - 30])})
    flat = parse(zip_bytes(members_of(forged)), asked)
    message = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-validation").message
    assert "got raised ValueError: [2J" in message and message.isprintable()
    assert not spec_windows(message, checks.QUOTED + 1) and spec_windows(message, 40)


def test_an_unknown_label_only_fails_its_own_check(good, asked):
    key = first_key(good, "sgd-validation")
    check, index, _ = key.split("|", 2)
    forged = {(f"{check}|{index}|" + "x" * 5000 if k == key else k): v for k, v in good.items()}
    flat = parse(zip_bytes(members_of(forged)), asked)
    assert f"{check}|{index}|{probe_output.UNEXPECTED}" in flat
    results = {r.id: r for r in checks.judge_component("SGD", flat, reference.load())}
    assert results["sgd-validation"].score == 0 and "xxxxx" not in results["sgd-validation"].message
    assert all(r.score == r.max_score for i, r in results.items() if i != "sgd-validation")


def test_failure_labels_of_the_probe_are_still_shown(good, asked):
    keys = [k for k in good if k.startswith("sgd-plain|")]
    crashed = {k: v for k, v in good.items() if k not in keys[4:]}
    crashed[keys[4].rsplit("|", 1)[0] + "|[1] step 2: step()"] = np.array("raised ZeroDivisionError: boom")
    flat = parse(zip_bytes(members_of(crashed)), asked)
    message = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-plain").message
    assert "Your step() raised ZeroDivisionError: boom at step 2 (scenario 1)" in message


# -- memory: the grader's peak while reading a bomb -----------------------------------------

PEAK = """
import resource, sys
from pathlib import Path
from autograder import probe_output
probe_output.asked("SGD")                       # reference data loaded in both runs
if sys.argv[1] == "read":
    try:
        probe_output.read_results(Path(sys.argv[2]), "out.npz", "SGD")
    except probe_output.InvalidOutput as err:
        print(err, file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_mib(*args) -> int:
    result = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


@pytest.mark.parametrize("declared", ["truthful", "forged small"])
def test_reading_a_bomb_keeps_the_graders_memory_small(tmp_path, good, declared):
    """Three members of 256 MiB of zeros each, about 800 KiB on disk."""
    data, crc, size = deflated_zeros_npy(256)
    keys = [k for k in good if k.startswith("sgd-plain|")][:3]
    (tmp_path / "out.npz").write_bytes(zip_bytes(
        [(f"{k}.npy", data, 8, crc, size if declared == "truthful" else 512) for k in keys]))
    baseline, reading = peak_mib("baseline", str(tmp_path)), peak_mib("read", str(tmp_path))
    print(f"peak RSS: {baseline} MiB without reading, {reading} MiB reading the bomb ({declared} sizes)")
    assert reading - baseline < 32


# -- through the real sandboxed probe: top-level code in a solution cell replaces its results ------

FORGE = '''
import atexit as _atexit, os as _os

def _forge():
    if "sgd-plain" not in open("spec.json").read():
        return                           # only the SGD probe's results are replaced
    _os.remove("out.npz")
{body}
_atexit.register(_forge)
'''
FORGED_LABELS = '''    import numpy as _np
    spec = open("spec.json").read()
    with _np.load("out.npz.bak", allow_pickle=False) as real:
        flat = {k: real[k] for k in real.files}
    forged = {}
    for n, (key, value) in enumerate(flat.items()):
        check, index, _ = (key.split("|", 2) + ["", ""])[:3]
        if n % 2 and index:
            forged[f"{check}|{index}|{spec[n:n + 20000]}"] = value
        elif value.dtype.kind == "U":
            forged[key] = _np.array(spec[n:n + 999])
        else:
            forged[key] = value
    _np.savez("out.npz", **forged)
'''


def sgd_cells(top_level: str) -> list:
    """The instructor's cells, with ``top_level`` appended to the student's SGD cell."""
    import nbformat

    from autograder.arrival.notebook import graded_code

    source = nbformat.read(ROOT / "source/07_optimizers/optimizers.ipynb", as_version=4)
    return [(name, code + "\n" + top_level if name == "your cell 'sgd'" else code)
            for name, code in graded_code(source, source)]


def probe_sgd(top_level: str, timeout: float = 120.0) -> tuple:
    """(observations, reason) of the sandboxed SGD probe; the test fails, not hangs, if grading blocks."""
    from autograder.hidden import probe_component

    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(r=probe_component(sgd_cells(top_level), "SGD")),
                              daemon=True)
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
    data, crc, size = deflated_zeros_npy(256)
    members = [(f"sgd-plain|{i:03d}|[1] step 1: params[{i}].npy", data, 8, crc, size) for i in range(3)]
    body = (f"    import base64\n    open('out.npz', 'wb').write(base64.b64decode({__import__('base64').b64encode(zip_bytes(members))!r}))\n")
    flat, why = probe_sgd(FORGE.format(body=body))
    assert flat is None
    assert why == ("the SGD checks reported an invalid results file "
                   "(member 'sgd-plain|000|[1] step 1: params[0].npy' declares more than 1 MiB)")


@pytest.mark.slow
@sandboxed()
def test_sandboxed_symlinks_to_host_paths_are_not_followed(tmp_path):
    secret = tmp_path / "instructor-only.txt"        # outside the sandbox: its /tmp is private
    secret.write_text("SECRET-HOST-CONTENT")
    reasons = set()
    for target in (secret, tmp_path / "does-not-exist", "/dev/zero"):
        flat, why = probe_sgd(FORGE.format(body=f"    _os.symlink({str(target)!r}, 'out.npz')\n"))
        assert flat is None
        reasons.add(why)
    assert reasons == {"the SGD checks reported an invalid results file (out.npz is a symbolic link, not a file)"}


@pytest.mark.slow
@sandboxed()
def test_sandboxed_fifo_does_not_hang_grading():
    flat, why = probe_sgd(FORGE.format(body="    _os.mkfifo('out.npz')\n"))
    assert flat is None and why.endswith("(out.npz is not a regular file)")


@pytest.mark.slow
@sandboxed()
def test_sandboxed_forged_labels_do_not_carry_the_scenario_inputs_into_feedback():
    body = "    pass\n"
    top = FORGE.format(body=body).replace('    _os.remove("out.npz")\n', '    _os.replace("out.npz", "out.npz.bak")\n'
                                          + FORGED_LABELS)
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
    from autograder.sample_class import LIAR

    top = LIAR + '''
_real_step = SGD.step
def _step(self):
    for i, p in enumerate(self.params):
        if self.momentum and p.grad is not None and self.momentum_buffers[i] is None:
            self.momentum_buffers[i] = Float32Looking(p.data.shape, dtype=np.float64)
            self.momentum_buffers[i].fill(0)
    _real_step(self)
SGD.step = _step
'''
    flat, why = probe_sgd(top)
    assert why is None
    memory = next(r for r in checks.judge_component("SGD", flat, reference.load()) if r.id == "sgd-memory-dtype")
    assert memory.score == 0 and memory.diagnosis == "state-dtype"
