"""Benchmark the scheduler on the local executor; prints a table, asserts nothing.

    .venv/bin/python bench/scheduler.py [--only a,b,c,d,e] [--chains 20] [--hops 50] [--serial-hops 200]
                                        [--fanout 1000] [--sleepers 50] [--keep]

(a) Event-to-submission latency: ``chains`` chains of ``hops + 1`` ``true`` ops (1,000 hops by default), then
    one chain of ``serial-hops`` alone (no other op competes for the engine thread);
    hops alternate between an event trigger on the upstream's ``run_status_running`` and a dependency (the
    upstream's ``run_status_succeeded``). Latency = when the executor's ``submit`` is called for the
    downstream (a timing wrapper around the local executor: the public protocol, no patching) minus the
    upstream event's timestamp in the store (when its shim saw the status). Split into the engine's part (to
    the downstream's ``queued``, written when it is claimed), the wait for a submitting thread, and the submit
    call itself. With 20 chains the machine is busy: a chain's hop is then chains x the wall per op (Little's
    law), printed with the machine's busy share, and event→submit is where that hop queues.
(b) 40 sequential ``true`` ops: wall from ``submit`` to the DAG's end, overhead per hop against the ops' own
    time (running → succeeded) and against 40 sequential ``subprocess.run(["true"])``; with the published
    figures of peers beside (Airflow 2.7.3 116 s for 40 tiny tasks, Windmill 4.4 s,
    Argo's 10 s requeue per pod event).
(c) A 1,000-op fan-out/fan-in DAG (root → 998 → sink): wall, the engine thread's CPU
    (``pthread_getcpuclockid``), the engine process's CPU (children excluded), peak RSS; beside it the wall
    of starting as many bare interpreters as the local executor's shims (``python -I -S``), all at once; the CPU
    per op of the engine process and of everything the executor started (fork server, shims, ops), and the
    machine's busy and idle CPU per op over the fan (``/proc/stat``, all cores: what bounds it).
(d) CPU of the engine process while ``sleepers`` ops sleep: one core's percentage over a window in which
    all are running and none ends.
(e) The engine alone: the ``chains`` chains of (a) on an executor that reports each op ``starting``,
    ``running`` and ``succeeded`` as it is handed over (no process), so the engine is the bottleneck:
    event-to-submission latency and the engine thread's CPU per op.

Each scenario runs in a fresh subprocess with its own ``POLYNB_HOME`` (a temporary folder), so peak RSS
and CPU belong to that scenario alone. ``POLYNB_LOCAL_SPAWN=spawn`` measures shims spawned one interpreter
each instead of forked by the executor's fork server.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUARD = 900.0
"""Seconds any scenario may take before it is declared hung."""

PEERS_40 = "Airflow 2.7.3: 116 s (2.9 s/hop) · Windmill: 4.4 s (110 ms/hop) · Argo: 10 s requeue per pod event"


# -- the engine side (runs in the scenario subprocess) ------------------------------------------------------


class TimedExecutor:
    """The local executor, recording when ``submit`` is called for each run (wall clock, like the store)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.submitted: dict[str, float] = {}
        self.returned: dict[str, float] = {}

    def place(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.place(*args, **kwargs)

    def submit(self, op: Any, on_update: Any) -> Any:
        self.submitted[op.uuid] = time.time()
        try:
            return self.inner.submit(op, on_update)
        finally:
            self.returned[op.uuid] = time.time()

    def stop(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.stop(*args, **kwargs)

    def logs(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.logs(*args, **kwargs)

    def reattach(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.reattach(*args, **kwargs)

    def cleanup(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.cleanup(*args, **kwargs)

    def shutdown(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.shutdown(*args, **kwargs)


class InstantExecutor:
    """Runs nothing: each op is reported starting, running and succeeded as ``submit`` is called (recorded
    like ``TimedExecutor`` does), so only the engine's own cost is left."""

    name = "instant"

    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}

    def place(self, run_uuid: str, kind: Any, port_count: int) -> Any:
        from polynb.compiler.types import Placement
        from polynb.store import run_paths

        paths = run_paths(run_uuid)
        return Placement(str(paths.root.parent), str(paths.root), str(paths.outputs))

    def submit(self, op: Any, on_update: Any) -> dict[str, Any]:
        from polynb.executors.base import ExecutorUpdate

        now = self.submitted[op.uuid] = time.time()
        for status in ("starting", "running", "succeeded"):
            on_update(ExecutorUpdate(op.uuid, status, "Instant", at=now))
        return {"instant": True}

    def stop(self, *args: Any, **kwargs: Any) -> None:
        pass

    def logs(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        return iter(())

    def reattach(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def cleanup(self, *args: Any, **kwargs: Any) -> None:
        pass

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Recorder:
    """Engine subscriber: the store timestamp of each (run, event kind), and the names of runs."""

    at: dict[tuple[str, str], float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    running: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, event: Any) -> None:
        self.at.setdefault((event.run_uuid, event.kind), event.at.timestamp())
        if event.name:
            self.names[event.run_uuid] = event.name
        if event.kind == "run_status_running":
            with self.cond:
                self.running += 1
                self.cond.notify_all()


@dataclass
class Harness:
    engine: Any
    store: Any
    executor: TimedExecutor | InstantExecutor
    recorder: Recorder

    def submit(self, yaml_text: str) -> str:
        from polynb.compiler.pipeline import build_pipeline
        from polynb.compiler.registry import ComponentRegistry
        from polynb.spec.load import load_text

        spec = load_text(yaml_text)
        pipeline = build_pipeline(spec, params={}, registry=ComponentRegistry(), base_dir=Path.cwd())
        uuid: str = self.engine.submit(pipeline)
        return uuid

    def ops(self, dag_uuid: str) -> dict[str, Any]:
        return {r.name: r for r in self.store.children(dag_uuid)}

    def engine_thread_cpu(self) -> float:
        thread = next(t for t in threading.enumerate() if t.name == "polynb-engine")
        assert thread.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """CPU of this process's reaped descendants (each counted once its parent has reaped it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU the whole machine spent busy and idle so far, summed over its cores (``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / hz, (idle + iowait) / hz


@dataclass
class EngineRun:
    harness: Harness
    close: Callable[[], None]


def open_engine(instant: bool = False) -> EngineRun:
    from polynb.executors.local.executor import LocalExecutor
    from polynb.scheduler.engine import Engine
    from polynb.store import Store

    store = Store()
    executor = InstantExecutor() if instant else TimedExecutor(LocalExecutor())
    engine = Engine(store=store, executors={"local": executor})
    recorder = Recorder()
    engine.subscribe(recorder)
    engine.start()

    def close() -> None:
        engine.shutdown()
        store.close()

    return EngineRun(Harness(engine, store, executor, recorder), close)


def dag_yaml(name: str, ops: list[str], concurrency: int | None = None) -> str:
    head = f"version: 1.1\nkind: component\nname: {name}\nrun:\n  kind: dag\n"
    if concurrency:
        head += f"  concurrency: {concurrency}\n"
    return head + "  operations:\n" + "".join(textwrap.indent(op, "    ") for op in ops)


def op_yaml(name: str, command: list[str], extra: str = "") -> str:
    return (
        f"- name: {name}\n  component: {{run: {{kind: job, container: {{command: {json.dumps(command)}}}}}}}\n" + extra
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def chains_dag(name: str, chains: int, hops: int) -> tuple[str, list[tuple[str, str, str]]]:
    """``chains`` chains of ``hops + 1`` ``true`` ops; hops alternate between an event trigger on the
    upstream's ``run_status_running`` and a dependency (its ``run_status_succeeded``)."""
    ops: list[str] = []
    edges: list[tuple[str, str, str]] = []  # (upstream, downstream, trigger event kind)
    for c in range(chains):
        ops.append(op_yaml(f"c{c}-0", ["true"]))
        for h in range(1, hops + 1):
            up, down = f"c{c}-{h - 1}", f"c{c}-{h}"
            if h % 2:
                extra, kind = f"  events: [{{ref: ops.{up}, kinds: [run_status_running]}}]\n", "run_status_running"
            else:
                extra, kind = f"  dependencies: [{up}]\n", "run_status_succeeded"
            ops.append(op_yaml(down, ["true"], extra))
            edges.append((up, down, kind))
    return dag_yaml(name, ops), edges


def run_chains(h: Harness, label: str, chains: int, hops: int) -> dict[str, Any]:
    """Submit ``chains`` chains and wait for them; the latency of every hop and the engine thread's CPU."""
    yaml_text, edges = chains_dag(f"latency-{label}", chains, hops)
    thread0, process0, machine0, wall0 = h.engine_thread_cpu(), process_cpu(), machine_cpu(), time.monotonic()
    dag = h.submit(yaml_text)
    status = h.engine.wait(dag, timeout=GUARD)
    wall = time.monotonic() - wall0
    thread_cpu, cpu, machine1 = h.engine_thread_cpu() - thread0, process_cpu() - process0, machine_cpu()
    by_name = {name: r.uuid for name, r in h.ops(dag).items()}
    latencies: dict[str, list[float]] = {"run_status_running": [], "run_status_succeeded": []}
    # Where each latency goes: the engine (the event read, its turn: the DAG evaluated, the downstream compiled
    # and claimed, which writes its ``queued``), then the wait for a submitting thread, then the submit call.
    stages: dict[str, list[float]] = {"engine": [], "waiting to be submitted": [], "submit call": []}
    returned = getattr(h.executor, "returned", {})
    for up, down, kind in edges:
        submitted = h.executor.submitted.get(by_name[down])
        event_at = h.recorder.at.get((by_name[up], kind))
        if submitted is not None and event_at is not None:
            latencies[kind].append((submitted - event_at) * 1000)
            queued_at = h.recorder.at.get((by_name[down], "run_status_queued"))
            if queued_at is not None and by_name[down] in returned:
                stages["engine"].append((queued_at - event_at) * 1000)
                stages["waiting to be submitted"].append((submitted - queued_at) * 1000)
                stages["submit call"].append((returned[by_name[down]] - submitted) * 1000)
    ops = len(by_name)
    busy, idle = (machine1[0] - machine0[0]) / wall, (machine1[1] - machine0[1]) / wall
    return {"status": status, "chains": chains, "ops": ops, "latencies_ms": latencies, "thread_cpu": thread_cpu,
            "cpu": cpu, "wall": wall, "stages_ms": stages, "machine_busy": busy / (busy + idle)}  # fmt: skip


def scenario_a(args: argparse.Namespace) -> dict[str, Any]:
    """Concurrent chains (the engine thread also serves the other chains' ops), then one chain alone."""
    run = open_engine()
    try:
        return {
            label: run_chains(run.harness, label, chains, hops)
            for label, chains, hops in (("concurrent", args.chains, args.hops), ("serial", 1, args.serial_hops))
        }
    finally:
        run.close()


def scenario_e(args: argparse.Namespace) -> dict[str, Any]:
    """The chains of (a) with no process behind them: what is left is the engine."""
    run = open_engine(instant=True)
    try:
        return {"engine alone": run_chains(run.harness, "instant", args.chains, args.hops)}
    finally:
        run.close()


def scenario_b(args: argparse.Namespace) -> dict[str, Any]:
    n = 40
    ops = [op_yaml("t0", ["true"])]
    ops += [op_yaml(f"t{i}", ["true"], f"  dependencies: [t{i - 1}]\n") for i in range(1, n)]
    run = open_engine()
    h = run.harness
    try:
        started = time.perf_counter()
        dag = h.submit(dag_yaml("sequential", ops))
        status = h.engine.wait(dag, timeout=GUARD)
        wall = time.perf_counter() - started
        records = h.ops(dag)
    finally:
        run.close()
    # Where a hop's time goes: the scheduler (upstream succeeded -> downstream submitted), the executor's
    # start (submitted -> running), the op itself as observed (running -> succeeded).
    phases: dict[str, float] = {"scheduler": 0.0, "start": 0.0, "own": 0.0}
    hops: list[float] = []  # upstream succeeded -> downstream succeeded, each
    previous_done: float | None = None
    for i in range(n):
        uuid = records[f"t{i}"].uuid
        submitted = h.executor.submitted[uuid]
        running = h.recorder.at[(uuid, "run_status_running")]
        done = h.recorder.at[(uuid, "run_status_succeeded")]
        if previous_done is not None:
            phases["scheduler"] += submitted - previous_done
            hops.append(done - previous_done)
        phases["start"] += running - submitted
        phases["own"] += done - running
        previous_done = done
    started = time.perf_counter()
    for _ in range(n):
        subprocess.run(["true"], check=True)
    baseline = time.perf_counter() - started
    return {"status": status, "n": n, "wall": wall, "own": phases["own"], "phases": phases, "baseline": baseline,
            "hops": hops}  # fmt: skip


def scenario_c(args: argparse.Namespace) -> dict[str, Any]:
    middle = [f"m{i}" for i in range(args.fanout - 2)]
    ops = [op_yaml("root", ["true"])]
    ops += [op_yaml(name, ["true"], "  dependencies: [root]\n") for name in middle]
    ops.append(op_yaml("sink", ["true"], f"  dependencies: [{', '.join(middle)}]\n"))
    children0 = children_cpu()
    run = open_engine()
    h = run.harness
    try:
        cpu0, thread0, machine0 = process_cpu(), h.engine_thread_cpu(), machine_cpu()
        started = time.perf_counter()
        dag = h.submit(dag_yaml("fan", ops))
        status = h.engine.wait(dag, timeout=GUARD)
        wall = time.perf_counter() - started
        machine = [after - before for before, after in zip(machine0, machine_cpu(), strict=True)]
        cpu, thread_cpu = process_cpu() - cpu0, h.engine_thread_cpu() - thread0
    finally:
        run.close()
    # The fork server is reaped by the close above, and it reaped the shims, which reaped the ops: all of their CPU.
    children = children_cpu() - children0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # What the ops cost at the least: one interpreter start per op (the local executor's shim), all at once.
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-I", "-S", "-c", "pass"]) for _ in range(args.fanout)]
    for proc in procs:
        proc.wait()
    baseline = time.perf_counter() - started
    return {
        "status": status,
        "n": args.fanout,
        "wall": wall,
        "cpu": cpu,
        "thread_cpu": thread_cpu,
        "children_cpu": children,
        "machine_busy": machine[0],
        "machine_idle": machine[1],
        "rss_mb": rss_mb,
        "baseline": baseline,
    }


def scenario_d(args: argparse.Namespace) -> dict[str, Any]:
    seconds = 12
    ops = [op_yaml(f"s{i}", ["sleep", str(seconds)]) for i in range(args.sleepers)]
    run = open_engine()
    h = run.harness
    try:
        dag = h.submit(dag_yaml("sleepers", ops))
        with h.recorder.cond:
            assert h.recorder.cond.wait_for(lambda: h.recorder.running >= args.sleepers, timeout=GUARD)
        time.sleep(0.5)  # let the last start-up work (handles, pipes) settle
        window = 4.0
        cpu0, thread0, t0 = process_cpu(), h.engine_thread_cpu(), time.perf_counter()
        time.sleep(window)
        cpu, thread_cpu, elapsed = process_cpu() - cpu0, h.engine_thread_cpu() - thread0, time.perf_counter() - t0
        finals = [r for r in h.ops(dag).values() if r.is_final]
        h.engine.stop(dag)
        h.engine.wait(dag, timeout=GUARD, include_services=True)
    finally:
        run.close()
    return {
        "n": args.sleepers,
        "window": elapsed,
        "cpu_pct": 100 * cpu / elapsed,
        "thread_pct": 100 * thread_cpu / elapsed,
        "clean_window": not finals,
    }


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "a": scenario_a,
    "b": scenario_b,
    "c": scenario_c,
    "d": scenario_d,
    "e": scenario_e,
}


# -- the driver ---------------------------------------------------------------------------------------------


def run_scenario(name: str, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    home = base / name
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, __file__, "--worker", name, *_forwarded(args)]
    env = {**os.environ, "POLYNB_HOME": str(home)}
    result = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=GUARD, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scenario {name} failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _forwarded(args: argparse.Namespace) -> Iterator[str]:
    for flag in ("chains", "hops", "serial_hops", "fanout", "sleepers"):
        yield f"--{flag.replace('_', '-')}"
        yield str(getattr(args, flag))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency_rows(scenario: str, part: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    lat = part["latencies_ms"]
    every = [v for values in lat.values() for v in values]
    alone = " (no process)" if scenario == "e" else ""
    chains = f"{part['chains']} chain{'s' * (part['chains'] > 1)}"
    for kind, values in (("running", lat["run_status_running"]), ("succeeded", lat["run_status_succeeded"]),
                         ("all", every)):  # fmt: skip
        if values:
            rows.append((
                f"({scenario}) event→submit{alone}, {chains}, {kind} (n={len(values)})",
                f"p50 {percentile(values, 50):.2f} ms · p99 {percentile(values, 99):.2f} ms"
                f" · max {max(values):.2f} ms",
                "p99 < 10 ms",
                "upstream running / succeeded → downstream submit" if kind == "all" else "",
            ))  # fmt: skip
    if "thread_cpu" in part:
        rows.append((f"({scenario}) engine-thread CPU per op{alone}, {chains}", ms(part["thread_cpu"] / part["ops"]),
                     "", f"{part['ops']} ops"))  # fmt: skip
    if "cpu" in part:
        rows.append((f"({scenario}) engine-process CPU per op{alone}, {chains}", ms(part["cpu"] / part["ops"]), "",
                     "all its threads (engine, watcher, submitters)"))  # fmt: skip
    stages = {name: values for name, values in part.get("stages_ms", {}).items() if values}
    if stages:
        rows.append((f"({scenario}) event→submit p50, {chains}: " + " · ".join(stages),
                     " · ".join(f"{percentile(values, 50):.2f} ms" for values in stages.values()), "",
                     "engine: to the downstream's queued; then a submitting thread; then the submit"))  # fmt: skip
    if "wall" in part and part["chains"] > 1:
        # Little's law: the chains are the ops in flight, so a chain's hop = chains x the wall per op. Once the
        # machine is busy, the wall per op is its CPU per op over its cores, whichever process queues for it.
        hop = part["wall"] / part["ops"] * part["chains"]
        rows.append((f"({scenario}) a chain's hop: {part['chains']} x the wall per op · machine busy{alone}",
                     f"{ms(hop)} · {100 * part['machine_busy']:.0f}%", "",
                     "event→submit is the part of this hop spent queued before the submit"))  # fmt: skip
    return rows


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    for scenario in ("a", "e"):
        for part in results.get(scenario, {}).values():
            rows += latency_rows(scenario, part)
    if "b" in results:
        b = results["b"]
        n = b["n"]
        rows.append((f"(b) {n} sequential `true` ops: wall", f"{b['wall']:.2f} s ({ms(b['wall'] / n)}/hop)", "",
                     PEERS_40))  # fmt: skip
        rows.append(("(b) overhead per hop (wall - ops' own running time)", ms((b["wall"] - b["own"]) / n),
                     "< 40 ms", ""))  # fmt: skip
        hops = [h * 1000 for h in b["hops"]]
        rows.append((f"(b) one hop, succeeded → succeeded (n={len(hops)}): p50 · p90",
                     f"{percentile(hops, 50):.2f} ms · {percentile(hops, 90):.2f} ms", "≤ 3 ms",
                     "steadier than the wall's mean where the machine's speed varies between runs"))  # fmt: skip
        p = b["phases"]
        rows.append(("(b) per hop: scheduler · executor start-up · op observed",
                     f"{ms(p['scheduler'] / (n - 1))} · {ms(p['start'] / n)} · {ms(p['own'] / n)}", "",
                     "scheduler: upstream done → submit; start-up: submit → running"))  # fmt: skip
        rows.append((f"(b) overhead per hop vs {n}x subprocess.run(['true'])", ms((b["wall"] - b["baseline"]) / n),
                     "< 40 ms", f"baseline {b['baseline']:.2f} s"))  # fmt: skip
    if "c" in results:
        c = results["c"]
        n = c["n"]
        rows.append((f"(c) {n}-op fan-out/fan-in: wall", f"{c['wall']:.2f} s", "bound by process start-up",
                     f"{n} bare interpreter starts: {c['baseline']:.2f} s"))  # fmt: skip
        rows.append(("(c) scheduler CPU: engine thread · whole engine process",
                     f"{c['thread_cpu']:.2f} s · {c['cpu']:.2f} s",
                     "", f"engine thread busy {100 * c['thread_cpu'] / c['wall']:.0f}% of the wall"))  # fmt: skip
        rows.append(("(c) peak RSS of the engine process", f"{c['rss_mb']:.0f} MB", "", ""))
        if "children_cpu" in c:
            rows.append(("(c) CPU per op: engine process · fork server, shims and ops",
                         f"{ms(c['cpu'] / n)} · {ms(c['children_cpu'] / n)}", "",
                         "the ops are `true`: what is left is polynb's and the kernel's"))  # fmt: skip
            rows.append(("(c) the machine per op: busy · idle (all cores)",
                         f"{ms(c['machine_busy'] / n)} · {ms(c['machine_idle'] / n)}", "",
                         "idle near 0: the fan is bound by the machine's CPU"))  # fmt: skip
    if "d" in results:
        d = results["d"]
        note = "" if d["clean_window"] else "(an op ended inside the window)"
        rows.append((f"(d) CPU while {d['n']} ops sleep: process · engine thread",
                     f"{d['cpu_pct']:.2f}% · {d['thread_pct']:.2f}% of a core",
                     "< 1% of a core", f"over {d['window']:.1f} s {note}".strip()))  # fmt: skip
    headers = ("measure", "polynb", "goal", "baseline / peers (published)")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(headers, [*widths, 0], strict=True)).rstrip())
    print("  ".join("-" * w for w in [*widths, len(headers[3])]))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, [*widths, 0], strict=True)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c,d,e", help="scenarios to run (default a,b,c,d,e)")
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--hops", type=int, default=50, help="hops per chain: chains x hops upstream events")
    parser.add_argument("--serial-hops", type=int, default=200, help="hops of the chain run alone after")
    parser.add_argument("--fanout", type=int, default=1000, help="ops in the fan-out/fan-in DAG")
    parser.add_argument("--sleepers", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scenarios' POLYNB_HOME folders")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(SCENARIOS[args.worker](args)))
        return 0
    base = Path(tempfile.mkdtemp(prefix="polynb-bench-"))
    shims = os.environ.get("POLYNB_LOCAL_SPAWN") or "fork"
    print(f"polynb scheduler benchmark: local executor (shims: {shims}), Python {sys.version.split()[0]},"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.only.split(","):
            started = time.perf_counter()
            results[name] = run_scenario(name, args, base)
            print(f"  scenario {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"  POLYNB_HOME folders kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
