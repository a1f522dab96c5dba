"""A kernel lives for days and its session is shut down and made again (``%reload_ext``, a new store): each
cycle must give back every thread and file descriptor it took, or a long-lived kernel runs out of them (and
libzmq, beside it in the kernel, aborts the whole process when it cannot open one)."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from polynb.notebook.handle import RunHandle
from polynb.notebook.session import KernelSession, SessionConfig, set_session

GUARD = 60.0
"""Deadlock guard for waits (never a timing assertion)."""

DAG = (
    "%%polyaxon_dag pipe\noperations:\n  - {name: train, hubRef: train}\n"
    "  - name: evaluate\n    hubRef: evaluate\n"
    "    events: [{ref: ops.train, kinds: [run_new_artifacts]}]\n"
    "    params: {ckpt: {ref: ops.train, value: artifacts.latest}}\n"
)


def cycle() -> None:
    """One session from load to shutdown: steps, a DAG with an event between its ops (the events-file
    watcher and its inotify instance start), a wait, then everything shut down."""
    session = KernelSession(SessionConfig(stop_grace=2.0))
    previous = set_session(session)
    assert previous is None
    config = Config()
    config.HistoryAccessor.enabled = False
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "polynb")
        for text in (
            "%%polyaxon_python train\nfrom polynb import tracking\nopen('ckpt.pt', 'w').write('w')\n"
            "tracking.log_artifact('ckpt.pt', kind='model')\n",
            "%%polyaxon_python evaluate --input ckpt:str --output size:int\nsize = len(open(ckpt).read())\n",
        ):
            assert shell.run_cell(text).error_in_exec is None
        result = shell.run_cell(DAG)
        assert result.error_in_exec is None
        handle: RunHandle = result.result
        assert handle.wait(timeout=GUARD) == "succeeded"
    finally:
        shell.run_line_magic("unload_ext", "polynb")
        assert shell.extension_manager is not None
        shell.extension_manager.loaded.discard("polynb")
        InteractiveShell.clear_instance()
        set_session(None)
        session.shutdown()


def taken() -> tuple[int, list[str]]:
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    threads = sorted(t.name for t in threading.enumerate() if t.is_alive())
    return fds, threads


def test_a_session_gives_back_its_threads_and_file_descriptors(tmp_path: Path) -> None:
    cycle()  # the first one may set up what a process keeps (imports, the widgets' registry)
    before = taken()
    for _ in range(3):
        cycle()
    after = taken()
    assert after[1] == before[1], "threads left running"
    assert after[0] == before[0], f"file descriptors leaked: {before[0]} before, {after[0]} after"
