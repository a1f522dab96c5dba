"""The bench's shapes for Luigi: ``luigi --module luigi_flows Chain --n 40 --local-scheduler``.

Luigi runs every task inside its worker process (no process per task). A task without outputs would be
run again on every check, so each says it is complete once it has run.
"""

import luigi


class Step(luigi.Task):
    """Does nothing, like ``true``."""

    _done = False

    def run(self):
        self._done = True

    def complete(self):
        return self._done


class Link(Step):
    i = luigi.IntParameter()

    def requires(self):
        return Link(i=self.i - 1) if self.i > 0 else []


class Chain(Step):
    """``n`` steps one after another (``Chain`` itself is the last)."""

    n = luigi.IntParameter()

    def requires(self):
        return Link(i=self.n - 2) if self.n > 1 else []


class Root(Step):
    pass


class Work(Step):
    i = luigi.IntParameter()

    def requires(self):
        return Root()


class Fan(Step):
    """1 → ``width`` → 1: ``Root``, then ``width`` tasks needing it, then ``Fan`` needing them all."""

    width = luigi.IntParameter()

    def requires(self):
        return [Work(i=i) for i in range(self.width)]
