"""What a sweep runs next: one suggester per matrix kind, asked for at most ``limit`` trials at a time and
told each trial's metric when it is final.

The sweep (``sweeps``) asks only when it has free slots (``concurrency``), so trials are made lazily: a
1,000-trial random sweep holds ``concurrency`` trial runs in flight, never 1,000 pending ones. A suggester
that needs results before its next round (hyperband's next round, Optuna's next batch) returns nothing until
its round is told; ``finished`` is true once it will never suggest again.

Kinds (Polyaxon 2.18 semantics, see ``compiler.trials``): grid, random and mapping know every trial up
front; hyperband runs its brackets round by round (the best ``1/eta`` go on with ``eta`` times the
resource); tpe and bayes are Optuna studies driven by ask/tell: ``TPESampler`` (the Tree-structured Parzen
Estimator Polyaxon takes from Hyperopt) and ``GPSampler`` (a Gaussian process, Polyaxon's bayes). Optuna is
maintained, is what the Python ecosystem tunes with, and has both samplers behind one ask/tell interface;
its GP sampler needs ``torch`` and ``scipy``, which polynb does not install: without them a bayes matrix is
refused with that reason, never run with another algorithm.

A restarted engine rebuilds a suggester from the sweep's trials (``resume``, :class:`PastTrial`): grid, random,
mapping and hyperband replay their suggestions (they are deterministic once the seed is fixed: the sweep stores
the seed it drew when the matrix gives none) and must find each trial's params again, or the sweep cannot be
resumed; Optuna's study is rebuilt from the trials' params and metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from polynb.compiler.trials import (
    ENUMERATED,
    HyperbandMath,
    TrialsError,
    cast_resource,
    gp_available,
    grid,
    mapping,
    random_search,
    values,
)
from polynb.spec.matrix import (
    Bayes,
    GridSearch,
    HpParam,
    Hyperband,
    Iterative,
    MatrixSpec,
    RandomSearch,
    Tpe,
)
from polynb.spec.matrix import Mapping as MappingSearch


@dataclass(frozen=True, slots=True)
class Suggestion:
    params: dict[str, Any]
    key: Any
    """What the suggester needs back with the result (an Optuna trial number, a hyperband config)."""


@dataclass(frozen=True, slots=True)
class PastTrial:
    """A trial a restarted engine finds in the store, in the order the sweep made them."""

    params: dict[str, Any]
    final: bool
    metric: float | None
    """Its metric, if it succeeded with one (what ``tell`` was or will be told)."""


class Suggester(Protocol):
    total: int | None
    """How many trials the sweep will run, where it is known up front."""

    def ask(self, limit: int) -> list[Suggestion]: ...
    def tell(self, key: Any, metric: float | None) -> None: ...
    def resume(self, past: list[PastTrial]) -> list[Any] | None:
        """Bring a new suggester to where the one that made ``past`` was (the final trials told): the keys
        of ``past``'s suggestions, or None if they are not what this suggester makes."""
        ...

    @property
    def finished(self) -> bool: ...


def _same(params: dict[str, Any], stored: dict[str, Any]) -> bool:
    """``params`` as the store keeps them (JSON) are ``stored``."""
    return bool(json.loads(json.dumps(params)) == stored)


def _replay(suggester: Suggester, past: list[PastTrial]) -> list[Any] | None:
    """Ask for ``past`` again one by one, telling each final trial at once (as its round needs before the next
    is asked): the keys, or None once a suggestion is not the stored trial's params."""
    keys: list[Any] = []
    for trial in past:
        suggestions = suggester.ask(1)
        if not suggestions or not _same(suggestions[0].params, trial.params):
            return None
        keys.append(suggestions[0].key)
        if trial.final:
            suggester.tell(suggestions[0].key, trial.metric)
    return keys


def _seed(value: int | str | None) -> int | None:
    if isinstance(value, str):
        raise TrialsError(f"`seed` is a template ({value!r}): not resolved")
    return value


def _count(value: int | str | None, what: str) -> int | None:
    if isinstance(value, str):
        raise TrialsError(f"`{what}` is a template ({value!r}): not resolved")
    return value


class Listed:
    """Grid, random and mapping: every trial is known before the first runs; results change nothing."""

    def __init__(self, trials: Iterator[dict[str, Any]], total: int) -> None:
        self._trials = trials
        self.total: int | None = total
        self._given = 0

    def ask(self, limit: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for params in self._trials:
            out.append(Suggestion(params, self._given))
            self._given += 1
            if len(out) >= limit:
                break
        return out

    def tell(self, key: Any, metric: float | None) -> None:
        pass

    def resume(self, past: list[PastTrial]) -> list[Any] | None:
        return _replay(self, past)

    @property
    def finished(self) -> bool:
        return self._given >= (self.total or 0)


def _better(maximize: bool) -> Any:
    """A sort key putting the best metric first and trials without one (failed) last."""
    return lambda item: (item[1] is None, -(item[1] or 0.0) if maximize else (item[1] or 0.0))


@dataclass
class _Round:
    configs: list[dict[str, Any]]
    results: dict[int, float | None] = field(default_factory=dict)
    given: int = 0


class HyperbandSuggester:
    """Polyaxon's hyperband, bracket by bracket, round by round (``compiler.trials.HyperbandMath``)."""

    def __init__(self, spec: Hyperband) -> None:
        self.math = HyperbandMath.of(spec)
        if spec.resource is None or spec.metric is None:
            raise TrialsError("hyperband needs `resource` and `metric`")
        if isinstance(spec.params, str):
            raise TrialsError(f"the params of the matrix are a template ({spec.params!r}): not resolved")
        self._params: Mapping[str, HpParam] = spec.params or {}
        self._resource = spec.resource
        self._maximize = spec.metric.optimization == "maximize"
        self._seed = _seed(spec.seed)
        self.total: int | None = sum(n for s in range(self.math.s_max, -1, -1) for n, _ in self.math.rounds(s))
        self._iteration = 0
        self._bracket_iteration = 0
        self._round: _Round | None = self._first_round()

    def _first_round(self) -> _Round:
        bracket = self.math.bracket(self._iteration)
        # As Polyaxon: each bracket's configurations are a random search with the matrix's seed.
        configs = (
            random_search(self._params, self.math.num_runs(bracket), self._seed)
            if self._params
            else [{} for _ in range(self.math.num_runs(bracket))]
        )
        return _Round(configs)

    def _with_resource(self, config: dict[str, Any]) -> dict[str, Any]:
        bracket = self.math.bracket(self._iteration)
        amount = self.math.resources(bracket, self._bracket_iteration)
        return {**config, self._resource.name: cast_resource(amount, self._resource.type)}

    def ask(self, limit: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        r = self._round
        while r is not None and r.given < len(r.configs) and len(out) < limit:
            key = (self._iteration, self._bracket_iteration, r.given)
            out.append(Suggestion(self._with_resource(r.configs[r.given]), key))
            r.given += 1
        return out

    def tell(self, key: Any, metric: float | None) -> None:
        iteration, bracket_iteration, index = key
        r = self._round
        if r is None or (iteration, bracket_iteration) != (self._iteration, self._bracket_iteration):
            return
        r.results[index] = metric
        if len(r.results) == len(r.configs):
            self._next_round(r)

    def resume(self, past: list[PastTrial]) -> list[Any] | None:
        return _replay(self, past)

    def _next_round(self, done: _Round) -> None:
        bracket = self.math.bracket(self._iteration)
        keep = self.math.num_to_keep(bracket, self._bracket_iteration)
        if self._bracket_iteration < bracket and keep > 0:
            ranked = sorted(done.results.items(), key=_better(self._maximize))
            kept = [done.configs[i] for i, metric in ranked if metric is not None][:keep]
            if kept:
                self._bracket_iteration += 1
                self._round = _Round(kept)
                return
        if self.math.bracket(self._iteration + 1) >= 0:
            self._iteration += 1
            self._bracket_iteration = 0
            self._round = self._first_round()
        else:
            self._round = None

    @property
    def finished(self) -> bool:
        return self._round is None


def optuna_distribution(name: str, param: HpParam) -> Any:
    """The Optuna distribution of a generator (``TrialsError`` for those Optuna has no equivalent of)."""
    import optuna

    from polynb.compiler.trials import _parts

    if param.kind in ENUMERATED:
        return optuna.distributions.CategoricalDistribution(values(param))
    if param.kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        p = _parts(param)
        low, high = float(p["low"]), float(p["high"])
        step = float(p["q"]) if "q" in p else None
        if param.kind.endswith("loguniform"):
            # Polyaxon's bounds of a loguniform are in log space: exp(uniform(low, high)).
            if step is not None:
                raise TrialsError(f"`{name}`: a `qloguniform` has no Optuna distribution (log scale with a step)")
            return optuna.distributions.FloatDistribution(math.exp(low), math.exp(high), log=True)
        return optuna.distributions.FloatDistribution(low, high, step=step)
    raise TrialsError(f"`{name}`: a `{param.kind}` has no Optuna distribution; Optuna's samplers take choices, "
                      "ranges and (log)uniform distributions")  # fmt: skip


class OptunaSuggester:
    """bayes and tpe: an in-memory Optuna study, asked for a round of trials once the last one is told."""

    def __init__(self, spec: Bayes | Tpe) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if isinstance(spec.params, str):
            raise TrialsError(f"the params of the matrix are a template ({spec.params!r}): not resolved")
        self._space = {name: optuna_distribution(name, p) for name, p in spec.params.items()}
        seed = _seed(spec.seed)
        maximize = spec.metric.optimization == "maximize"
        if isinstance(spec, Bayes):
            initial = _count(spec.num_initial_runs, "numInitialRuns") or 1
            iterations = _count(spec.max_iterations, "maxIterations") or 0
            # Polyaxon's bayes: numInitialRuns random trials, then one suggestion per iteration.
            self._rounds = [initial] + [1] * iterations
            self._sampler: Any = lambda seed: _gp_sampler(seed, initial)
        else:
            per_round = _count(spec.num_runs, "numRuns") or 1
            iterations = _count(spec.max_iterations, "maxIterations") or 1
            # Polyaxon's tpe: numRuns suggestions per iteration, maxIterations iterations (one without).
            self._rounds = [per_round] * max(1, iterations)
            self._sampler = lambda seed: optuna.samplers.TPESampler(seed=seed)
        self._seed = seed
        self._direction: Literal["maximize", "minimize"] = "maximize" if maximize else "minimize"
        self.total: int | None = sum(self._rounds)
        self._study = optuna.create_study(direction=self._direction, sampler=self._sampler(seed))
        self._open: dict[int, Any] = {}
        self._left_in_round = 0

    def ask(self, limit: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        if self._left_in_round == 0 and not self._open and self._rounds:
            self._left_in_round = self._rounds.pop(0)
        while self._left_in_round > 0 and len(out) < limit:
            trial = self._study.ask(self._space)
            self._open[trial.number] = trial
            self._left_in_round -= 1
            out.append(Suggestion(dict(trial.params), trial.number))
        return out

    def tell(self, key: Any, metric: float | None) -> None:
        import optuna

        trial = self._open.pop(key, None)
        if trial is None:
            return
        if metric is None or math.isnan(metric):
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, metric)

    def resume(self, past: list[PastTrial]) -> list[Any] | None:
        """A new study told every final trial (its params and metric, or failed), the live ones asked again
        with their params (``enqueue_trial``), the rounds advanced past every trial made. The sampler is seeded
        with the seed plus the count of trials, so it does not draw the first trials' params again."""
        import optuna

        if not past:
            return []
        seed = None if self._seed is None else self._seed + len(past)
        self._study = optuna.create_study(direction=self._direction, sampler=self._sampler(seed))
        keys: list[Any] = []
        for trial in past:
            try:
                distributions = {name: self._space[name] for name in trial.params}
                if trial.final:
                    done = optuna.trial.create_trial(
                        params=trial.params,
                        distributions=distributions,
                        value=trial.metric,
                        state=optuna.trial.TrialState.COMPLETE
                        if trial.metric is not None
                        else optuna.trial.TrialState.FAIL,
                    )
                    self._study.add_trial(done)
                    keys.append(None)
                else:
                    self._study.enqueue_trial(trial.params)
                    asked = self._study.ask(self._space)
                    if not _same(dict(asked.params), trial.params):
                        return None
                    self._open[asked.number] = asked
                    keys.append(asked.number)
            except (KeyError, ValueError):  # params not of this matrix's space
                return None
        made = len(past)
        while made > 0 and self._rounds:
            size = self._rounds.pop(0)
            self._left_in_round = max(0, size - made)
            made -= size
        return keys

    @property
    def finished(self) -> bool:
        return not self._rounds and self._left_in_round == 0 and not self._open


def _gp_sampler(seed: int | None, initial: int) -> Any:
    import optuna

    if not gp_available():
        raise TrialsError("a `bayes` matrix runs on Optuna's GPSampler, which needs `torch` and `scipy`: "
                          "install them (`pip install torch scipy`) or use `kind: tpe`") from None  # fmt: skip
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=initial)


def suggester_for(spec: MatrixSpec) -> Suggester:
    """The suggester of a matrix (``TrialsError`` with the reason for what polynb cannot run)."""
    if isinstance(spec, GridSearch):
        num_runs = _count(spec.num_runs, "numRuns")
        params = spec.params
        if isinstance(params, str):
            raise TrialsError(f"the params of the matrix are a template ({params!r}): not resolved")
        size = math.prod(len(values(p)) for p in params.values())
        return Listed(grid(params, num_runs), min(size, num_runs) if num_runs else size)
    if isinstance(spec, RandomSearch):
        num_runs = _count(spec.num_runs, "numRuns") or 1
        trials = random_search(spec.params, num_runs, _seed(spec.seed))
        return Listed(iter(trials), len(trials))
    if isinstance(spec, MappingSearch):
        rows = mapping(spec.values)
        return Listed(iter(rows), len(rows))
    if isinstance(spec, Hyperband):
        return HyperbandSuggester(spec)
    if isinstance(spec, Bayes | Tpe):
        return OptunaSuggester(spec)
    assert isinstance(spec, Iterative)
    raise TrialsError("`iterative` runs a custom tuner component that suggests each round: polynb runs no "
                      "tuner components; use random, grid, hyperband, tpe or bayes")  # fmt: skip
