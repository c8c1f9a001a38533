"""Reading a probe's results file: data written by the student's process, hostile until checked.

Student code runs in the probe process, so it can replace ``out.json`` with
anything: a symlink to a host file or a FIFO, gigabytes, checks nobody asked
for, labels thousands of characters long, deep nesting, huge numbers, NaN
tokens, duplicate keys, bytes that are not UTF-8. This module is the only way
the trusted grader reads that file. It opens only a regular file in the scratch
folder without following links or blocking, reads at most ``MAX_FILE_BYTES``,
checks each line's size and nesting before parsing it, parses strict JSON
(no NaN/Infinity tokens, no duplicate keys, no out-of-range numbers), and
accepts only the checks and labels the grader asked for, as plain float64
arrays or short text. Anything else raises :class:`InvalidOutput` with a
one-line reason; the caller turns that into zero points for the component,
never a crash. The format is the probe's (``probe.output``).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..probe.record import MAX_TEXT, PROBLEMS
from . import content as contents
from . import reference
from .checks import UNEXPECTED, probe_spec
from .compare import quoted

MiB = 1024**2
MAX_FILE_BYTES = 8 * MiB  # a probe's real output is under 100 KiB
MAX_LINE_BYTES = 4 * MiB  # one check's observations (the largest real one is under 20 KiB)
# Numbers in one observation: 1 MiB of float64, as the npz reader allowed. A wrong-shaped but real
# observation (a student's buffer of the wrong size) fails its own check, never the whole component.
MAX_VALUES = 131072
MAX_ELEMENTS = 2 * MAX_VALUES  # JSON values in one line, counted before parsing: bounds the parser's memory
MAX_NDIM = 4
MAX_DEPTH = 5  # {"observations": [[label, {"values": [...]}]]} nests 5 deep
MAX_NUMBER_CHARS = 40  # digits of one JSON number: a float64 repr needs at most 24
EXTRA_OBSERVATIONS = 8  # a run may report this many more observations than the longest known run
CHECK_ID = re.compile(r"[a-z0-9-]{1,80}")
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class InvalidOutput(ValueError):
    """The results file cannot be trusted; the message is one line, safe to show."""


@dataclass(frozen=True)
class Asked:
    """What the grader asked one component's probe for, from the reference data alone."""

    bounds: dict  # check id -> how many observations a run may report
    labels: dict  # check id -> every label a known run (reference, alternative, variant) reports
    failure: re.Pattern = re.compile(r"\[\d{1,3}\] running the scenario")  # labels of a call that raised

    @property
    def max_lines(self) -> int:
        return len(self.bounds) + 1


@cache
def _known_runs(component: str, module) -> tuple:
    """(observations per (check, run), labels per check) of every run in the component's reference data."""
    counts, labels = {}, {}
    for key in reference.load_component_flat(component, module):
        source, check, _, label = key.split("|", 3)
        labels.setdefault(check, set()).add(label)
        counts[check, source] = counts.get((check, source), 0) + 1
    return counts, labels


def asked(component: str, module=None) -> Asked:
    module = module or contents.only()
    counts, labels = _known_runs(component, module)
    ids = [c["id"] for c in probe_spec(component, module)["checks"]]  # scored checks and signature scenarios
    longest = {check: max((n for (c, _), n in counts.items() if c == check), default=0) for check in ids}
    return Asked(
        {check: longest[check] + EXTRA_OBSERVATIONS for check in ids},
        {check: frozenset(labels.get(check, ())) for check in ids},
        module.FAILURE_LABEL,
    )


def read_results(scratch: Path, name: str, component: str, module=None) -> dict:
    """``{check|index|label: array}`` from ``scratch/name``, or InvalidOutput / FileNotFoundError."""
    return parse(read_regular_file(scratch, name, MAX_FILE_BYTES), asked(component, module))


def read_regular_file(folder: Path, name: str, cap: int) -> bytes:
    """The bytes of ``folder/name`` if it is a regular file of at most ``cap`` bytes.

    The file is opened without following a symlink (so no host path is ever
    opened) and without blocking (so a FIFO cannot hang the grader); what it is
    comes from fstat() of the open descriptor, so it cannot change in between.
    """
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=folder_fd
            )
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise FileNotFoundError(name) from None
            if err.errno == errno.ELOOP:
                raise InvalidOutput(f"{name} is a symbolic link, not a file") from None
            raise InvalidOutput(f"{name} cannot be opened ({errno.errorcode.get(err.errno, err.errno)})") from None
    finally:
        os.close(folder_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidOutput(f"{name} is not a regular file")
        if info.st_nlink != 1:
            raise InvalidOutput(f"{name} is a hard link")
        if info.st_size > cap:
            raise InvalidOutput(f"{name} is larger than {cap // MiB} MiB")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, min(MiB, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise InvalidOutput(f"{name} is larger than {cap // MiB} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse(data: bytes, asked: Asked) -> dict:
    """The accepted observations of a results file's bytes; InvalidOutput for anything else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidOutput("it is not UTF-8 text") from None
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > asked.max_lines:
        raise InvalidOutput("it has more lines than the grader asked for")
    flat, seen = {}, set()
    for number, line in enumerate(lines, 1):
        record = _strict_json(line, number)
        if not isinstance(record, dict):
            raise InvalidOutput(f"line {number} is not an object")
        if set(record) == {"problems"}:
            if PROBLEMS in seen:
                raise InvalidOutput("the problems are reported twice")
            seen.add(PROBLEMS)
            flat[PROBLEMS] = np.array(_text(record["problems"], "problems"))
            continue
        if set(record) != {"check", "observations"}:
            raise InvalidOutput(f"line {number} holds keys the grader did not ask for")
        check = record["check"]
        if not isinstance(check, str) or not CHECK_ID.fullmatch(check) or check not in asked.bounds:
            raise InvalidOutput(f"check '{quoted(check, 60)}' was not asked for")
        if check in seen:
            raise InvalidOutput(f"check '{check}' is reported twice")
        seen.add(check)
        observations = record["observations"]
        if not isinstance(observations, list) or len(observations) > asked.bounds[check]:
            raise InvalidOutput(f"check '{check}' reports more observations than the grader asked for")
        for index, pair in enumerate(observations):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise InvalidOutput(f"observation {index} of '{check}' is not a [label, value] pair")
            label = pair[0] if pair[0] in asked.labels[check] or asked.failure.fullmatch(pair[0]) else UNEXPECTED
            # A label no known run reports is replaced, so a forged label can only make its own check
            # fail, never reach the feedback.
            flat[f"{check}|{index:03d}|{label}"] = _value(pair[1], f"{check}|{index:03d}")
    return flat


def _strict_json(line: str, number: int):
    """One line parsed as strict JSON, its size and nesting checked first (the parser recurses)."""
    raw = line.encode("utf-8")
    if len(raw) > MAX_LINE_BYTES:
        raise InvalidOutput(f"line {number} is larger than {MAX_LINE_BYTES // MiB} MiB")
    depth, elements = _skeleton(raw)
    if depth > MAX_DEPTH:
        raise InvalidOutput(f"line {number} nests deeper than the grader's format")
    if elements > MAX_ELEMENTS:
        raise InvalidOutput(f"line {number} holds more values than the grader's format")
    try:
        return json.loads(
            line,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_number(int),
            parse_float=_number(float),
        )
    except InvalidOutput:
        raise
    except (ValueError, RecursionError) as err:
        raise InvalidOutput(f"line {number} is not valid JSON ({type(err).__name__})") from None


def _skeleton(raw: bytes) -> tuple:
    """(how deep brackets nest, how many values) in a JSON text, ignoring what strings hold.

    Vectorised, with no recursion and no object per value, so it costs a few bytes per byte of
    the line whatever the line holds. Escaped backslashes, then escaped quotes, are dropped
    first (left to right, as JSON reads them), so every quote left opens or closes a string.
    """
    plain = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    outside = (np.cumsum(plain == ord('"'), dtype=np.int32) & 1) == 0
    steps = ((plain == ord("[")) | (plain == ord("{"))).astype(np.int8)
    steps -= (plain == ord("]")) | (plain == ord("}"))
    steps *= outside
    depth = int(np.cumsum(steps, dtype=np.int32).max(initial=0))
    return depth, int(np.count_nonzero((plain == ord(",")) & outside)) + 1


def _unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidOutput("an object repeats a key")
    return dict(pairs)


def _no_constant(token: str):
    raise InvalidOutput(f"it holds the token {token}, which strict JSON has not (the probe writes \"nan\")")


def _number(kind):
    def parse_number(token: str):
        if len(token) > MAX_NUMBER_CHARS:
            raise InvalidOutput("it holds a number with too many digits")
        value = kind(token)
        if kind is float and not math.isfinite(value):
            raise InvalidOutput("it holds a number out of float64's range")
        return value

    return parse_number


def _text(value, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidOutput(f"'{where}' is not one text of at most {MAX_TEXT} characters")
    return value


def _value(value, where: str) -> np.ndarray:
    """An observation: one text, or float64 values with their shape; nothing else."""
    if isinstance(value, str):
        return np.array(_text(value, where))
    if not isinstance(value, dict) or set(value) != {"shape", "values"}:
        raise InvalidOutput(f"'{where}' is not a text or a {{shape, values}} object")
    shape, values = value["shape"], value["values"]
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(type(d) is int and 0 <= d <= MAX_VALUES for d in shape)
    ):
        raise InvalidOutput(f"'{where}' has a shape that is not a list of at most {MAX_NDIM} sizes")
    if not isinstance(values, list) or len(values) > MAX_VALUES or len(values) != math.prod(shape):
        raise InvalidOutput(f"'{where}' does not hold the values its shape declares")
    numbers = []
    for v in values:
        if type(v) in (int, float):
            numbers.append(float(v))
        elif isinstance(v, str) and v in NON_FINITE:
            numbers.append(NON_FINITE[v])
        else:
            raise InvalidOutput(f"'{where}' holds a value that is not a number")
    return np.array(numbers, dtype=np.float64).reshape(shape)
