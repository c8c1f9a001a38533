"""``python -m autograder.probe CELLS.json SPEC.json OUT.json``: the probe, as the sandbox runs it."""

import sys
import traceback

from .run import main

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception:
        traceback.print_exc()
        sys.exit(2)
