"""The sandboxed template environment, native rendering, the template context and conditions."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from polynb.compiler.context import run_globals, template_context
from polynb.compiler.errors import ConditionError, TemplateError
from polynb.compiler.templates import ENV, evaluate_conditions, render_str, render_value
from polynb.compiler.types import Placement
from polynb.spec.models import IO

# --------------------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ x.append(1) }}",
        "{{ d.update({'a': 1}) }}",
        "{{ d.__class__ }}",
        "{{ 'a' * 10000000 }}",
        "{{ 2 ** 10000000 }}",
    ],
)
def test_escapes_and_mutations_are_blocked(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_str(template, {"x": [1], "d": {}})
    assert isinstance(info.value.__cause__, SecurityError | UndefinedError)
    assert template in info.value.message


def test_escape_raises_security_error_as_cause() -> None:
    with pytest.raises(TemplateError, match="unsafe") as info:
        render_value("{{ ''.__class__.__mro__ }}", {})
    assert isinstance(info.value.__cause__, SecurityError)


@pytest.mark.parametrize("template", ["{% include 'x.txt' %}", "{% import 'x.txt' as x %}", "{% extends 'x' %}"])
def test_no_template_can_load_another(template: str) -> None:
    assert ENV.loader is None
    with pytest.raises(TemplateError, match="loader"):
        render_str(template, {})


def test_environment_is_immutable_sandbox_with_strict_undefined() -> None:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    assert isinstance(ENV, ImmutableSandboxedEnvironment)
    assert issubclass(ENV.undefined, StrictUndefined)
    assert ENV.autoescape is False
    assert render_str("{{ '<b>' }}", {}) == "<b>"


# ------------------------------------------------------------------------------- strict undefined


@pytest.mark.parametrize(
    "template", ["{{ lrr }}", "--lr={{ lrr }}", "{{ lrr > 1 }}", "{{ [1, lrr] }}", "{{ lrr | upper }}"]
)
def test_undefined_names_the_variable_and_the_template(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_value(template, {"lr": 0.1})
    assert "'lrr' is undefined" in info.value.message
    assert template in info.value.message
    assert info.value.reason == "'lrr' is undefined"


def test_missing_attribute_is_an_error() -> None:
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        render_str("{{ globals.nope }}", {"globals": {"uuid": "u"}})


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="template `\\{\\{ lr `"):
        render_str("{{ lr ", {"lr": 1})


def test_runtime_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_value("{{ 1 / 0 }}", {})


# ----------------------------------------------------------------------------------- native values


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ uuids }}", ["a", "b"]),
        ("{{ n }}", 3),
        ("{{n}}", 3),
        ("{{- n -}}", 3),
        ("{{ n * 2 }}", 6),
        ("{{ flag }}", False),
        ("{{ cfg }}", {"k": [1]}),
        ("{{ none }}", None),
        ("{{ -n }}", -3),
        ("n={{ n }}", "n=3"),
        ("{{ n }}{{ n }}", "33"),
        (" {{ n }}", " 3"),
        ("{% if flag %}yes{% else %}no{% endif %}", "no"),
        ("plain", "plain"),
    ],
)
def test_render_value(template: str, expected: object) -> None:
    context = {"uuids": ["a", "b"], "n": 3, "flag": False, "cfg": {"k": [1]}, "none": None}
    assert render_value(template, context) == expected


def test_render_value_walks_containers_and_keeps_keys() -> None:
    context = {"n": 2, "name": "x"}
    value = {"{{ name }}": ["{{ n }}", ("{{ n + 1 }}", 4)], "b": {"c": "v{{ n }}"}, "d": 1.5}
    assert render_value(value, context) == {"{{ name }}": [2, (3, 4)], "b": {"c": "v2"}, "d": 1.5}


def test_trailing_newline_is_kept() -> None:
    assert render_str("a={{ n }}\n", {"n": 1}) == "a=1\n"


def test_rendered_values_are_not_rendered_again() -> None:
    # An upstream output that happens to contain `{{` is data, not a template.
    assert render_value("{{ out }}", {"out": "{{ secret }}"}) == "{{ secret }}"
    assert render_str("x={{ out }}", {"out": "{{ secret }}"}) == "x={{ secret }}"


def test_map_format_filter() -> None:
    template = '{{ uuids | map("map_format", "%s/outputs") | list }}'
    assert render_value(template, {"uuids": ["a", "b"]}) == ["a/outputs", "b/outputs"]


def test_templates_are_cached() -> None:
    from polynb.compiler import templates

    templates._template.cache_clear()
    for n in range(5):
        render_str("v={{ n }}", {"n": n})
    assert templates._template.cache_info().hits == 4


# -------------------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ loss < 0.5 }}", True),
        ("{{ loss > 0.5 }}", False),
        ("{{ 'False' }}", False),
        ("{{ 'TRUE' }}", True),
        ("true", True),
        (" False ", False),
        ("{{ flag }}", True),
        ("{% if loss < 0.5 %}true{% else %}false{% endif %}", True),
        (None, True),
    ],
)
def test_conditions(text: str | None, expected: bool) -> None:
    assert evaluate_conditions(text, {"loss": 0.1, "flag": "true"}) is expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("", "''"),
        ("{{ empty }}", "''"),
        ("{{ loss }}", "0.1"),
        ("yes", "'yes'"),
        ("{{ 1 }}", "1"),
        ("{{ none }}", "None"),
    ],
)
def test_non_boolean_conditions_fail_with_the_rendered_value(text: str, shown: str) -> None:
    with pytest.raises(ConditionError) as info:
        evaluate_conditions(text, {"loss": 0.1, "empty": "", "none": None})
    assert f"rendered to {shown}" in info.value.message


def test_condition_template_error_carries_the_jinja_message() -> None:
    with pytest.raises(ConditionError, match="'missing' is undefined"):
        evaluate_conditions("{{ missing > 1 }}", {})


# ------------------------------------------------------------------------------------ the context


def _placement(**kw: object) -> Placement:
    values: dict[str, object] = {
        "artifacts_path": "/a",
        "run_artifacts_path": "/a/u1",
        "run_outputs_path": "/a/u1/outputs",
    }
    values.update(kw)
    return Placement(**values)  # type: ignore[arg-type]


def test_context_bare_names_params_and_globals() -> None:
    ios = [
        IO(name="lr", type="float"),
        IO(name="debug", type="bool", is_flag=True),
        IO(name="quiet", type="bool", is_flag=True),
    ]
    context = template_context(
        inputs={"lr": 0.1, "debug": True, "quiet": False},
        contexts={"tag": "a b", "cfg": {"k": 1}},
        globals_={"uuid": "u1"},
        ios=ios,
    )
    assert context["lr"] == 0.1
    assert context["tag"] == "a b"
    assert context["globals"] == {"uuid": "u1"}
    assert context["params"]["lr"] == {
        "value": 0.1,
        "type": "float",
        "connection": None,
        "as_str": "0.1",
        "as_arg": "--lr=0.1",
    }
    assert context["params"]["debug"]["as_arg"] == "--debug"
    assert context["params"]["quiet"]["as_arg"] == ""
    assert context["params"]["tag"]["as_str"] == "a b"
    assert context["params"]["cfg"]["as_str"] == '{"k": 1}'
    # Context-only params are in as_args too (as Polyaxon); an unset flag is not.
    assert context["params"]["as_args"] == ["--lr=0.1", "--debug", "--tag=a b", '--cfg={"k": 1}']
    assert render_value("{{ params.as_args }}", context) == context["params"]["as_args"]


def test_as_arg_with_arg_format_and_none() -> None:
    ios = [IO(name="lr", type="float", arg_format="-l {{ lr }}"), IO(name="opt", type="str", is_optional=True)]
    context = template_context(inputs={"lr": 0.5, "opt": None}, contexts={}, globals_={}, ios=ios)
    assert context["params"]["lr"]["as_arg"] == "-l 0.5"
    assert context["params"]["opt"]["as_arg"] == ""
    assert context["params"]["as_args"] == ["-l 0.5"]


def test_structured_names_win_over_params_named_like_them() -> None:
    context = template_context(inputs={}, contexts={"globals": 1, "params": 2}, globals_={"uuid": "u"})
    assert context["globals"] == {"uuid": "u"}
    assert isinstance(context["params"], dict)


def test_run_globals_local_values() -> None:
    g = run_globals(
        uuid="u1", name="train", placement=_placement(ports=(6006,), base_url="/proxy/6006/"), project_name="exp"
    )
    assert g["owner_name"] == "local"
    assert g["project_name"] == "exp"
    assert g["run_info"] == "local.exp.runs.u1"
    assert g["ports"] == [6006]
    assert g["base_url"] == "/proxy/6006/"
    assert g["artifacts_path"] == "/a"
    assert g["run_outputs_path"] == "/a/u1/outputs"
    assert run_globals(uuid="u2", name="solo")["project_name"] == "solo"


def test_op_context_uses_the_component_declarations() -> None:
    from polynb.compiler.context import op_context
    from polynb.spec.models import Component

    component = Component.model_validate(
        {
            "inputs": [{"name": "debug", "type": "bool", "isFlag": True}],
            "outputs": [{"name": "loss", "type": "float", "value": 1.5}],
            "run": {"kind": "job", "container": {"command": ["true"]}},
        }
    )
    context = op_context(component, inputs={"debug": True}, contexts={"tag": "t"}, globals_={"uuid": "u"})
    assert context["params"]["as_args"] == ["--debug", "--tag=t"]
    assert context["loss"] == 1.5
    assert evaluate_conditions("{{ debug and loss > 1 and globals.uuid == 'u' }}", context) is True


# ------------------------------------------------------------------------------ plain native values


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ d | tojson }}", '{"a": 1}'),
        ("{{ d.a | string | e }}", "1"),
        ("{{ '<b>' | e }}", "&lt;b&gt;"),
        ("{{ [d | tojson, 'x' | e] }}", ['{"a": 1}', "x"]),
        ("{{ {'k': d | tojson} }}", {"k": '{"a": 1}'}),
        ("{{ d.keys() }}", ["a"]),
        ("{{ d.items() }}", [["a", 1]]),
        ("{{ range(3) }}", [0, 1, 2]),
        ("{{ [1, 2] | map('string') }}", ["1", "2"]),
        ("{{ (1, 'x') }}", [1, "x"]),
    ],
)
def test_a_whole_argument_renders_to_plain_data(template: str, expected: object) -> None:
    """Markup (from tojson, e), views, generators and tuples become str, lists: what marshal and JSON can hold."""
    import marshal

    value = render_value(template, {"d": {"a": 1}})
    assert value == expected

    def plain(v: object) -> bool:
        if isinstance(v, list):
            return type(v) is list and all(plain(i) for i in v)
        if isinstance(v, dict):
            return type(v) is dict and all(plain(k) and plain(i) for k, i in v.items())
        return type(v) in (str, int, float, bool, type(None))

    assert plain(value), repr(value)
    assert marshal.loads(marshal.dumps(value)) == expected


def test_other_objects_render_as_their_text() -> None:
    assert render_value("{{ namespace(a=1) }}", {}) == render_str("{{ namespace(a=1) }}", {})
    assert type(render_str("{{ '<' | e }}", {})) is str


# ------------------------------------------------------------------------------------- size limits

DOUBLING = "{% set s = 'x' * 1000000 %}" + "{% set s = s ~ s %}" * 7 + "{{ s | length }}"


@pytest.mark.parametrize(
    ("template", "what"),
    [
        (DOUBLING, "the result of `~`"),
        ("{% set s = 'x' * 1000000 %}{{ s + s }}", "the result of `+`"),
        ("{% set s = ['x'] * 1000000 %}{{ s + s }}", "the result of `+`"),
        ("{{ 'x' | center(1000000000) }}", "the width given to `center`"),
        ("{{ 'x'.ljust(1000000000) }}", "the width given to `ljust`"),
        ("{{ '%0999999999d' % 1 }}", "a width in a format"),
        ("{{ '%*d' % (999999999, 1) }}", "a width given to a format"),
        ("{{ '{:>999999999}'.format(1) }}", "a width in a format"),
        ("{{ ('x' * 1000) | replace('x', 'y' * 100000) }}", "the result of `replace`"),
        ("{{ (['x' * 100000] * 100) | join }}", "the result of `join`"),
        ("{{ ([[0] * 1000000] * 1000) | sum(start=[]) }}", "the result of `sum`"),
        ("{{ 'a\nb' | indent(1000000000) }}", "the result of `indent`"),
        ("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", "the rendered value is at least"),
        ("{{ 'x' * 1000000 ~ 'y' * 100000 }}", "the result of `~`"),
    ],
)
def test_templates_cannot_build_values_over_the_size_limit(template: str, what: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_value(template, {})
    message = info.value.message
    assert what in message
    assert "more than the limit of 1,048,576 characters" in message
    assert "set POLYNB_MAX_RENDERED_CHARS to raise it" in message


def test_a_native_value_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_MAX_RENDERED_CHARS", "10")
    assert render_value("{{ x }}", {"x": "a" * 10}) == "a" * 10
    with pytest.raises(TemplateError, match="the rendered value is at least 11 characters"):
        render_value("{{ x }}", {"x": ["a" * 5, "b" * 5]})
    with pytest.raises(TemplateError, match="the rendered value is at least 11 characters"):
        render_str("x={{ x }}", {"x": "a" * 9})


def test_the_size_limit_can_be_raised_or_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_MAX_RENDERED_CHARS", "3000000")
    assert render_value("{% set s = 'x' * 1000000 %}{{ (s ~ s) | length }}", {}) == "2000000"
    monkeypatch.setenv("POLYNB_MAX_RENDERED_CHARS", "0")
    assert render_value("{{ ('x' * 1000000 ~ 'x' * 1000000 ~ 'x' * 1000000) | length }}", {}) == 3000000
    monkeypatch.setenv("POLYNB_MAX_RENDERED_CHARS", "lots")
    with pytest.raises(TemplateError, match="POLYNB_MAX_RENDERED_CHARS='lots' is not a whole number"):
        render_value("{{ 'a' ~ 'b' }}", {"x": 1})


def test_ordinary_templates_are_unaffected_by_the_caps() -> None:
    context = {"xs": ["a", "b"], "n": 3}
    assert render_value("{{ xs | join(',') }}", context) == "a,b"
    assert render_value("{{ 'a b' | replace('a', 'c') }}", context) == "c b"
    assert render_value("{{ '%5.2f' % 3.14159 }}", context) == " 3.14"
    assert render_value("{{ '{:>3}'.format(n) }}", context) == "  3"
    assert render_value("{{ 'x' | center(5) }}", context) == "  x  "
    assert render_value("{{ xs + ['c'] }}", context) == ["a", "b", "c"]
    assert render_value("{{ n + 1 }}-{{ n % 2 }}", context) == "4-1"
    assert render_value("{{ 'ab' | indent(2, true) }}", context) == "  ab"
    assert render_value("{{ [[1], [2]] | sum(start=[]) }}", context) == [1, 2]
