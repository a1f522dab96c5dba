"""Jupyter server for the Galata tests: a scratch copy of the repo's notebooks/ (tests run and save
notebooks; the repo's copies stay untouched), loopback only, no token (test server only)."""

import os
import shutil
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - `c` is the config object Jupyter passes in

REPO = Path(__file__).resolve().parents[2]
root = Path(tempfile.mkdtemp(prefix="polynb-ui-root-"))
shutil.copytree(
    REPO / "notebooks",
    root / "notebooks",
    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"),
)

c.ServerApp.root_dir = str(root)  # noqa: F821
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.port = int(os.environ.get("POLYNB_UI_PORT", "18888"))  # noqa: F821
# CI machines run as root; jupyter refuses that unless told
c.ServerApp.allow_root = True  # noqa: F821
# no update/news checks from a test server
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # noqa: F821
