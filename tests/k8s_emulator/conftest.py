"""The emulator's own tests: bind the emulator fixtures."""

from __future__ import annotations

from k8s_emulator import testkit

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
