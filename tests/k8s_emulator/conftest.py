"""The emulator's own tests: make ``k8s_emulator`` importable by name, bind the fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[1])
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from k8s_emulator import testkit  # noqa: E402

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor
