"""Unpack an LMS download (zip, tar, tar.gz; archives inside archives) within caps.

An archive is student-controlled data: its member count, declared sizes and names
are checked before anything is inflated, and bytes are counted again while they are
written (a declared size can lie). Nothing is written outside the target folder:
absolute names, ``..``, links and devices are refused, and every file is created
with ``O_EXCL | O_NOFOLLOW`` relative to a folder we opened ourselves.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass

from .files import CHUNK, CREATE_FILE, OPEN_DIR, Budget, Refused, open_regular

MIB = 1 << 20


@dataclass(frozen=True)
class Caps:
    """Bounds for one top-level archive and everything nested in it."""

    total_bytes: int = 256 * MIB  # written, all levels together
    members: int = 10_000  # files and folders, all levels together
    depth: int = 3  # an LMS zip of per-student zips is depth 2
    ratio: int = 200  # uncompressed / compressed, per archive (deflate's maximum is ~1030)
    ratio_floor: int = 4 * MIB  # below this an archive may compress as well as it likes


def archive_stem(name: str, exts) -> str | None:
    """The folder an archive named ``name`` unpacks into (``a.tar.gz`` -> ``a``), or None if no archive."""
    stem, ext = os.path.splitext(name)
    if ext not in exts:
        return None
    inner, inner_ext = os.path.splitext(stem)
    return inner if inner_ext == ".tar" else stem


def member_parts(name: str, archive: str) -> list:
    """The path components of a member name, refusing anything that could land outside the target."""
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise Refused(f"{archive}: member {name[:120]!r} would be written outside its folder")
    return parts


class _Writer:
    """Writes members under one folder (an open descriptor), charging a shared budget."""

    def __init__(self, archive: str, root_fd: int, budget: Budget, caps: Caps, compressed: int):
        self.archive, self.root_fd, self.budget, self.caps = archive, root_fd, budget, caps
        self.limit = max(caps.ratio * max(compressed, 1), caps.ratio_floor)
        self.written = 0

    def folder(self, parts) -> int:
        """A descriptor of the folder ``parts`` below the root, created as needed (never via a link)."""
        fd = os.dup(self.root_fd)
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                self.budget.charge(files=1)
            except FileExistsError:
                pass
            try:
                child = os.open(part, OPEN_DIR, dir_fd=fd)
            except OSError as err:
                os.close(fd)
                raise Refused(f"{self.archive}: {'/'.join(parts)} is not a folder ({err.strerror})") from None
            os.close(fd)
            fd = child
        return fd

    def file(self, parts, stream) -> None:
        folder = self.folder(parts[:-1])
        try:
            out = os.open(parts[-1], CREATE_FILE, 0o644, dir_fd=folder)
        except FileExistsError:
            raise Refused(f"{self.archive}: member {'/'.join(parts)!r} appears twice") from None
        finally:
            os.close(folder)
        self.budget.charge(files=1)
        try:
            while chunk := stream.read(CHUNK):
                self.written += len(chunk)
                self.budget.charge(len(chunk))
                if self.written > self.limit:
                    raise Refused(
                        f"{self.archive}: inflates to more than {self.caps.ratio}x its size (compression-ratio cap)"
                    )
                os.write(out, chunk)
        finally:
            os.close(out)


def _is_link_zip(info: zipfile.ZipInfo) -> bool:
    """A Unix link or device entry (zips from other systems carry no file type: those are plain files)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind not in (0, stat.S_IFREG, stat.S_IFDIR)


def _unzip(fileobj, writer: _Writer, caps: Caps) -> None:
    with zipfile.ZipFile(fileobj) as archive:
        infos = archive.infolist()
        if len(infos) > writer.budget.files:
            raise Refused(f"{writer.archive}: {len(infos)} members, over the member cap ({caps.members})")
        declared = sum(i.file_size for i in infos)
        if declared > writer.budget.bytes:
            raise Refused(
                f"{writer.archive}: declares {declared} bytes, over the size cap "
                f"({caps.total_bytes} bytes for all archives together)"
            )
        if declared > writer.limit:
            raise Refused(
                f"{writer.archive}: declares {declared} bytes, more than {caps.ratio}x its size (compression-ratio cap)"
            )
        for info in infos:
            parts = member_parts(info.filename, writer.archive)
            if _is_link_zip(info):
                raise Refused(f"{writer.archive}: member {info.filename[:120]!r} is a link or device")
            if info.is_dir():
                os.close(writer.folder(parts))
                continue
            with archive.open(info) as stream:
                writer.file(parts, stream)


class _Inflated(io.RawIOBase):
    """The decompressed bytes of a tar, counted as tarfile reads them (headers and long names too),
    so even what tarfile holds in memory (a GNU long name, a pax header) stays within the cap."""

    def __init__(self, stream, writer: _Writer):
        self.stream, self.writer, self.read_bytes = stream, writer, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.stream.readinto(buffer)
        self.read_bytes += n
        if self.read_bytes > self.writer.limit + MIB:  # a MiB of tar headers and padding on top
            raise Refused(
                f"{self.writer.archive}: inflates to more than {self.writer.caps.ratio}x its size "
                "(compression-ratio cap)"
            )
        return n


def _decompressed(fileobj):
    """The tar inside ``fileobj`` (gzip, bzip2, xz or none), as a stream; never seeks."""
    magic = fileobj.read(6)
    fileobj.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(fileobj, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(fileobj, mode="rb")
    return fileobj


def _untar(fileobj, writer: _Writer, caps: Caps) -> None:
    members = 0
    with tarfile.open(fileobj=_Inflated(_decompressed(fileobj), writer), mode="r|") as archive:
        for member in archive:  # streamed: one header at a time
            members += 1
            if members > writer.budget.files:
                raise Refused(f"{writer.archive}: more than {caps.members} members (member cap)")
            parts = member_parts(member.name, writer.archive)
            if member.isdir():
                os.close(writer.folder(parts))
            elif member.isreg():
                if member.size > writer.budget.bytes:
                    raise Refused(
                        f"{writer.archive}: member {member.name[:120]!r} declares {member.size} "
                        f"bytes, over the size cap ({caps.total_bytes} bytes)"
                    )
                writer.file(parts, archive.extractfile(member))
            else:
                raise Refused(f"{writer.archive}: member {member.name[:120]!r} is a link or device")


def extract_capped(
    archive: str,
    dest: str,
    exts,
    caps: Caps = Caps(),
    budget: Budget | None = None,
    depth: int = 1,
    refused=lambda message: None,
) -> None:
    """Unpack ``archive`` into the new folder ``dest``; archives inside are unpacked beside themselves.

    Raises Refused (``dest`` removed) when ``archive`` breaks a cap. A nested archive that
    breaks one is removed with its folder and reported through ``refused``; the rest stays.
    """
    budget = budget or Budget(caps.total_bytes, caps.members, what=archive)
    if depth > caps.depth:
        raise Refused(f"{archive}: archives nested more than {caps.depth} deep (nesting cap)")
    fd, info = open_regular(archive)
    os.mkdir(dest, 0o755)
    try:
        root = os.open(dest, OPEN_DIR)
        try:
            writer = _Writer(archive, root, budget, caps, info.st_size)
            with os.fdopen(fd, "rb", closefd=True) as stream:
                fd = None
                is_zip = zipfile.is_zipfile(stream)
                stream.seek(0)  # is_zipfile read the end of the file
                (_unzip if is_zip else _untar)(stream, writer, caps)
        finally:
            os.close(root)
        _nested(dest, exts, caps, budget, depth, refused)
    except (Refused, zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, lzma.LZMAError) as err:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(err, Refused):
            raise
        raise Refused(f"{archive}: not a readable zip or tar archive ({type(err).__name__}: {err})") from None
    finally:
        if fd is not None:
            os.close(fd)


def _nested(folder: str, exts, caps: Caps, budget: Budget, depth: int, refused) -> None:
    """Unpack every archive that ``folder`` now holds, each beside itself, sharing the budget.

    Inside the top-level archive (an LMS download of per-student archives) a refused
    archive costs only itself; deeper down it costs the archive it came in (one student's).
    Bytes written before a refusal stay charged, so a class of bombs cannot multiply the work.
    """
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stem = archive_stem(name, exts)
            if stem is None or os.path.exists(os.path.join(here, stem)):
                continue
            try:
                extract_capped(
                    os.path.join(here, name), os.path.join(here, stem), exts, caps, budget, depth + 1, refused
                )
            except Refused as err:
                if depth > 1 or budget.bytes < 0 or budget.files < 0:
                    raise
                refused(str(err))
