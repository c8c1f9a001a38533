"""``make instructor-env``: nbgrader's instructor tools back in this venv's JupyterLab.

``make env`` runs binder/postBuild, which switches off (and locks) what only instructors
use: the formgrader, course list, create-assignment panel, assignment list and the
Nbgrader menu. This undoes exactly what is switched off there, read from the venv's
own configuration, so the list of tools lives in one place (binder/postBuild).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager

PAGE_CONFIG = Path(sys.prefix, "etc", "jupyter", "labconfig", "page_config.json")
JUPYTER = str(Path(sys.executable).parent / "jupyter")


def switched_off() -> tuple[list, list]:
    """(lab plugins, server extensions) of nbgrader that this venv has switched off."""
    page = json.loads(PAGE_CONFIG.read_text()) if PAGE_CONFIG.exists() else {}
    plugins = sorted(
        name
        for name, off in page.get("disabledExtensions", {}).items()
        if off and name.startswith("@jupyter/nbgrader:")
    )
    server = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
    extensions = sorted(name for name, on in server.items() if name.startswith("nbgrader.") and not on)
    return plugins, extensions


def main() -> int:
    plugins, extensions = switched_off()
    if plugins:
        subprocess.run([JUPYTER, "labextension", "unlock", "--level=sys_prefix", *plugins], check=True)
        subprocess.run([JUPYTER, "labextension", "enable", "--level=sys_prefix", *plugins], check=True)
    if extensions:
        subprocess.run([JUPYTER, "server", "extension", "enable", "--sys-prefix", *extensions], check=True)
    left = switched_off()
    if any(left):
        print(f"error: still switched off: {left}", file=sys.stderr)
        return 1
    print(
        f"instructor JupyterLab: {len(plugins)} nbgrader plugins and {len(extensions)} server extensions "
        "switched back on (formgrader, create assignment, course list); `make env` does not undo this, "
        "`bash binder/postBuild` does"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
