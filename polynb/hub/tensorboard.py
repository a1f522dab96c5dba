"""The program of the built-in ``tensorboard`` component: TensorBoard that loads every asset through the path its
page was reached by.

``python -m polynb.hub.tensorboard [tensorboard flags…]`` (the flags of the ``tensorboard`` command, unchanged)

TensorBoard's page names its fonts by absolute path (``url(/font-roboto/…)`` in ``index.html``;
tensorflow/tensorboard#1885), and ``--path_prefix`` does not change that. Behind a path proxy such as
jupyter-server-proxy (``{base_url}proxy/<port>/``) the browser then asks the Jupyter server's root for them and
gets 404s. This program is TensorBoard's own ``main`` with one change, through TensorBoard's hook for custom static
assets: in the files at the root of its asset zip (the page and its script, served from TensorBoard's root),
references to the asset folders are made relative, so they resolve under whatever prefix the page was served at:
directly, through a proxy, or with ``--path_prefix``.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from typing import IO

AssetsProvider = Callable[[], IO[bytes]]


def relative_asset_refs(name: str, data: bytes, folders: Sequence[str]) -> bytes:
    """``data`` of the asset ``name`` with ``url(/<folder>/``, ``"/<folder>/`` and ``'/<folder>/`` made relative.

    Only files at the root of the zip are changed: a relative reference there resolves next to the page, where
    the folders are; inside a folder it would not.
    """
    if "/" in name or not folders:
        return data
    pattern = rb"""([("'])/(""" + "|".join(re.escape(f) for f in sorted(folders)).encode() + rb")/"
    return re.sub(pattern, rb"\1\2/", data)


def relative_assets(provider: AssetsProvider) -> AssetsProvider:
    """An assets provider serving ``provider``'s zip with :func:`relative_asset_refs` applied (built once)."""
    built: list[bytes] = []

    def open_assets() -> IO[bytes]:
        if not built:
            out = io.BytesIO()
            with zipfile.ZipFile(provider()) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
                folders = sorted({n.split("/", 1)[0] for n in src.namelist() if "/" in n})
                for info in src.infolist():
                    dst.writestr(info.filename, relative_asset_refs(info.filename, src.read(info), folders))
            built.append(out.getvalue())
        return io.BytesIO(built[0])

    return open_assets


def main(argv: Sequence[str] | None = None) -> None:
    """Run TensorBoard as its ``tensorboard`` command does (``tensorboard.main.run_main``), with relative assets."""
    from absl import app
    from tensorboard import assets, default, main_lib, program
    from tensorboard.plugins import base_plugin

    main_lib.global_init()
    board = program.TensorBoard(
        plugins=default.get_plugins(),
        assets_zip_provider=relative_assets(assets.get_default_assets_zip_provider()),
    )
    try:
        app.run(board.main, argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)],
                flags_parser=board.configure)  # fmt: skip
    except base_plugin.FlagsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
