"""The base of every spec model, shared by ``models`` and the section modules (``matrix``, ``schedule``...)."""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    GetPydanticSchema,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

TEMPLATE_REF = re.compile(r"{{\s*(.+)\s*}}")
"""A param reference (``{{ params.n }}``): Polyaxon's ``RefField``, a string holding one, resolved when the op
compiles. Searched, not matched: Polyaxon accepts any string that contains one."""


def is_ref_field(value: Any) -> bool:
    """Whether ``value`` is a ``{{ ... }}`` reference standing for a value given when the op compiles."""
    return isinstance(value, str) and TEMPLATE_REF.search(value) is not None


DEFERRED = ConfigDict(defer_build=True)
"""A ``TypeAdapter``'s config: its validator is built on first use, not when its module is imported."""


def on_first_use(tp: Any) -> GetPydanticSchema:
    """``Annotated[X, on_first_use(X)]``: a field of type ``X`` whose validator is built the first time a file
    gives the field, not with the model holding it. For the sections most files never use (``matrix``,
    ``schedule``, ``joins``, ``hooks``...): a model's validator holds those of every model it nests, so
    without this a one-line job builds the matrix generators' too. Same errors (pydantic prefixes the field's
    location to those of the section), same field type for the introspection of error messages."""
    adapters: list[TypeAdapter[Any]] = []

    def build() -> TypeAdapter[Any]:
        if not adapters:
            adapters.append(TypeAdapter(tp))  # built once; two threads racing here build two, both right
        return adapters[0]

    def validate(value: Any, info: ValidationInfo) -> Any:
        return build().validate_python(value, context=info.context)

    _FIRST_USE.append(build)
    return GetPydanticSchema(lambda _tp, _handler: core_schema.with_info_plain_validator_function(validate))


_FIRST_USE: list[Any] = []
"""The builders of every ``on_first_use`` section, for :func:`build_everything`."""


def build_everything() -> None:
    """Build every spec model's validator and serializer, and every section's, now rather than on first use.

    For a process that forks one child per command (the CLI's command server): built once before the forks,
    never again in a child, whatever file a command reads."""
    pending: list[type[BaseModel]] = [Model]
    seen: set[type[BaseModel]] = set()
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        pending += cls.__subclasses__()
        if cls is not Model and cls is not SharedModel and not cls.__pydantic_generic_metadata__["parameters"]:
            cls.model_rebuild()
    for build in list(_FIRST_USE):
        build()


class Model(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys rejected.

    ``defer_build``: a model's validator is built when it first validates, not when its class is made, so a
    command pays only for the models it uses (a file's ``Component``, with what it nests, in one build) and
    a command that validates nothing pays for none. The forward references between the models (a DAG's ops
    are operations) are resolved then too: no ``model_rebuild()`` at import."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        use_enum_values=False,
        defer_build=True,
    )


class SharedModel(Model):
    """A model many others nest (a container: in every run kind, its init containers and sidecars, each replica of
    a distributed run): built with its class, once. A deferred model is generated anew inside each model that
    nests it (a container 19 times in a component), a built one is reused."""

    model_config = ConfigDict(defer_build=False)


class TemplatedSection(Model):
    """A section Polyaxon 2.18 also accepts written whole as one ``{{ ... }}`` template (its ``Union[V1X, RefField]``
    fields: ``termination``, ``cache``, ``plugins``), rendered with the op's params when the op compiles.

    Such a section is read as an empty one that keeps the template (``whole_template``): what reads the section
    before the op compiles sees no field set; the compiler renders the template and reads what it gives as the
    section (``compiler.compile.render_section``). It is dumped as the template, so it reads back the same."""

    _whole_template: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _written_whole(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if is_ref_field(data):
            section = handler({})
            section._whole_template = data
            return section
        return handler(data)

    @model_serializer(mode="wrap")
    def _dumped_as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        return self._whole_template if self._whole_template is not None else handler(self)

    @property
    def whole_template(self) -> str | None:
        """The template the whole section was written as; None when it was written field by field."""
        return self._whole_template


def nested_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error located below the field being validated (pydantic prefixes the field's loc)."""
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data("Polyaxonfile", [InitErrorDetails(type=error, loc=loc, input=value)])


def int_or_template(value: Any, what: str) -> Any:
    """An integer, or a ``{{ ... }}`` template that renders to one when the op compiles (Polyaxon's
    ``Union[StrictInt, RefField]``). As in Polyaxon, ``"10"`` (a string) is not an integer."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer or a `{{{{ ... }}}}` param reference, got {value}")
    if isinstance(value, int):
        return value
    if is_ref_field(value):
        return value
    raise ValueError(f"{what}: expected an integer or a `{{{{ ... }}}}` param reference, got {value!r}")
