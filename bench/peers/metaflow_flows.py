"""The bench's shapes for Metaflow, written out as flow files: ``python chain.py run``.

Metaflow reads a flow's graph from its source code, so every step of the 40-step chain has to be spelled
out; this writes the three files instead of keeping 40 near-identical methods here. Every step is a process
of its own (Metaflow's local runtime), doing nothing, like ``true``.
"""

from pathlib import Path

HEAD = "from metaflow import FlowSpec, step\n\n\nclass {name}(FlowSpec):\n"
STEP = "    @step\n    def {name}(self{inputs}):\n        self.next({next})\n\n"
END = "    @step\n    def end(self{inputs}):\n        pass\n\n"
TAIL = "\nif __name__ == '__main__':\n    {name}()\n"


def chain(n, name="Chain"):
    """``start`` → s1 … → ``end``: ``n`` steps (``n`` ≥ 2; Metaflow's smallest flow is start → end)."""
    names = ["start", *(f"s{i}" for i in range(1, n - 1))]
    nexts = [*names[1:], "end"]
    body = "".join(STEP.format(name=a, inputs="", next=f"self.{b}") for a, b in zip(names, nexts, strict=True))
    return HEAD.format(name=name) + body + END.format(inputs="") + TAIL.format(name=name)


def fan(width):
    """``start`` → ``work`` x ``width`` (a foreach) → ``join`` → ``end`` (which may not be the join itself)."""
    body = "    @step\n    def start(self):\n        self.items = list(range({width}))\n"
    body += "        self.next(self.work, foreach='items')\n\n"
    body = body.format(width=width) + STEP.format(name="work", inputs="", next="self.join")
    body += STEP.format(name="join", inputs=", inputs", next="self.end")
    return HEAD.format(name="Fan") + body + END.format(inputs="") + TAIL.format(name="Fan")


def write(folder, chain_steps, width):
    """Write ``chain.py``, ``fan.py`` and ``one.py`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("chain", chain(chain_steps)), ("fan", fan(width)), ("one", chain(2, "One"))):
        (folder / f"{name}.py").write_text(text)
