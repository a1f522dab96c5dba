"""The trials of a matrix: what each hyperparameter generator gives, and the suggestions of the kinds that
need no results (grid, random, mapping) and hyperband's bracket arithmetic.

Semantics are Polyaxon 2.18's (``hypertune``'s search managers), read from its documentation and code:

* A generator *enumerates* (``choice``, ``range``, ``linspace``, ``logspace``, ``geomspace``, ``daterange``,
  ``datetimerange``) or *samples* (``pchoice`` and the distributions). ``range`` excludes its stop (as
  ``numpy.arange``); ``linspace``/``logspace``/``geomspace`` include it (as numpy's).
* ``loguniform(low, high)`` is ``exp(uniform(low, high))`` (Polyaxon's bounds are in log space), and
  ``lognormal(loc, scale)`` is ``exp(normal(loc, scale))``; ``q*`` rounds to a multiple of ``q``.
* **grid**: the cartesian product of the params in the order written, the first ``numRuns`` of it.
* **random**: ``numRuns`` distinct suggestions sampled with ``seed``; when every param enumerates, never more
  than the size of the grid. polynb samples with Python's ``random.Random(seed)``, not numpy's generator, so
  the same seed gives the same trials on every run of polynb, not the values Polyaxon would draw.
* **mapping**: one trial per row, in order.
* **hyperband**: see :class:`HyperbandMath`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from polynb.spec.matrix import HpParam, Hyperband, _spread

ENUMERATED = frozenset({"choice", "range", "linspace", "logspace", "geomspace", "daterange", "datetimerange"})


class TrialsError(ValueError):
    """A matrix whose trials cannot be made (a ``{{ ... }}`` left unresolved, an empty grid)."""


def _parts(param: HpParam) -> dict[str, Any]:
    if isinstance(param.value, str) and "{{" in param.value:
        raise TrialsError(f"the value of a `{param.kind}` is a template ({param.value!r}): not resolved")
    return _spread(param.kind, param.value)


def _number(value: float) -> int | float:
    """Integral results of integral inputs stay ints (``range: 1:5:1`` gives 1, 2, 3, 4)."""
    return int(value) if isinstance(value, int) else value


def values(param: HpParam) -> list[Any]:
    """Every value an enumerating generator gives, in order (``TrialsError`` for a distribution)."""
    kind = param.kind
    if kind == "choice":
        return list(param.value or [])
    if kind not in ENUMERATED:
        raise TrialsError(f"a `{kind}` samples values: it has no list of values to enumerate")
    p = _parts(param)
    if kind == "range":
        start, stop, step = p["start"], p["stop"], p["step"]
        count = max(0, math.ceil((stop - start) / step))
        integral = all(float(x).is_integer() for x in (start, stop, step))
        return [int(start + i * step) if integral else start + i * step for i in range(count)]
    if kind in ("linspace", "logspace", "geomspace"):
        start, stop, num = float(p["start"]), float(p["stop"]), int(p["num"])
        if kind == "geomspace":
            start, stop = math.log10(start), math.log10(stop)
        points = [start + (stop - start) * i / (num - 1) for i in range(num)] if num > 1 else [start]
        if kind == "linspace":
            return points
        base = 10.0 if kind == "geomspace" else float(p.get("base", 10))
        return [base**x for x in points]
    start, stop, step = p["start"], p["stop"], p["step"]
    if kind == "daterange":
        delta = timedelta(days=int(step))
    else:
        delta = step if isinstance(step, timedelta) else timedelta(seconds=float(step))
    out: list[date | datetime] = []
    current = start
    while current < stop:
        out.append(current)
        current = current + delta
    return [v.isoformat() for v in out]


def sample(param: HpParam, rng: random.Random) -> Any:
    """One value drawn from any generator (an enumerating one: uniformly among its values)."""
    kind = param.kind
    if kind in ENUMERATED:
        return rng.choice(values(param))
    if kind == "pchoice":
        items = list(param.value or [])
        weights = [float(w) for _, w in items]
        return rng.choices([v for v, _ in items], weights=weights)[0]
    p = _parts(param)
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        drawn = rng.uniform(float(p["low"]), float(p["high"]))
    else:
        drawn = rng.gauss(float(p["loc"]), float(p["scale"]))
    if kind in ("loguniform", "qloguniform", "lognormal", "qlognormal"):
        drawn = math.exp(drawn)
    if kind.startswith("q"):
        q = float(p["q"])
        drawn = round(drawn / q) * q
    return drawn


def _params(params: Mapping[str, HpParam] | str | None) -> Mapping[str, HpParam]:
    if isinstance(params, str):
        raise TrialsError(f"the params of the matrix are a template ({params!r}): not resolved")
    return params or {}


def grid(params: Mapping[str, HpParam] | str, num_runs: int | None = None) -> Iterator[dict[str, Any]]:
    """The cartesian product, params in the order written (the last one varies fastest), lazily."""
    named = _params(params)
    names = list(named)
    product = itertools.product(*(values(named[n]) for n in names))
    for k, combo in enumerate(product):
        if num_runs is not None and k >= num_runs:
            return
        yield dict(zip(names, combo, strict=True))


def random_search(params: Mapping[str, HpParam] | str, num_runs: int, seed: int | None) -> list[dict[str, Any]]:
    """``num_runs`` distinct suggestions (fewer if the params enumerate fewer combinations)."""
    named = _params(params)
    rng = random.Random(seed)
    if all(p.kind in ENUMERATED for p in named.values()):
        num_runs = min(num_runs, math.prod(len(values(p)) for p in named.values()))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(out) < num_runs:
        suggestion = {name: sample(p, rng) for name, p in named.items()}
        key = repr(sorted(suggestion.items()))
        if key not in seen:
            seen.add(key)
            out.append(suggestion)
    return out


def mapping(rows: Sequence[Mapping[str, Any]] | str) -> list[dict[str, Any]]:
    if isinstance(rows, str):
        raise TrialsError(f"the values of the mapping are a template ({rows!r}): not resolved")
    return [dict(row) for row in rows]


@dataclass(frozen=True)
class HyperbandMath:
    """Polyaxon's hyperband arithmetic (``V1Hyperband``), with ``R = maxIterations`` and ``eta``:

    * ``s_max = floor(log(R) / log(eta))`` and the budget per bracket ``B = (s_max + 1) * R``;
    * iteration ``i`` runs bracket ``s = s_max - i``; there are ``s_max + 1`` of them (s_max down to 0);
    * bracket ``s`` starts ``n = ceil(B / R * eta**s / (s + 1))`` random configurations with
      ``r = R * eta**-s`` of the resource;
    * its round ``b`` (``b = 0..s``) gives ``r * eta**b`` of the resource to the best
      ``int(n * eta**-(b-1) / eta)`` configurations of round ``b - 1`` (by the metric); a round that
      would keep none ends the bracket.
    """

    max_iterations: int
    eta: float

    @classmethod
    def of(cls, spec: Hyperband) -> HyperbandMath:
        if spec.max_iterations is None or spec.eta is None or isinstance(spec.eta, str):
            raise TrialsError("hyperband needs `maxIterations` and `eta` (numbers)")
        if spec.eta <= 1:
            raise TrialsError(f"hyperband's `eta` must be more than 1, got {spec.eta:g}")
        return cls(int(spec.max_iterations), float(spec.eta))

    @property
    def s_max(self) -> int:
        return int(math.log(self.max_iterations) / math.log(self.eta))

    @property
    def budget(self) -> float:
        return (self.s_max + 1) * self.max_iterations

    def bracket(self, iteration: int) -> int:
        return self.s_max - iteration

    @property
    def iterations(self) -> int:
        return self.s_max + 1

    def num_runs(self, bracket: int) -> int:
        return math.ceil((self.budget / self.max_iterations) * (self.eta**bracket) / (bracket + 1))

    def resources(self, bracket: int, bracket_iteration: int = 0) -> float:
        return self.max_iterations * (self.eta ** (-bracket)) * self.eta**bracket_iteration

    def num_to_keep(self, bracket: int, bracket_iteration: int) -> int:
        """How many configurations round ``bracket_iteration + 1`` keeps of round ``bracket_iteration``."""
        return int(self.num_runs(bracket) * (self.eta**-bracket_iteration) / self.eta)

    def rounds(self, bracket: int) -> list[tuple[int, float]]:
        """``(configurations, resource)`` of each round of the bracket, while a round keeps some."""
        out = [(self.num_runs(bracket), self.resources(bracket))]
        for b in range(1, bracket + 1):
            keep = self.num_to_keep(bracket, b - 1)
            if keep <= 0:
                break
            out.append((keep, self.resources(bracket, b)))
        return out


def cast_resource(value: float, kind: str | None) -> int | float:
    """The resource as its ``type`` says (Polyaxon's ``V1OptimizationResource.cast_value``)."""
    return int(value) if kind == "int" else float(value)


def unrunnable(matrix: object) -> str | None:
    """Why polynb cannot run a matrix of this kind, or None."""
    kind = getattr(matrix, "kind", None)
    if kind == "iterative":
        return ("`iterative` runs a custom tuner component that suggests each round: polynb runs no tuner "
                "components; use random, grid, hyperband, tpe or bayes")  # fmt: skip
    if getattr(matrix, "tuner", None) is not None:
        return "a custom `tuner` component: polynb suggests trials itself (Optuna for tpe and bayes)"
    if kind == "bayes" and not gp_available():
        return ("`bayes` runs on Optuna's GPSampler, which needs `torch` and `scipy`, not installed here: install "
                "them (`pip install torch scipy`) or use `kind: tpe`")  # fmt: skip
    params = getattr(matrix, "params", None)
    if kind in ("tpe", "bayes") and isinstance(params, dict):
        for name, param in params.items():
            if param.kind not in OPTUNA_KINDS:
                return (f"`{name}` is a `{param.kind}`: polynb's {kind} runs on Optuna, whose samplers take choices, "
                        "ranges and uniform, quniform and loguniform distributions")  # fmt: skip
    return None


def gp_available() -> bool:
    """Whether Optuna's GPSampler can run here (it imports ``torch`` and ``scipy``)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("scipy") is not None


OPTUNA_KINDS = ENUMERATED | {"uniform", "quniform", "loguniform"}
"""Generators with an Optuna distribution (``scheduler.suggesters.optuna_distribution``)."""
