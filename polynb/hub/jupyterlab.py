"""The program of the built-in ``jupyterlab`` component: JupyterLab as a service, with a token of its own, served
where the notebook's Jupyter server proxies it.

``python -m polynb.hub.jupyterlab --port PORT [--host HOST] [--root-dir DIR] [--prefix PREFIX]``

* The token: ``$JUPYTER_TOKEN`` if the op sets it, else a new random one (``secrets.token_urlsafe``). It is handed
  to ``jupyter lab`` in its environment (``JUPYTER_TOKEN``), never on its command line, which every user of the
  machine can read.
* The base URL is ``{PREFIX}proxy/absolute/{PORT}/``, ``PREFIX`` being the notebook's Jupyter server's
  (``$JUPYTERHUB_SERVICE_PREFIX``, else ``/``). jupyter-server-proxy's ``proxy/absolute`` passes the whole path
  on, so JupyterLab's pages, which name their assets and API by absolute path, are served same-origin through
  the notebook's server (behind its login) as well as directly at ``http://HOST:PORT{base}``. The plain
  ``proxy/<port>/`` other services use strips the prefix, and a JupyterLab behind it would load the notebook
  server's own assets and API instead of its own.
* Before starting it writes ``service-page.json`` into the run's artifacts folder (mode 0600, readable only by
  the user the run is theirs): ``{"path": "<base>lab", "token": ...}``. The local executor reports the page as
  the run's URL (without the token) once the port answers; the notebook adds the token to the link it shows.

stdlib only: it runs where the op runs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence

SERVICE_PAGE = "service-page.json"
"""In the run's artifacts folder: the page a service serves (``path``) and the token it takes (``token``)."""


def base_path(port: int, prefix: str) -> str:
    """``{prefix}proxy/absolute/{port}/``, with ``prefix`` normalized to ``/…/``."""
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return f"{prefix}proxy/absolute/{port}/"


def lab_argv(*, host: str, port: int, base: str, root_dir: str) -> list[str]:
    """The ``jupyter lab`` command line (no secret on it)."""
    return [
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the port is the one polynb placed; another would never be found
        f"--ServerApp.base_url={base}",
        f"--ServerApp.root_dir={root_dir}",
        # Requests proxied by the notebook's server carry its Host header; the token guards the server.
        "--ServerApp.allow_remote_access=True",
        # As root (a container's usual user) JupyterLab refuses to start without it, as Polyaxon's hub passes it.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]


def write_page(folder: str, path: str, token: str) -> None:
    """``service-page.json`` in ``folder``, created 0600 (the token is a secret)."""
    target = os.path.join(folder, SERVICE_PAGE)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"path": path, "token": token}, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polynb.hub.jupyterlab", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--root-dir", default=os.getcwd())
    parser.add_argument("--prefix", default=os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/")
    args = parser.parse_args(argv)
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(32)
    base = base_path(args.port, args.prefix)
    folder = os.environ.get("POLYAXON_RUN_ARTIFACTS_PATH")
    if folder:
        write_page(folder, base + "lab", token)
    os.makedirs(args.root_dir, exist_ok=True)
    command = lab_argv(host=args.host, port=args.port, base=base, root_dir=args.root_dir)
    env = {**os.environ, "JUPYTER_TOKEN": token}
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 -- an argument list, no shell
    except FileNotFoundError:
        print("jupyterlab: `jupyter` is not installed where this op runs (pip install jupyterlab)", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
