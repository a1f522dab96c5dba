"""``matrix``: Polyaxon's sweeps (``V1Matrix``), parsed and checked field by field.

Seven kinds, as Polyaxon 2.18 names them: ``grid``, ``random``, ``mapping``, ``hyperband``, ``bayes``, ``tpe``
(Hyperopt's TPE; Polyaxon 1.x called the kind ``hyperopt``) and ``iterative``. Their ``params`` are
hyperparameter generators (:class:`HpParam`): ``choice``, ``pchoice``, ``range``, ``daterange``,
``datetimerange``, ``linspace``, ``logspace``, ``geomspace`` and the distributions ``uniform``, ``quniform``,
``loguniform``, ``qloguniform``, ``normal``, ``qnormal``, ``lognormal``, ``qlognormal``. A generator's
``value`` is a list (``[1, 10, 2]``), a mapping (``{start: 1, stop: 10, step: 2}``), a ``"1:10:2"`` string, or
a ``{{ ... }}`` param reference.

The rules are Polyaxon's (``polyaxon/_flow/matrix``), so a file polynb accepts is one Polyaxon accepts:
grid search takes no distribution, bayes only ``uniform`` ones, a range's start is below its stop, a
probability of ``pchoice`` is a float in [0, 1) and they sum to at most 1. Where Polyaxon 2.18 fails on a
``{{ ... }}`` reference (``numRuns`` and ``concurrency`` of grid, random, tpe and iterative: its validator
compares the string with 1) polynb refuses it with that reason, rather than accept a file Polyaxon rejects.

polynb checks a matrix and refuses to run it ("not supported yet"): sweeps are not executed yet.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator

from polynb.spec.base import DEFERRED, Model, int_or_template, is_ref_field

HpKind = Literal["choice", "pchoice", "range", "daterange", "datetimerange", "linspace", "logspace", "geomspace",
                 "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal",
                 "qlognormal"]  # fmt: skip

# The parts of each generator's value, required then optional (Polyaxon's ``_REQUIRED_KEYS``/``_OPTIONAL_KEYS``).
_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "range": (("start", "stop", "step"), ()),
    "daterange": (("start", "stop", "step"), ()),
    "datetimerange": (("start", "stop", "step"), ()),
    "linspace": (("start", "stop", "num"), ()),
    "geomspace": (("start", "stop", "num"), ()),
    "logspace": (("start", "stop", "num"), ("base",)),
    "uniform": (("low", "high"), ("size",)),
    "loguniform": (("low", "high"), ("size",)),
    "quniform": (("low", "high", "q"), ("size",)),
    "qloguniform": (("low", "high", "q"), ("size",)),
    "normal": (("loc", "scale"), ("size",)),
    "lognormal": (("loc", "scale"), ("size",)),
    "qnormal": (("loc", "scale", "q"), ("size",)),
    "qlognormal": (("loc", "scale", "q"), ("size",)),
}
_ORDERED = frozenset({"range", "daterange", "datetimerange", "linspace", "geomspace", "logspace"})
_NO_STRING_FORM = frozenset({"daterange", "datetimerange"})
_INTEGER_PARTS = frozenset({"num", "size", "base"})
DISTRIBUTIONS = frozenset({"pchoice", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal",
                           "lognormal", "qlognormal"})  # fmt: skip
"""Generators that sample rather than enumerate: grid search cannot take them."""
NUMERIC = frozenset({"range", "linspace", "logspace", "geomspace", *DISTRIBUTIONS} - {"pchoice"})
"""Generators of numbers: the input they feed is of type int or float (Polyaxon's ``validate_io``)."""

_DATE = TypeAdapter(date, config=DEFERRED)
_DATETIME = TypeAdapter(datetime, config=DEFERRED)
_TIMEDELTA = TypeAdapter(timedelta, config=DEFERRED)


def _number(text: Any, what: str) -> float:
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise ValueError(f"{what}: expected a number, got {text!r}")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {text!r}") from None


def _part(kind: str, key: str, raw: Any) -> Any:
    """One part of a generator's value, read as Polyaxon reads it (numbers may be written as strings)."""
    what = f"`{key}`"
    if kind == "daterange" and key in ("start", "stop"):
        return _adapt(_DATE, raw, what, "a date (2024-06-01)")
    if kind == "datetimerange" and key in ("start", "stop"):
        return _adapt(_DATETIME, raw, what, "a datetime (2024-06-01 10:00)")
    if kind == "datetimerange" and key == "step":
        return _adapt(_TIMEDELTA, raw, what, "a duration (seconds, or ISO 8601 such as PT1H)")
    if (kind == "daterange" and key == "step") or key in _INTEGER_PARTS:
        number = _number(raw, what)
        if not number.is_integer():
            raise ValueError(f"{what}: expected an integer, got {raw!r}")
        return int(number)
    return _number(raw, what)


def _adapt(adapter: TypeAdapter[Any], raw: Any, what: str, expected: str) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        raise ValueError(f"{what}: expected {expected}, got {raw!r}") from None


def _spread(kind: str, value: Any) -> dict[str, Any]:
    """A generator's value in any of its forms, as ``{part: value}``; raise ``ValueError`` in plain words."""
    required, optional = _PARTS[kind]
    keys = required + optional
    form = f"[{', '.join(required)}{''.join(f'[, {k}]' for k in optional)}]"
    if isinstance(value, str):
        if kind in _NO_STRING_FORM or ":" not in value:
            allowed = "a list or a mapping" if kind in _NO_STRING_FORM else f"a list, a mapping or '{':'.join(keys)}'"
            raise ValueError(f"a `{kind}` value is {allowed} {form}, got {value!r}")
        items: list[Any] = value.split(":")
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise ValueError(f"unexpected key '{unknown[0]}' in a `{kind}` value; expected {', '.join(keys)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise ValueError(f"a `{kind}` value needs `{missing[0]}`; expected {', '.join(keys)}")
        items = [value[k] for k in keys if k in value]
    else:
        raise ValueError(f"a `{kind}` value is a list {form}, a mapping or a `{{{{ ... }}}}` reference, got {value!r}")
    if not len(required) <= len(items) <= len(keys):
        raise ValueError(f"a `{kind}` value is {form}: {len(required)}"
                         f"{f' or {len(keys)}' if optional else ''} values, got {len(items)}")  # fmt: skip
    parts = {key: _part(kind, key, raw) for key, raw in zip(keys, items, strict=False)}
    if kind in _ORDERED and not parts[keys[0]] < parts[keys[1]]:
        raise ValueError(f"a `{kind}` needs {keys[0]} < {keys[1]}, got {items[0]} and {items[1]}")
    if len(required) == 3 and not parts[required[2]]:
        raise ValueError(f"the `{required[2]}` of a `{kind}` must not be 0")
    return parts


class HpParam(Model):
    """One hyperparameter generator of a matrix (see the module docstring for the forms of ``value``)."""

    kind: HpKind
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _choice_needs_value(cls, data: Any) -> Any:
        # Polyaxon: `value` is required for choice and datetimerange (it may be null), optional for the others.
        if isinstance(data, dict) and data.get("kind") in ("choice", "datetimerange") and "value" not in data:
            raise ValueError(f"missing required field 'value' (the values of the `{data['kind']}`)")
        return data

    @field_validator("value")
    @classmethod
    def _value_fits_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if value is None or kind is None or is_ref_field(value):
            return value
        if kind == "choice":
            if not isinstance(value, list):
                raise ValueError(f"a `choice` value is a list of values, got {value!r}")
            return value
        if kind == "pchoice":
            return _pchoice(value)
        _spread(kind, value)
        return value

    @property
    def is_distribution(self) -> bool:
        return self.kind in DISTRIBUTIONS


def _pchoice(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError(f"a `pchoice` value is a list of [value, probability] pairs, got {value!r}")
    total = 0.0
    for item in value:
        # Polyaxon: the probability is a float in [0, 1): `1` or `1.0` is refused; write a `choice` instead.
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], float) and 0 <= item[1] < 1):
            raise ValueError(f"each `pchoice` item is [value, probability] with a float probability in [0, 1), "
                             f"got {item!r}")  # fmt: skip
        total += item[1]
    if total > 1:
        raise ValueError(f"the probabilities of a `pchoice` sum to {total:g}, more than 1")
    return value


# ------------------------------------------------------------------------------------ shared parts


class OptimizationMetric(Model):
    name: str
    optimization: Literal["maximize", "minimize"] | None = None


class OptimizationResource(Model):
    """The resource hyperband gives more of to the trials it keeps (epochs, steps): an input of the op."""

    name: str
    type: Literal["int", "float"] | None = None


class MedianPolicy(Model):
    kind: Literal["median"]
    evaluation_interval: int | str | None = None
    min_interval: int | str | None = None
    min_samples: int | str | None = None

    _ints = field_validator("evaluation_interval", "min_interval", "min_samples", mode="before")(
        lambda v, info: None if v is None else int_or_template(v, f"`{info.field_name}`")
    )


class TruncationPolicy(Model):
    kind: Literal["truncation"]
    percent: float | str
    evaluation_interval: int | str
    min_interval: int | str | None = None
    min_samples: int | str | None = None
    include_succeeded: bool | str | None = None

    _ints = field_validator("evaluation_interval", "min_interval", "min_samples", mode="before")(
        lambda v, info: None if v is None else int_or_template(v, f"`{info.field_name}`")
    )


class DiffPolicy(Model):
    kind: Literal["diff"]
    percent: float | str
    evaluation_interval: int | str
    min_interval: int | str | None = None
    min_samples: int | str | None = None

    _ints = field_validator("evaluation_interval", "min_interval", "min_samples", mode="before")(
        lambda v, info: None if v is None else int_or_template(v, f"`{info.field_name}`")
    )


def _float_or_ref(value: Any, info: ValidationInfo) -> Any:
    if value is None or is_ref_field(value):
        return value
    return _number(value, f"`{info.field_name}`")


class MetricEarlyStopping(Model):
    """Stop the sweep once ``metric`` reaches ``value`` (in the direction of ``optimization``)."""

    kind: Literal["metric_early_stopping"]
    metric: str
    value: float | str
    optimization: Literal["maximize", "minimize"] | float
    policy: Annotated[MedianPolicy | TruncationPolicy | DiffPolicy, Field(discriminator="kind")] | None = None

    _value = field_validator("value", mode="before")(_float_or_ref)


class FailureEarlyStopping(Model):
    """Stop the sweep once ``percent`` of its trials failed."""

    kind: Literal["failure_early_stopping"]
    percent: float | str

    _percent = field_validator("percent", mode="before")(_float_or_ref)


EarlyStopping = Annotated[MetricEarlyStopping | FailureEarlyStopping, Field(discriminator="kind")]


class Tuner(Model):
    """The component that suggests the next trials (bayes, tpe, hyperband, iterative)."""

    hub_ref: str
    presets: list[str] | str | None = None
    queue: str | None = None
    namespace: str | None = None
    params: dict[str, Any] | str | None = None


# ------------------------------------------------------------------------------------------ kinds


def _positive(value: Any, what: str, *, ref: bool) -> Any:
    """A positive integer (an integral float too, as Polyaxon's lax ``PositiveInt``), or a ``{{ ... }}``
    reference where Polyaxon 2.18 can take one."""
    if is_ref_field(value):
        if ref:
            return value
        raise ValueError(f"{what}: Polyaxon 2.18 cannot take a `{{{{ ... }}}}` reference here (its validator "
                         "compares it with 1); write the number")  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise ValueError(f"{what}: expected a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{what}: expected a positive integer (1 or more), got {value!r}")
    return int(value)


class _Search(Model):
    """Fields every matrix kind has."""

    _REF_COUNTS: ClassVar[bool] = False  # whether numRuns/concurrency/maxIterations may be `{{ ... }}`
    concurrency: int | str | None = None
    early_stopping: list[EarlyStopping] | str | None = None

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return None if value is None else _positive(value, "`concurrency`", ref=cls._REF_COUNTS)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping_ref(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_ref_field(value):
            raise ValueError(f"expected a list of early stopping policies, got {value!r}")
        return value


def _hp_params(value: Any) -> Any:
    if isinstance(value, str) and not is_ref_field(value):
        raise ValueError(
            f"expected a mapping of param name to generator, or a `{{{{ ... }}}}` reference, got {value!r}"
        )
    return value


class _WithParams(_Search):
    params: dict[str, HpParam] | str

    _params = field_validator("params", mode="before")(_hp_params)


class GridSearch(_WithParams):
    """Every combination of the params' values (no distributions), at most ``numRuns`` of them."""

    kind: Literal["grid"]
    num_runs: int | str | None = None

    @field_validator("num_runs", mode="before")
    @classmethod
    def _num_runs(cls, value: Any) -> Any:
        return None if value is None else _positive(value, "`numRuns`", ref=False)

    @field_validator("params")
    @classmethod
    def _no_distributions(cls, value: dict[str, HpParam] | str) -> dict[str, HpParam] | str:
        for name, param in value.items() if isinstance(value, dict) else ():
            if param.is_distribution:
                raise ValueError(f"`{name}` is a `{param.kind}` distribution: grid search takes values to enumerate "
                                 "(choice, range, linspace, ...); use random search to sample")  # fmt: skip
        return value


class RandomSearch(_WithParams):
    """``numRuns`` trials sampled from the params."""

    kind: Literal["random"]
    num_runs: int | str
    seed: int | str | None = None

    @field_validator("num_runs", mode="before")
    @classmethod
    def _num_runs(cls, value: Any) -> Any:
        return _positive(value, "`numRuns`", ref=False)

    _seed = field_validator("seed", mode="before")(lambda v: None if v is None else int_or_template(v, "`seed`"))


class Mapping(_Search):
    """One trial per row of ``values`` (each row a mapping of param name to value)."""

    _REF_COUNTS: ClassVar[bool] = True
    kind: Literal["mapping"]
    values: list[dict[str, Any]] | str

    @field_validator("values", mode="before")
    @classmethod
    def _rows(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_ref_field(value):
            raise ValueError(f"expected a list of mappings (one per trial), got {value!r}")
        return value


class Hyperband(_Search):
    """Successive halving: many trials with little ``resource``, the best ``1/eta`` of them with more."""

    kind: Literal["hyperband"]
    params: dict[str, HpParam] | str | None = None
    max_iterations: int | None = None
    eta: float | str | None = None
    resource: OptimizationResource | None = None
    metric: OptimizationMetric | None = None
    resume: bool | str | None = None
    seed: int | str | None = None
    tuner: Tuner | None = None

    _params = field_validator("params", mode="before")(lambda v: None if v is None else _hp_params(v))
    _seed = field_validator("seed", mode="before")(lambda v: None if v is None else int_or_template(v, "`seed`"))

    @field_validator("max_iterations", mode="before")
    @classmethod
    def _max_iterations(cls, value: Any) -> Any:
        return None if value is None else _positive(value, "`maxIterations`", ref=False)

    @field_validator("eta", mode="before")
    @classmethod
    def _eta(cls, value: Any) -> Any:
        if value is None or is_ref_field(value):
            return value
        number = _number(value, "`eta`")
        if number < 0:
            raise ValueError(f"`eta`: expected a number of at least 0, got {value!r}")
        return number


class UtilityFunction(Model):
    acquisition_function: Literal["ucb", "ei", "poi", "UCB", "EI", "POI", "Ucb", "Ei", "Poi"] | None = None
    gaussian_process: GaussianProcess | None = None
    kappa: float | None = None
    eps: float | None = None
    num_warmup: int | None = None
    num_iterations: int | None = None

    @model_validator(mode="after")
    def _parameters_of_the_function(self) -> UtilityFunction:
        function = (self.acquisition_function or "ucb").lower()
        if function == "ucb" and self.kappa is None:
            raise ValueError("the acquisition function `ucb` (the default) needs `kappa`")
        if function in ("ei", "poi") and self.eps is None:
            raise ValueError(f"the acquisition function `{function}` needs `eps`")
        return self


class GaussianProcess(Model):
    kernel: Literal["rbf", "matern", "RBF", "MATERN", "Rbf", "Matern"] | None = None
    length_scale: float | None = None
    nu: float | None = None
    num_restarts_optimizer: int | None = None


class Bayes(_WithParams):
    """Bayesian optimization: ``numInitialRuns`` random trials, then ``maxIterations`` rounds of suggestions."""

    _REF_COUNTS: ClassVar[bool] = True
    kind: Literal["bayes"]
    utility_function: UtilityFunction | None = None
    num_initial_runs: int | str
    max_iterations: int | str
    metric: OptimizationMetric
    seed: int | str | None = None
    tuner: Tuner | str | None = None

    _seed = field_validator("seed", mode="before")(lambda v: None if v is None else int_or_template(v, "`seed`"))

    @field_validator("num_initial_runs", "max_iterations", mode="before")
    @classmethod
    def _counts(cls, value: Any, info: ValidationInfo) -> Any:
        return _positive(value, f"`{info.field_name}`", ref=True)

    @field_validator("params")
    @classmethod
    def _uniform_only(cls, value: dict[str, HpParam] | str) -> dict[str, HpParam] | str:
        for name, param in value.items() if isinstance(value, dict) else ():
            if param.is_distribution and param.kind != "uniform":
                raise ValueError(f"`{name}` is a `{param.kind}` distribution: bayesian optimization takes "
                                 "`uniform` distributions and values to enumerate only")  # fmt: skip
        return value


class Tpe(_WithParams):
    """Hyperopt's Tree-structured Parzen Estimator (``kind: hyperopt`` in Polyaxon 1.x)."""

    kind: Literal["tpe"]
    max_iterations: int | str | None = None
    metric: OptimizationMetric
    num_runs: int | str | None = None
    seed: int | str | None = None
    tuner: Tuner | None = None

    _seed = field_validator("seed", mode="before")(lambda v: None if v is None else int_or_template(v, "`seed`"))
    _max = field_validator("max_iterations", mode="before")(
        lambda v: None if v is None else int_or_template(v, "`maxIterations`")
    )

    @field_validator("num_runs", mode="before")
    @classmethod
    def _num_runs(cls, value: Any) -> Any:
        return None if value is None else _positive(value, "`numRuns`", ref=False)


class Iterative(_Search):
    """Rounds of trials suggested by a custom ``tuner``, ``maxIterations`` times."""

    kind: Literal["iterative"]
    params: dict[str, HpParam] | str | None = None
    max_iterations: int | str
    seed: int | str | None = None
    tuner: Tuner | None = None

    _params = field_validator("params", mode="before")(lambda v: None if v is None else _hp_params(v))
    _seed = field_validator("seed", mode="before")(lambda v: None if v is None else int_or_template(v, "`seed`"))

    @field_validator("max_iterations", mode="before")
    @classmethod
    def _max_iterations(cls, value: Any) -> Any:
        return _positive(value, "`maxIterations`", ref=False)


Matrix = Annotated[
    GridSearch | RandomSearch | Mapping | Hyperband | Bayes | Tpe | Iterative,
    Field(discriminator="kind"),
]
MATRIX_KINDS = ("grid", "random", "mapping", "hyperband", "bayes", "tpe", "iterative")
MatrixSpec = GridSearch | RandomSearch | Mapping | Hyperband | Bayes | Tpe | Iterative


def gives_input(matrix: MatrixSpec, name: str) -> bool:
    """Whether the matrix gives input ``name`` its values, as Polyaxon decides (``validate_params``): a
    param of the matrix, a key of a mapping's first row, hyperband's ``resource``; a ``{{ ... }}`` in place of
    the params or rows may give any input."""
    if isinstance(matrix, Mapping):
        rows = matrix.values
        return isinstance(rows, str) or (bool(rows) and name in rows[0])
    params = matrix.params
    if isinstance(params, str) or (params is not None and name in params):
        return True
    return isinstance(matrix, Hyperband) and matrix.resource is not None and matrix.resource.name == name


def hp_param(matrix: MatrixSpec, name: str) -> HpParam | None:
    """The generator of input ``name``, if the matrix has one."""
    params = None if isinstance(matrix, Mapping) else matrix.params
    return params.get(name) if isinstance(params, dict) else None


def input_type_problem(param: HpParam, io_type: str | None) -> str | None:
    """Why a generator cannot feed an input of ``io_type`` (Polyaxon's ``validate_io``), or None."""
    if param.kind in NUMERIC and io_type not in ("int", "float"):
        return f"a `{param.kind}` gives numbers: the input must be of type int or float (it is {io_type or 'untyped'})"
    if param.kind == "daterange" and io_type != "date":
        return f"a `daterange` gives dates: the input must be of type date (it is {io_type or 'untyped'})"
    if param.kind == "datetimerange" and io_type != "datetime":
        return f"a `datetimerange` gives datetimes: the input must be of type datetime (it is {io_type or 'untyped'})"
    return None
