"""The bench's shapes for polynb, written out as Polyaxonfiles: ``polynb run -f chain.yaml``.

Every op runs ``true`` in a process of its own (the local executor). ``watch.yaml`` is the shape only
polynb can express: ``watcher`` starts on ``up``'s ``run_status_running`` event, while ``up`` still runs.
"""

import json
from pathlib import Path

TRUE = json.dumps(["true"])


def op(name, command=TRUE, after=(), on_running=None):
    text = f"    - name: {name}\n      component: {{run: {{kind: job, container: {{command: {command}}}}}}}\n"
    if after:
        text += f"      dependencies: [{', '.join(after)}]\n"
    if on_running:
        text += f"      events: [{{ref: ops.{on_running}, kinds: [run_status_running]}}]\n"
    return text


def dag(name, ops):
    return f"version: 1.1\nkind: component\nname: {name}\nrun:\n  kind: dag\n  operations:\n" + "".join(ops)


def chain(n):
    return dag("chain", [op("s0"), *(op(f"s{i}", after=[f"s{i - 1}"]) for i in range(1, n))])


def fan(width):
    work = [f"w{i}" for i in range(width)]
    return dag("fan", [op("root"), *(op(w, after=["root"]) for w in work), op("sink", after=work)])


def watch(seconds=1.0):
    """``up`` sleeps ``seconds``; ``watcher`` is started by ``up``'s running event, not by its end."""
    return dag("watch", [op("up", json.dumps(["sleep", str(seconds)])), op("watcher", on_running="up")])


def write(folder, chain_steps, width):
    """Write ``chain.yaml``, ``fan.yaml``, ``one.yaml`` (a 1-step DAG) and ``watch.yaml`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("chain", chain(chain_steps)), ("fan", fan(width)), ("one", chain(1)), ("watch", watch())):
        (folder / f"{name}.yaml").write_text(text)
