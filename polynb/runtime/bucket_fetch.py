"""Fetch a file or a folder from a bucket: what an init entry reading a bucket connection (or a bucket artifacts
store) runs, beside a local run or in a pod from polynb's image.

    python -m polynb.runtime.bucket_fetch --source s3://bucket/prefix/data --target /run/folder/data

An object at ``--source`` is written to ``--target``; otherwise every object under it (a folder) is written under
``--target``; the pair may be repeated. Nothing there is an error naming the URL. Credentials and the endpoint
come from the environment (a connection's ``env`` as variables, its secret as ``envFrom`` in a pod), the bucket's
name from ``POLYNB_STORE_CONNECTION`` (:mod:`polynb.runtime.store_sync`): no key is ever on a command line.
Failures are retried with back-off, then one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from polynb.runtime.store_sync import FIRST_BACKOFF, RETRIES, BucketSide, StoreError, Sync, side_of, with_retries


def fetch(source: str, target: Path) -> int:
    """Files written (raises :class:`StoreError`)."""
    side = side_of(source.rstrip("/"))
    if not isinstance(side, BucketSide):
        raise StoreError(f"{source}: not a bucket URL")
    fs = side._fs()
    path = side.bucket.root
    try:
        is_file = bool(fs.isfile(path))
    except Exception as exc:  # any failure of the client is the store's
        raise StoreError(side.bucket.describe(exc)) from None
    if is_file:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial")
        try:
            fs.get_file(path, str(partial))
        except Exception as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise StoreError(side.bucket.describe(exc)) from None
        os.replace(partial, target)  # whole or not at all
        return 1
    sync = Sync("down", target, side)
    moved = sync.run_pass()
    if moved == 0 and not sync.store.listing():
        raise StoreError(f"{source}: no such object or folder")
    return moved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynb.runtime.bucket_fetch", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source",
        required=True,
        action="append",
        help="s3://bucket/key, gs://..., az://...: a file or a folder (repeat with --target)",
    )
    parser.add_argument("--target", required=True, action="append", help="the local file or folder to write")
    args = parser.parse_args(argv)  # fmt: skip
    if len(args.source) != len(args.target):
        parser.error("give one --target per --source")
    for source, where in zip(args.source, args.target, strict=True):
        target = Path(where)
        try:
            moved = with_retries(functools.partial(fetch, source, target), retries=RETRIES, backoff=FIRST_BACKOFF)
        except StoreError as exc:
            print(f"bucket_fetch: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"bucket_fetch: {target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"fetched {source} -> {target} ({moved} file{'s' if moved != 1 else ''})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
