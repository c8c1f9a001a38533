"""Execute a notebook top to bottom in a fresh kernel and report how long it took.

``python -m tools.run_notebook NB [--out OUT]``: exit 1 on the first cell error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config


def run(path: Path, timeout: int = 300):
    """(executed notebook, seconds). Raises CellExecutionError on the first failing cell."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # IPC sockets in a private temporary folder, which no other local user can reach,
    # rather than unencrypted TCP on loopback (which ipykernel rightly warns about).
    with tempfile.TemporaryDirectory(prefix="run-notebook-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            config=ipc,
            resources={"metadata": {"path": str(Path(path).parent)}},
        ).execute()
    return nb, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, help="write the executed notebook here")
    args = parser.parse_args(argv)
    try:
        nb, seconds = run(args.notebook)
    except CellExecutionError as err:
        print(f"{args.notebook}: a cell failed:\n{str(err)[-3000:]}", file=sys.stderr)
        return 1
    if args.out:
        nbformat.write(nb, args.out)
    print(f"{args.notebook}: executed {len(nb.cells)} cells in {seconds:.1f} s, no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
