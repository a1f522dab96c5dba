"""Helpers shared by the tests (importable as ``support`` because ``tests/conftest.py`` puts ``tests/`` on
``sys.path``): ``recorder`` (what executor and engine callbacks receive), ``clikit`` (the ``polynb`` CLI in a
subprocess), ``execkit`` (local executor ops and process checks), ``schedkit`` (engine pipelines from YAML),
``kernelkit`` (a recorded ipykernel) and ``fakes`` (an executor the kernel tests load by name)."""
