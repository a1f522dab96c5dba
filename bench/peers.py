"""polynb beside Metaflow, Dagster and Luigi: the same shapes, whole processes, in one run; asserts nothing.

    .venv/bin/python bench/peers.py [--rounds 3] [--chain 40] [--width 200] [--only polynb,luigi,...] [--keep]

What a user waits for, from start to exit: ``polynb run -f FILE``, ``python flow.py run`` (Metaflow),
``dagster job execute`` (Dagster, with its in-process and its multiprocess executor) and
``luigi --local-scheduler`` (Luigi). polynb three times: as a user's commands run (served by the command server
the warm-up round started), with ``POLYNB_COMMAND_SERVER=0`` (each command imports everything, as a first one),
and with its live view on a terminal (a pseudo-terminal of 50 x 120, as a user at a shell sees it; the others
write into pipes). On

- ``1-step``: the smallest flow (Metaflow's is ``start → end``): the fixed overhead of one command;
- ``chain``: ``--chain`` steps one after another; per hop = (chain - 1-step) / (chain - 1);
- ``fan``: 1 → ``--width`` → 1 (Metaflow: a foreach, then a join step before ``end``, which may not join);
- ``watch``: start a watcher while its upstream runs. Only polynb can say it (an event trigger on the
  upstream's ``run_status_running``); the delay from the upstream's running to the watcher's is reported.

Steps do nothing (polynb: the ``true`` command; the peers: a Python function that returns). polynb and
Metaflow start a process per step, Dagster's multiprocess executor too; Dagster's in-process executor and
Luigi run every step inside one process. Each tool keeps its defaults for parallelism (Metaflow 16 workers,
Dagster multiprocess one per CPU, Luigi one worker, polynb no limit). Rounds are interleaved (every tool
and shape once per round, in a rotating order); each figure is the median of the rounds. One warm-up run of
each tool first (bytecode, its datastore or instance created), not counted.

The peers are installed on first use, each in a virtualenv of its own under ``bench/.venvs/`` (pinned below;
reinstalled when the pin changes), so they never meet the project's dependencies. Their flows are in
``bench/peers/``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from subprocess import DEVNULL, PIPE

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "bench" / "peers"
VENVS = ROOT / "bench" / ".venvs"
GUARD = 1800.0
"""Seconds one command may take before the bench gives up on it."""
TERMINAL = (50, 120)
"""Rows and columns of the pseudo-terminal of the tools that write to one."""

PINS = {"metaflow": "metaflow==2.19.39", "dagster": "dagster==1.13.29", "luigi": "luigi==3.8.1"}
SHAPES = ("one", "chain", "fan", "watch")
NOT_EXPRESSIBLE = "not expressible"


@dataclass(frozen=True)
class Tool:
    """One column of the table: how to run each shape as a command, and how to tell it succeeded."""

    key: str
    title: str
    venv: str | None
    command: Callable[[Context, str], list[str] | None]
    """The argv for a shape, None when the tool cannot express it."""
    succeeded: Callable[[subprocess.CompletedProcess[str]], bool] = lambda done: done.returncode == 0
    env: tuple[tuple[str, str], ...] = ()
    """Variables set for this tool's commands only."""
    terminal: bool = False
    """Its output (stdout and stderr) goes to a pseudo-terminal, not to pipes."""


@dataclass(frozen=True)
class Context:
    work: Path
    chain: int
    width: int

    def venv_bin(self, venv: str, name: str) -> str:
        return str(VENVS / venv / "bin" / name)


# -- the tools -----------------------------------------------------------------------------------------------


def polynb_command(ctx: Context, shape: str) -> list[str]:
    argv = [sys.executable, "-m", "polynb.cli", "run", "-f", str(ctx.work / "polynb" / f"{shape}.yaml"), "--no-live"]
    return [*argv, "--json"] if shape == "watch" else argv


def polynb_live_command(ctx: Context, shape: str) -> list[str] | None:
    if shape == "watch":  # its delay is read from `--json`, which has no live view
        return None
    return [sys.executable, "-m", "polynb.cli", "run", "-f", str(ctx.work / "polynb" / f"{shape}.yaml"), "--live"]


def metaflow_command(ctx: Context, shape: str) -> list[str] | None:
    if shape == "watch":
        return None
    argv = [ctx.venv_bin("metaflow", "python"), str(ctx.work / "metaflow" / f"{shape}.py"), "run"]
    # A foreach may have 100 children unless told otherwise.
    return [*argv, "--max-num-splits", str(ctx.width)] if shape == "fan" else argv


def dagster_command(executor: str) -> Callable[[Context, str], list[str] | None]:
    def command(ctx: Context, shape: str) -> list[str] | None:
        if shape == "watch":
            return None
        job = f"{shape}_{executor}"
        return [ctx.venv_bin("dagster", "dagster"), "job", "execute", "-f", str(FLOWS / "dagster_flows.py"), "-j", job]

    return command


def dagster_succeeded(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 0 and "RUN_SUCCESS" in done.stdout + done.stderr


def luigi_command(ctx: Context, shape: str) -> list[str] | None:
    task = {"one": ["Chain", "--n", "1"], "chain": ["Chain", "--n", str(ctx.chain)], "fan": ["Fan", "--width",
            str(ctx.width)]}.get(shape)  # fmt: skip
    if task is None:
        return None
    return [ctx.venv_bin("luigi", "luigi"), "--module", "luigi_flows", *task, "--local-scheduler"]


TOOLS = (
    Tool("polynb", "polynb", None, polynb_command),
    # The same commands with the command server off: each imports everything itself, as the first command does.
    Tool("polynb_cold", "polynb, no command server", None, polynb_command, env=(("POLYNB_COMMAND_SERVER", "0"),)),
    Tool("polynb_live", "polynb, live view on a terminal", None, polynb_live_command, terminal=True),
    Tool("metaflow", "Metaflow 2.19 (process per step)", "metaflow", metaflow_command),
    Tool("dagster_mp", "Dagster 1.13 multiprocess", "dagster", dagster_command("multiprocess"), dagster_succeeded),
    Tool("dagster_ip", "Dagster 1.13 in-process", "dagster", dagster_command("in_process"), dagster_succeeded),
    Tool("luigi", "Luigi 3.8 (in-process)", "luigi", luigi_command),
)


# -- set-up ----------------------------------------------------------------------------------------------------


def ensure_venv(name: str) -> None:
    """``bench/.venvs/NAME`` with ``PINS[NAME]`` installed; made once, reused while the pin is the same."""
    folder = VENVS / name
    marker = folder / ".installed"
    if marker.exists() and marker.read_text().strip() == PINS[name]:
        return
    print(f"installing {PINS[name]} into {folder.relative_to(ROOT)} (once)…", file=sys.stderr, flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, PINS[name]], check=True)
    marker.write_text(PINS[name] + "\n")


def prepare(ctx: Context, tools: list[Tool]) -> dict[str, str]:
    """Write the flows into the work folder; the environment every command runs with."""
    sys.path.insert(0, str(FLOWS))
    import metaflow_flows
    import polynb_flows

    polynb_flows.write(ctx.work / "polynb", ctx.chain, ctx.width)
    metaflow_flows.write(ctx.work / "metaflow", ctx.chain, ctx.width)
    dagster_home = ctx.work / "dagster-home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # every tool gets its bytecode cached, as on a user's machine
    env.update(
        POLYNB_HOME=str(ctx.work / "polynb-home"),
        # polynb's command servers live in the work folder, so the bench can stop them when it ends.
        POLYNB_COMMAND_SERVER_DIR=str(ctx.work / "command-servers"),
        # Metaflow: a user name (it refuses to run without one), a local datastore and metadata, no user config.
        METAFLOW_USER="bench",
        METAFLOW_HOME=str(ctx.work / "metaflow-config"),
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DEFAULT_METADATA="local",
        DAGSTER_HOME=str(dagster_home),
        BENCH_CHAIN=str(ctx.chain),
        BENCH_WIDTH=str(ctx.width),
        LUIGI_CONFIG_PATH=str(FLOWS / "luigi.cfg"),
        PYTHONPATH=os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(FLOWS)) if p),
    )
    return env


def stop_command_servers(folder: Path) -> None:
    """End the polynb command servers the bench started (each wrote its pid into its lock file)."""
    for lock in folder.glob("cmd-*.lock"):
        pid = lock.read_text().strip()
        if pid.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


# -- measuring -------------------------------------------------------------------------------------------------


class Failed(Exception):
    """One command failed or hung: its cell says so, the other figures are still measured."""


@dataclass
class Sample:
    wall: float
    delay: float | None = None
    """watch: seconds from the upstream's running to the watcher's running."""


def run_once(tool: Tool, shape: str, ctx: Context, env: dict[str, str]) -> Sample | None:
    argv = tool.command(ctx, shape)
    if argv is None:
        return None
    cwd = ctx.work / "metaflow" if tool.key == "metaflow" else ctx.work  # Metaflow keeps .metaflow/ there
    env = {**env, **dict(tool.env)}
    started = time.perf_counter()
    done = run_on_terminal(argv, cwd, env) if tool.terminal else run_into_pipes(argv, cwd, env)
    wall = time.perf_counter() - started
    if done is None:
        raise Failed(f"{tool.key} {shape}: no end after {GUARD:.0f} s: {' '.join(argv)}")
    if not tool.succeeded(done):
        raise Failed(f"{tool.key} {shape} failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-3000:]}")
    return Sample(wall, watch_delay(done.stdout) if shape == "watch" else None)


def run_into_pipes(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str] | None:
    """The command with its output into pipes; None if it did not end within :data:`GUARD`."""
    # A session of its own: a hung or interrupted command is ended with every process it started.
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=GUARD)
        except subprocess.TimeoutExpired:
            return None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what is left of it, if anything
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def run_on_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str] | None:
    """The command with its output on a pseudo-terminal of :data:`TERMINAL` (read until every writer closed it;
    what it wrote is the result's stdout and stderr); None if it did not end within :data:`GUARD`."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL, 0, 0))
    output = bytearray()
    deadline = time.monotonic() + GUARD
    try:
        sized = {k: v for k, v in env.items() if k not in ("LINES", "COLUMNS")}  # the terminal's size, not these
        with subprocess.Popen(
            argv, cwd=cwd, env=sized, stdin=DEVNULL, stdout=terminal, stderr=terminal, start_new_session=True
        ) as proc:
            os.close(terminal)
            terminal = -1
            try:
                while (left := deadline - time.monotonic()) > 0:
                    if not select.select([main], [], [], left)[0]:
                        continue
                    try:
                        chunk = os.read(main, 1 << 16)
                    except OSError:  # EIO: every writer closed the terminal
                        break
                    if not chunk:
                        break
                    output += chunk
                else:
                    return None
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                return None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
    finally:
        os.close(main)
        if terminal >= 0:
            os.close(terminal)
    text = output.decode(errors="replace")
    return subprocess.CompletedProcess(argv, proc.returncode, text, text)


def watch_delay(stdout: str) -> float:
    """From ``polynb run --json``: the watcher's running minus the upstream's running, in seconds."""
    ops = {op["name"]: op for op in json.loads(stdout)["ops"]}

    def running(name: str) -> float:
        at = next(e["at"] for e in ops[name]["events"] if e["kind"] == "run_status_running")
        return datetime.fromisoformat(at).timestamp()

    return running("watcher") - running("up")


def measure(tools: list[Tool], shapes: list[str], ctx: Context, env: dict[str, str], rounds: int) -> dict[
        str, dict[str, list[Sample]]]:  # fmt: skip
    samples: dict[str, dict[str, list[Sample]]] = {t.key: {s: [] for s in shapes} for t in tools}
    pairs = [(tool, shape) for shape in shapes for tool in tools]
    # Round 0 is the warm-up (bytecode, Metaflow's datastore, Dagster's instance, polynb's store): not counted.
    for r in range(rounds + 1):
        shift = r * (len(tools) + 1) % len(pairs)  # each round starts one shape and one tool further
        for tool, shape in [(t, "one") for t in tools] if r == 0 else pairs[shift:] + pairs[:shift]:
            try:
                sample = run_once(tool, shape, ctx, env)
            except Failed as exc:
                print(f"round {r}/{rounds}  {exc}", file=sys.stderr, flush=True)
                continue
            if sample is not None and r > 0:
                samples[tool.key][shape].append(sample)
                print(f"round {r}/{rounds}  {tool.key:<10}  {shape:<5}  {sample.wall:7.2f} s", file=sys.stderr,
                      flush=True)  # fmt: skip
    return samples


# -- the table -------------------------------------------------------------------------------------------------


def median(samples: list[Sample], pick: Callable[[Sample], float | None] = lambda s: s.wall) -> float | None:
    values = [v for v in map(pick, samples) if v is not None]
    return statistics.median(values) if values else None


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def ratio(value: float | None, base: float | None) -> str:
    """`` · 7.7x``; nothing when either side is missing or not positive (a per-hop figure lost in the noise)."""
    if value is None or base is None or value <= 0 or base <= 0:
        return ""
    return f" · {value / base:.1f}x" if value >= base else f" · {value / base:.2f}x"


def print_table(tools: list[Tool], shapes: list[str], samples: dict[str, dict[str, list[Sample]]], ctx: Context,
                rounds: int, load: str = "") -> None:  # fmt: skip
    figures: dict[str, dict[str, float | None]] = {}
    for tool in tools:
        walls = {s: median(samples[tool.key][s]) for s in shapes}
        one, chain = walls.get("one"), walls.get("chain")
        walls["hop"] = None if one is None or chain is None else (chain - one) / (ctx.chain - 1)
        figures[tool.key] = walls
    rows: list[list[str]] = []
    for shape, label in (
        ("chain", f"{ctx.chain}-step chain of `true`"),
        ("fan", f"1 → {ctx.width} → 1 fan-out/in"),
        ("hop", f"per hop: ({ctx.chain}-step - 1-step) / {ctx.chain - 1}"),
        ("one", "fixed overhead (1-step)"),
        ("watch", "watcher started while the upstream runs"),
    ):
        if shape not in figures[tools[0].key] or (shape == "hop" and not {"chain", "one"} <= set(shapes)):
            continue
        row = [label]
        for tool in tools:
            value, base = figures[tool.key][shape], figures.get("polynb", {}).get(shape)
            if shape == "watch" and tool.key.startswith("polynb"):
                delay = median(samples[tool.key]["watch"], lambda s: s.delay)
                row.append("-" if delay is None else f"{delay * 1000:.0f} ms from the upstream's running")
            elif value is None and shape == "hop":
                row.append("-")
            elif value is None:
                row.append(NOT_EXPRESSIBLE if tool.command(ctx, shape) is None else "failed")
            elif shape == "hop":
                row.append(f"{value * 1000:.1f} ms" + ratio(value, base) * (tool.key != "polynb"))
            else:
                row.append(seconds(value) + ratio(value, base) * (tool.key != "polynb"))
        rows.append(row)
    header = ["work", *(t.title for t in tools)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(f"Whole processes, median of {rounds} interleaved round{'s' * (rounds != 1)}; x = peer / polynb.{load}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chain", type=int, default=40, help="steps in the chain (default 40)")
    parser.add_argument("--width", type=int, default=200, help="steps between the fan's two ends (default 200)")
    parser.add_argument("--only", help="comma-separated tools: " + ",".join(t.key for t in TOOLS))
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ",".join(SHAPES))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (flows, stores, datastores)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {t.key for t in TOOLS}
    tools = [t for t in TOOLS if t.key in wanted]
    shapes = [s for s in SHAPES if s in args.shapes.split(",")]
    if args.chain < 2 or not tools or not shapes:
        parser.error("--chain must be at least 2, and --only and --shapes must name something")
    for venv in dict.fromkeys(t.venv for t in tools if t.venv):
        ensure_venv(venv)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="polynb-peers-"))
    try:
        ctx = Context(work, args.chain, args.width)
        env = prepare(ctx, tools)
        samples = measure(tools, shapes, ctx, env, args.rounds)
    finally:
        stop_command_servers(work / "command-servers")
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    # Everything else running on the machine shows in the figures: say how busy it was.
    load = f" Load average: {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs."
    print_table(tools, shapes, samples, ctx, args.rounds, load)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    raw = {t.key: {s: [vars(x) for x in samples[t.key][s]] for s in shapes} for t in tools}
    (out / "peers.json").write_text(json.dumps({"chain": args.chain, "width": args.width, "samples": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
