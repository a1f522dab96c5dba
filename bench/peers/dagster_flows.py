"""The bench's shapes for Dagster: ``dagster job execute -f dagster_flows.py -j chain_in_process``.

Each shape is built twice: with the in-process executor (every op in the run's process) and with the
multiprocess executor (Dagster's default: a process per op). Ops pass nothing; ``Nothing`` inputs order them.
"""

import os

from dagster import Definitions, In, Nothing, in_process_executor, job, multiprocess_executor, op

CHAIN = int(os.environ.get("BENCH_CHAIN", "40"))
WIDTH = int(os.environ.get("BENCH_WIDTH", "200"))


def step(name):
    """An op that does nothing, like ``true``; it runs after whatever is wired to ``after``."""

    @op(name=name, ins={"after": In(Nothing)})
    def _step():
        pass

    return _step


def chain():
    previous = step("s0")()
    for i in range(1, CHAIN):
        previous = step(f"s{i}")(after=previous)


def fan():
    root = step("root")()
    step("sink")(after=[step(f"w{i}")(after=root) for i in range(WIDTH)])


def one():
    step("s0")()


defs = Definitions(
    jobs=[
        job(name=f"{body.__name__}_{suffix}", executor_def=executor)(body)
        for body in (chain, fan, one)
        for suffix, executor in (("in_process", in_process_executor), ("multiprocess", multiprocess_executor))
    ]
)
