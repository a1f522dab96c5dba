"""The installed version of polynb, looked up on first use.

The version has one source, labextension/package.json (read at build time by hatch-nodejs-version, see
pyproject.toml); here it comes from the installed metadata. ``importlib.metadata`` costs tens of milliseconds, so
it is loaded only when the version is asked for: every local run's shim imports the ``polynb`` package.
"""

from __future__ import annotations


def installed_version() -> str:
    """The installed polynb's version, ``0+unknown`` for a source tree on ``sys.path`` that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polynb")
    except PackageNotFoundError:
        return "0+unknown"
