"""A throwaway PostgreSQL server from Debian's package, on loopback only (tests and the soak bench)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if Path("/usr/lib/postgresql").exists()
    else None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def throwaway_postgres(database: str = "gradebook"):
    """Yields a SQLAlchemy URL of an empty database on a private server, removed afterwards."""
    if PG_BIN is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    # Outside pytest's 0700 temp root: the server runs as the postgres user, who must reach it.
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    # runuser lives in /usr/sbin, which a plain user's PATH may lack even when run as root.
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")
    as_user = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        [*as_user, str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "grader"],
        check=True,
        capture_output=True,
    )
    try:  # an interruption while the server starts still stops it
        subprocess.run(
            [
                *as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(data / "log"),
                "-o",
                f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield create_database(f"postgresql+psycopg2://grader@127.0.0.1:{port}/postgres", database)
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server of ``server_url``; its URL."""
    host, port = server_url.rsplit("@", 1)[1].split("/")[0].split(":")
    subprocess.run(
        [str(PG_BIN / "createdb"), "-h", host, "-p", port, "-U", "grader", name], check=True, capture_output=True
    )
    return server_url.rsplit("/", 1)[0] + f"/{name}"
