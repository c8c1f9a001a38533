"""Reading a probe's results file: data written by the student's process, hostile until checked.

Student code runs in the probe process, so it can replace ``out.npz`` with
anything: a symlink to a host file or a FIFO, a zip bomb, members nobody asked
for, pickled objects, labels thousands of characters long. This module is the
only way the trusted grader reads that file. It opens only a regular file in
the scratch folder without following links or blocking, reads at most
``MAX_FILE_BYTES`` into memory, accepts only the members the grader asked for,
inflates each one under a cap, and only then parses it, as plain float64 or
short text. Anything else raises :class:`InvalidOutput` with a one-line reason;
the caller turns that into zero points for the component, never a crash.
"""
from __future__ import annotations

import errno
import io
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import reference
from .checks import UNEXPECTED, probe_spec, quoted
from .probe import MAX_TEXT, PROBLEMS

MiB = 1024**2
MAX_FILE_BYTES = 8 * MiB        # a probe's real output is under 100 KiB
MAX_MEMBER_BYTES = 1 * MiB      # one observation, inflated (the largest real one is under 1 KiB)
MAX_TOTAL_BYTES = 8 * MiB       # every accepted observation, inflated
MAX_NDIM = 4
EXTRA_OBSERVATIONS = 8          # a run may report this many more observations than the longest known run
# Labels the probe writes when a call raised (probe.attempt / probe.observe): shown, though no known run has them.
FAILURE_LABEL = re.compile(r"\[\d{1,3}\] (constructing the optimizer|running the scenario|step \d{1,3}: step\(\))")
MEMBER = re.compile(r"(?P<check>[a-z0-9-]+)\|(?P<index>\d{3})\|(?P<label>.*)\.npy", re.DOTALL)
CD_SIGNATURE = b"PK\x01\x02"    # starts every central-directory entry zipfile will parse


class InvalidOutput(ValueError):
    """The results file cannot be trusted; the message is one line, safe to show."""


@dataclass(frozen=True)
class Asked:
    """What the grader asked one component's probe for, from the reference data alone."""
    bounds: dict        # check id -> how many observations a run may report
    labels: dict        # check id -> every label a known run (reference, alternative, variant) reports

    @property
    def max_members(self) -> int:
        return sum(self.bounds.values()) + 1


@lru_cache(maxsize=None)
def _known_runs(component: str) -> tuple:
    """(observations per (check, run), labels per check) of every run in the component's reference data."""
    counts, labels = {}, {}
    for key in reference.load_component_flat(component):
        source, check, _, label = key.split("|", 3)
        labels.setdefault(check, set()).add(label)
        counts[check, source] = counts.get((check, source), 0) + 1
    return counts, labels


def asked(component: str) -> Asked:
    counts, labels = _known_runs(component)
    ids = [c["id"] for c in probe_spec(component)["checks"]]     # scored checks and signature scenarios
    longest = {check: max((n for (c, _), n in counts.items() if c == check), default=0) for check in ids}
    return Asked({check: longest[check] + EXTRA_OBSERVATIONS for check in ids},
                 {check: frozenset(labels.get(check, ())) for check in ids})


def read_results(scratch: Path, name: str, component: str) -> dict:
    """``{check|index|label: array}`` from ``scratch/name``, or InvalidOutput / FileNotFoundError."""
    return parse(read_regular_file(scratch, name, MAX_FILE_BYTES), asked(component))


def read_regular_file(folder: Path, name: str, cap: int) -> bytes:
    """The bytes of ``folder/name`` if it is a regular file of at most ``cap`` bytes.

    The file is opened without following a symlink (so no host path is ever
    opened) and without blocking (so a FIFO cannot hang the grader); what it is
    comes from fstat() of the open descriptor, so it cannot change in between.
    """
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                         dir_fd=folder_fd)
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
    if data.count(CD_SIGNATURE) > 2 * asked.max_members + 64:   # before zipfile builds one object per entry
        raise InvalidOutput("it has far more members than the grader asked for")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except Exception as err:  # zipfile raises many types for damaged or forged archives
        raise InvalidOutput(f"not a readable zip archive ({type(err).__name__})") from None
    if len(members) > asked.max_members:
        raise InvalidOutput("it has more members than the grader asked for")
    flat, slots, total = {}, set(), 0
    for member in members:
        name = quoted(member.filename, 60)
        key, slot = _accepted_key(member.filename, asked)
        if key is None:
            raise InvalidOutput(f"member '{name}' was not asked for")
        if slot in slots:
            raise InvalidOutput(f"member '{name}' is reported twice")
        slots.add(slot)
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or member.flag_bits & 0x1:
            raise InvalidOutput(f"member '{name}' is compressed or encrypted in a way the grader does not read")
        if member.file_size > MAX_MEMBER_BYTES:
            raise InvalidOutput(f"member '{name}' declares more than {MAX_MEMBER_BYTES // MiB} MiB")
        raw = _inflate(archive, member, name)
        total += len(raw)
        if total > MAX_TOTAL_BYTES:
            raise InvalidOutput(f"its members inflate past {MAX_TOTAL_BYTES // MiB} MiB in all")
        flat[key] = _array(raw, name, scalar_text=key == PROBLEMS)
    return flat


def _accepted_key(filename: str, asked: Asked) -> tuple:
    """(flat key, slot) for a member the grader asked for, else (None, None).

    A label no known run reports (and no failure label) is replaced, so a
    forged label can only make its own check fail, never reach the feedback.
    """
    if filename == PROBLEMS + ".npy":
        return PROBLEMS, PROBLEMS
    match = MEMBER.fullmatch(filename)
    if match is None or match["check"] not in asked.bounds or int(match["index"]) >= asked.bounds[match["check"]]:
        return None, None
    check, index, label = match["check"], match["index"], match["label"]
    if label not in asked.labels[check] and not FAILURE_LABEL.fullmatch(label):
        label = UNEXPECTED
    return f"{check}|{index}|{label}", (check, index)


def _inflate(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> bytes:
    """The member's bytes, decompressed in bounded pieces: stops as soon as it passes the cap."""
    chunks, size = [], 0
    try:
        with archive.open(member) as stream:
            while True:
                chunk = stream.read(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_MEMBER_BYTES:
                    raise InvalidOutput(f"member '{name}' inflates past {MAX_MEMBER_BYTES // MiB} MiB")
                chunks.append(chunk)
    except InvalidOutput:
        raise
    except Exception as err:  # bad CRC, truncated data, a corrupt deflate stream
        raise InvalidOutput(f"member '{name}' is damaged ({type(err).__name__})") from None
    return b"".join(chunks)


def _array(raw: bytes, name: str, scalar_text: bool) -> np.ndarray:
    """A member's bytes as an array: float64 values, or one piece of text, nothing else.

    The header is checked before any array exists (``np.load`` would allocate
    whatever shape a header claims), and the data must be exactly that size.
    """
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fp, max_header_size=1024)
    except Exception as err:  # numpy raises several types for a malformed header
        raise InvalidOutput(f"member '{name}' is not a plain array ({type(err).__name__})") from None
    text = dtype.kind == "U" and dtype.isnative and shape == () and dtype.itemsize <= 4 * MAX_TEXT
    values = not scalar_text and dtype == np.float64 and dtype.isnative and len(shape) <= MAX_NDIM
    if not (text or values):
        if dtype.kind == "U":
            raise InvalidOutput(f"member '{name}' holds more than one string or one longer than {MAX_TEXT} characters")
        raise InvalidOutput(f"member '{name}' holds {quoted(dtype.str, 20)} data in {len(shape)} dimensions, "
                            "not float64 values or text")
    count = math.prod(shape)
    if any(d < 0 for d in shape) or count * dtype.itemsize != len(raw) - fp.tell():
        raise InvalidOutput(f"member '{name}' does not hold the data its header declares")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=fp.tell()).reshape(shape, order="F" if fortran else "C")
