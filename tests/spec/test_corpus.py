"""The conformance corpus: every file under ``corpus/valid`` and ``corpus/invalid`` through ``polynb check``.

Each corpus file starts with a comment header that states what ``check`` must say about it::

    # expect: valid
    # expect: invalid run.operations[1].events[0].kinds[0] line=14
    # expect-message: did you mean 'dependencies'
    # unsupported: matrix

* ``expect: invalid PATH [line=N]``: the first error (in the order of ``SpecErrors``: line, column, path)
  has field path ``PATH`` and, when given, the 1-based line ``N``. Root-level problems use ``(root)``.
* ``expect-message: TEXT``: the first error's message contains ``TEXT`` (case-insensitive).
* ``unsupported: WHAT``: a valid file that ``check`` accepts and the compiler refuses ("not supported yet").

The header is read from raw bytes, so a file whose body is not UTF-8 still carries its expectation.
Conventions for paths: unknown/missing keys name the key (``hooks[1].hubRef``); ref-form problems point
at ``.ref``; problems with what a ref's ``value`` selects (missing output, wrong type, wrong list-ness,
outputs awaited through a non-final event) point at ``.value``; a cycle points at the edge of the first
op (document order) on the cycle.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
MIN_CORPUS_FILES = 90
_EXPECT = re.compile(r"^#\s*expect:\s*(valid|invalid)(?:\s+(\S+))?(?:\s+line=(\d+))?\s*$")
_MESSAGE = re.compile(r"^#\s*expect-message:\s*(.+?)\s*$")
_UNSUPPORTED = re.compile(r"^#\s*unsupported:\s*(\w+)")
_RENDERED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$", re.S)


@dataclass(frozen=True)
class Expectation:
    valid: bool
    path: str | None = None
    line: int | None = None
    message: str | None = None
    unsupported: str | None = None


def read_expectation(file: Path) -> Expectation:
    """Parse the leading comment lines of a corpus file (raw bytes: the body may not be UTF-8)."""
    valid: bool | None = None
    path: str | None = None
    line: int | None = None
    message: str | None = None
    unsupported: str | None = None
    for raw in file.read_bytes().splitlines():
        text = raw.decode("utf-8", errors="replace").strip()
        if not text.startswith("#"):
            break
        if m := _EXPECT.match(text):
            valid = m.group(1) == "valid"
            path = m.group(2)
            line = int(m.group(3)) if m.group(3) else None
        elif m := _MESSAGE.match(text):
            message = m.group(1)
        elif m := _UNSUPPORTED.match(text):
            unsupported = m.group(1)
    if valid is None:
        raise AssertionError(f"{file}: no '# expect:' header")
    return Expectation(valid=valid, path=path, line=line, message=message, unsupported=unsupported)


def corpus_files() -> list[Path]:
    return sorted([*CORPUS.glob("valid/*.yaml"), *CORPUS.glob("invalid/*.yaml")])


def _ids(files: list[Path]) -> list[str]:
    return [str(f.relative_to(CORPUS)) for f in files]


FILES = corpus_files()


def _run_check(file: Path) -> Any:
    from polynb.compiler.check import check  # imported here: the corpus layout tests run without it

    return check([str(file)])


def _first(errors: list[Any]) -> Any:
    """The first error in the order ``SpecErrors`` and the CLI print them."""
    return sorted(errors, key=lambda e: (e.file, e.line, e.column, e.path))[0]


def _render(errors: list[Any]) -> str:
    return "\n".join(str(e) for e in errors) or "(no errors)"


# --- the corpus itself ---------------------------------------------------------------------------------


def test_corpus_is_large_and_every_file_states_its_expectation() -> None:
    assert len(FILES) >= MIN_CORPUS_FILES, f"only {len(FILES)} corpus files"
    for file in FILES:
        exp = read_expectation(file)
        folder = file.parent.name
        assert exp.valid == (folder == "valid"), f"{file.name}: header disagrees with folder {folder}/"
        if not exp.valid:
            assert exp.path, f"{file.name}: an invalid file must name the field path of its first error"
        if exp.unsupported:
            assert exp.valid, f"{file.name}: 'unsupported' marks files that parse and check"


def test_corpus_covers_every_event_kind_trigger_policy_and_hook_trigger() -> None:
    text = "\n".join(f.read_bytes().decode("utf-8", errors="replace") for f in CORPUS.glob("valid/*.yaml"))
    statuses = [
        "created", "resuming", "compiled", "on_schedule", "queued", "scheduled", "starting", "running",
        "processing", "stopping", "failed", "stopped", "succeeded", "skipped", "warning", "unschedulable",
        "upstream_failed", "retrying", "unknown", "done",
    ]  # fmt: skip
    others = [
        "run_approved_actor", "run_invalidated_actor", "run_new_artifacts", "connection_git_commit",
        "connection_dataset_version", "connection_registry_image", "alert_info", "alert_warning",
        "alert_critical", "model_version_new_metric", "project_custom_event", "org_custom_event",
    ]  # fmt: skip
    kinds = [f"run_status_{s}" for s in statuses] + others
    assert len(kinds) == 32
    missing = [k for k in kinds if not re.search(rf"\b{k}\b", text)]
    assert not missing, f"event kinds absent from valid files: {missing}"
    policies = ["all_succeeded", "all_failed", "all_done", "one_succeeded", "one_failed", "one_done"]
    assert not [p for p in policies if f"trigger: {p}" not in text]
    hook_triggers = ["succeeded", "failed", "stopped", "skipped", "upstream_failed", "done"]
    hook_text = "\n".join(f.read_text() for f in CORPUS.glob("valid/hooks_*.yaml"))
    assert not [t for t in hook_triggers if f"trigger: {t}\n" not in hook_text]
    for kind in ("kind: component", "kind: operation", "kind: job", "kind: service", "kind: dag"):
        assert kind in text
    for io_type in ("int", "float", "str", "bool", "dict", "list", "path", "uri", "image", "git"):
        assert f"type: {io_type}" in text, io_type


def test_seed_example_is_in_the_corpus() -> None:
    seed = (CORPUS / "valid" / "seed_experiment_tensorboard.yaml").read_text()
    assert "hubRef: tensorboard" in seed
    assert "{ref: ops.experiment, value: globals.uuid}" in seed
    assert "kinds: [run_status_running]" in seed


def test_header_parser() -> None:
    sample = CORPUS / "invalid" / "misspelled_key_dependencies.yaml"
    assert read_expectation(sample) == Expectation(
        valid=False,
        path="run.operations[1].dependecies",
        line=13,
        message="did you mean 'dependencies'",
    )
    binary = read_expectation(CORPUS / "invalid" / "non_utf8_bytes.yaml")
    assert (binary.valid, binary.path, binary.line) == (False, "(root)", 6)
    assert read_expectation(CORPUS / "valid" / "matrix_iterative_dates.yaml").unsupported == "matrix"


# --- polynb check against the corpus ---------------------------------------------------------------------


@pytest.mark.parametrize("file", FILES, ids=_ids(FILES))
def test_check_agrees_with_the_corpus(file: Path) -> None:
    exp = read_expectation(file)
    result = _run_check(file)
    errors = list(result.errors)
    for err in errors:
        rendered = str(err)
        assert rendered == f"{err.file}:{err.line}:{err.column}: {err.path}: {err.message}"
        assert _RENDERED.match(rendered), rendered
        assert err.message, rendered
    if exp.valid:
        assert errors == [], f"expected valid, got:\n{_render(errors)}"
        assert result.valid is True
        return
    assert result.valid is False
    assert errors, "expected errors, got none"
    first = _first(errors)
    assert Path(first.file).name == file.name, _render(errors)
    assert first.path == exp.path, f"first error path\n{_render(errors)}"
    # Every problem of a corpus file is located in it (an empty file at 1:1).
    assert all(e.line >= 1 and e.column >= 1 for e in errors), f"unlocated error\n{_render(errors)}"
    if exp.line is not None:
        assert first.line == exp.line, f"first error line\n{_render(errors)}"
    if exp.message is not None:
        assert exp.message.casefold() in first.message.casefold(), f"message\n{_render(errors)}"


def test_check_reports_each_file_of_a_batch_under_its_own_name() -> None:
    good = CORPUS / "valid" / "dag_chain_dependencies.yaml"
    bad = CORPUS / "invalid" / "orphan_dependency.yaml"
    from polynb.compiler.check import check

    result = check([str(good), str(bad)])
    assert result.valid is False
    assert result.errors
    assert {Path(e.file).name for e in result.errors} == {bad.name}


def test_check_never_raises_on_bad_input() -> None:
    from polynb.compiler.check import check

    bad = sorted(CORPUS.glob("invalid/*.yaml"))
    result = check([str(f) for f in bad])
    assert result.valid is False
    assert {Path(e.file).name for e in result.errors} == {f.name for f in bad}


# --- the CLI ---------------------------------------------------------------------------------------------


def _polynb_cli() -> list[str]:
    exe = Path(sys.executable).with_name("polynb")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("polynb")
    return [found] if found else [sys.executable, "-m", "polynb.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_polynb_cli(), "check", *args], capture_output=True, text=True, timeout=120)


def test_cli_check_valid_file_exits_0() -> None:
    proc = _cli("-f", str(CORPUS / "valid" / "seed_experiment_tensorboard_single_uuid.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [line for line in proc.stdout.splitlines() if _RENDERED.match(line)]


def test_cli_check_invalid_file_prints_one_line_per_error_and_exits_1() -> None:
    file = CORPUS / "invalid" / "misspelled_event_kind.yaml"
    proc = _cli("-f", str(file))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if _RENDERED.match(line)]
    assert lines, proc.stdout + proc.stderr
    m = _RENDERED.match(lines[0])
    assert m is not None
    assert Path(m["file"]).name == file.name
    assert (m["path"], m["line"]) == ("run.operations[1].events[0].kinds[0]", "14")


def test_cli_check_json() -> None:
    file = CORPUS / "invalid" / "cycle_self_dependency.yaml"
    proc = _cli("-f", str(file), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["valid"] is False
    first = payload["errors"][0]
    assert {"file", "line", "column", "path", "message"} <= set(first)
    assert first["path"] == "run.operations[1].dependencies[0]"
    assert first["line"] == 12

    ok = _cli("-f", str(CORPUS / "valid" / "job_minimal.yaml"), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["valid"] is True
    assert json.loads(ok.stdout)["errors"] == []
