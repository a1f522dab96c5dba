"""IPython magics: ``%%polyaxon_component``, ``%%polyaxon_dag``, ``%%polyaxon_python`` and ``%polyaxon``.

Bad input is a ``UsageError`` (see :func:`cell_error`: IPython shows it without a traceback) naming the
cell's own line and column, and nothing is registered or submitted. A DAG cell returns a
:class:`~polynb.notebook.handle.RunHandle`, displayed as the live run widget, at once: the DAG runs in the
background on the kernel's scheduler (``session``). Cell bodies are never variable-expanded; neither is
the magic's line (``@no_var_expand``), so ``{{ }}`` and ``$`` reach the YAML untouched.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Bool, Dict, Enum, Float, TraitError, Unicode, default, observe, validate
from traitlets.config import Configurable

from polynb.executors.registry import EXECUTOR_ENV, KNOWN, ExecutorSetupError, default_name
from polynb.lifecycle import DONE_EVENT, PIPELINE_KINDS, status_of_event
from polynb.notebook import cellspec, pystep
from polynb.notebook.handle import RunHandle, tree_runs
from polynb.notebook.ipy import argument, magic_arguments, parse_argstring
from polynb.notebook.render import GraphNode, graph_svg, graph_text
from polynb.notebook.session import KernelSession, get_session
from polynb.notebook.watching import WatchHandle
from polynb.spec.errors import SpecError, SpecErrors

if TYPE_CHECKING:
    from polynb.compiler.pipeline import PipelineOp


def cell_error(errors: Sequence[SpecError], *, what: str) -> UsageError:
    """A cell's problems, each at ``<cell magic NAME>:line:column``, as a ``UsageError`` (IPython shows
    exactly that class without a traceback, not its subclasses); ``.errors`` keeps them for callers."""
    lines = [str(e) for e in errors]
    error = UsageError(f"{what}: not accepted ({len(lines)} problem{'s' * (len(lines) != 1)})\n" + "\n".join(lines))
    error.errors = list(errors)  # type: ignore[attr-defined]  # an attribute of this instance only
    return error


class GraphView:
    """A DAG that did not run (``--dry-run``): SVG for browsers, stable text for terminals and nbval."""

    def __init__(self, name: str, nodes: list[GraphNode], edges: list[Any]) -> None:
        self.name, self.nodes, self.edges = name, nodes, edges

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        text = self.__repr__()
        return {"text/plain": text, "text/html": graph_svg(self.nodes, self.edges)}

    def __repr__(self) -> str:
        head = f"DAG {self.name}: {len(self.nodes)} ops (dry run, nothing submitted)"
        return head + "\n" + graph_text(self.nodes, self.edges)


@magics_class
class PolynbMagics(Magics, Configurable):
    """polynb's magics; ``%config PolynbMagics.<option>`` (or ``ipython_kernel_config.py``) sets the options."""

    max_rate = Float(10.0, config=True, help="widget messages per second per widget, at most")
    keep_runs_on_exit = Bool(False, config=True, help="leave local ops running when the kernel exits")
    stop_grace = Float(3.0, config=True, help="seconds a stopped local op gets before it is killed")
    proxy = Enum(["auto", "always", "never"], "auto", config=True, help="links through jupyter-server-proxy")
    base_url = Unicode(None, allow_none=True, config=True, help="the Jupyter server's base URL (default: guessed)")
    auto_open = Bool(True, config=True, help="open TensorBoard in a Lab tab when it starts (lab extension)")
    default_executor = Unicode(config=True, help=f"executor of runs naming none (default: ${EXECUTOR_ENV}, else local)")
    kubernetes = Dict(
        config=True,
        help="Kubernetes settings over $POLYNB_HOME/config.yaml and POLYNB_K8S_* (e.g. {'artifacts_claim': 'shared',"
        " 'security_profile': 'restricted', 'keep_finished': True}); used by the next Kubernetes run",
    )

    @default("default_executor")
    def _default_executor(self) -> str:
        # The same default as `polynb run`: a kernel started with POLYNB_EXECUTOR=kubernetes runs there.
        return default_name()

    @validate("max_rate")
    def _valid_rate(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value > 0:  # NaN too
            raise TraitError(f"PolynbMagics.max_rate must be a positive number of messages a second, not {value}")
        return value

    @validate("stop_grace")
    def _valid_grace(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value >= 0:
            raise TraitError(f"PolynbMagics.stop_grace must be 0 or more seconds, not {value}")
        return value

    def __init__(self, shell: Any, session: KernelSession | None = None) -> None:
        self.session = session or get_session()  # first: loading the shell's config sets options
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)  # adds it to the shell's configurables: `%config PolynbMagics`
        self._apply_config()

    @observe(
        "max_rate",
        "keep_runs_on_exit",
        "stop_grace",
        "proxy",
        "base_url",
        "auto_open",
        "default_executor",
        "kubernetes",
    )
    def _option_changed(self, _change: Any) -> None:
        # Not `_config_changed`: that is Configurable's observer of `config`, which loads the options from the
        # shell's config (ipython_kernel_config.py, earlier %config lines) when the magics are made.
        self._apply_config()

    def _apply_config(self) -> None:
        config = self.session.config
        config.max_rate = float(self.max_rate)
        self.session.set_max_rate(config.max_rate)  # the UI thread may run already
        config.keep_runs_on_exit = bool(self.keep_runs_on_exit)
        config.stop_grace = float(self.stop_grace)
        config.proxy = "always" if self.proxy == "always" else "never" if self.proxy == "never" else "auto"
        config.base_url = self.base_url
        config.auto_open = bool(self.auto_open)
        config.default_executor = str(self.default_executor)
        config.kubernetes = {str(k): v for k, v in dict(self.kubernetes).items()}

    # -- %%polyaxon_component -----------------------------------------------------------------------

    @no_var_expand
    @magic_arguments()
    @argument("name", help="the component's name: `hubRef: NAME` resolves to it")
    @argument("--save", metavar="PATH", help="also write the YAML to this file")
    @cell_magic
    def polyaxon_component(self, line: str, cell: str) -> None:
        """Define a component from the YAML body and register it in this kernel (``hubRef: NAME``)."""
        args = parse_argstring(PolynbMagics.polyaxon_component, line)
        loaded = self._load("polyaxon_component", args.name, cell)
        from polynb.spec.models import Component

        if not isinstance(loaded.spec, Component):
            self._fail("polyaxon_component", args.name, [_root_error(loaded, "the cell defines an operation; a "
                       "component cell needs `kind: component` (or no `kind`) and a `run`")])  # fmt: skip
        if loaded.spec.run is None:
            self._fail("polyaxon_component", args.name, [_root_error(loaded, "a component needs a `run`")])
        # Named as the cell names it, unless it names itself: runs of it are then called so (not `main`).
        spec = loaded.spec if loaded.spec.name else loaded.spec.model_copy(update={"name": args.name})
        self.session.registry.register(args.name, spec)
        self._clear_diagnostics("polyaxon_component")
        if args.save:
            _save(Path(args.save), cell)
        inputs = ", ".join(f"{io.name}:{io.type}" for io in loaded.spec.inputs or ())
        kind = getattr(loaded.spec.run, "kind", "?")
        print(f"component {args.name} registered ({kind}" + (f"; inputs {inputs}" if inputs else "") + ")")

    # -- %%polyaxon_dag -----------------------------------------------------------------------------

    @no_var_expand
    @magic_arguments()
    @argument("name", help="the DAG's name (a whole component's own `name` wins)")
    @argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE", help="set an input (repeatable)")
    @argument("--executor", default=None, help="where the ops run: local (default) or kubernetes")
    @argument("--dry-run", action="store_true", help="validate and show the graph; submit nothing")
    @argument("--save", metavar="PATH", help="also write the YAML to this file")
    @cell_magic
    def polyaxon_dag(self, line: str, cell: str) -> RunHandle | GraphView | None:
        """Validate a DAG (a whole component, or just `operations:` …), show it and run it in the background."""
        args = parse_argstring(PolynbMagics.polyaxon_dag, line)
        params = _params(args.param)
        loaded = self._load("polyaxon_dag", args.name, cell, dag_body=True)
        try:
            pipeline = cellspec.build_cell_pipeline(
                loaded, params=params, registry=self.session.registry, base_dir=Path.cwd()
            )
        except SpecErrors as exc:
            self._fail("polyaxon_dag", args.name, exc.errors)
        if pipeline.kind != "dag":
            self._fail("polyaxon_dag", args.name, [_root_error(loaded, "this is not a DAG (`run.kind: dag` or "
                       "`operations:`); run a single component with `polynb.run(...)`")])  # fmt: skip
        self._clear_diagnostics("polyaxon_dag")
        if args.save:
            _save(Path(args.save), _yaml_of(loaded, cell))
        if args.dry_run:
            from polynb.notebook.model import EdgeView

            nodes = [GraphNode(n, _preview_kind(op)) for n, op in pipeline.ops.items()]
            edges = [
                EdgeView(e.src, e.dst, "event" if "event" in e.kinds else "dependency" if "dependency" in e.kinds
                         else "param", " | ".join(sorted(status_of_event(k) for k in e.event_kinds)))
                for e in pipeline.graph.edges
            ]  # fmt: skip
            return GraphView(pipeline.name, nodes, edges)
        executor = self._executor(args.executor)
        return self.session.submit(pipeline, executor=executor)

    # -- %%polyaxon_python --------------------------------------------------------------------------

    @no_var_expand
    @magic_arguments()
    @argument("name", help="the component's name")
    @argument("--input", action="append", default=[], metavar="NAME:TYPE[=DEFAULT]", help="an input (variable)")
    @argument("--output", action="append", default=[], metavar="NAME:TYPE", help="an output (variable)")
    @cell_magic
    def polyaxon_python(self, line: str, cell: str) -> None:
        """The cell's Python becomes a job component NAME: inputs arrive as variables, outputs are logged
        from the variables of the same names. The cell does not run here; it runs as a pipeline step."""
        args = parse_argstring(PolynbMagics.polyaxon_python, line)
        filename = cellspec.cell_filename("polyaxon_python", args.name)
        try:
            inputs = [pystep.parse_decl(t, what="input") for t in args.input]
            outputs = [pystep.parse_decl(t, what="output") for t in args.output]
        except pystep.StepSpecError as exc:
            raise UsageError(str(exc)) from None
        try:
            compile(cell, filename, "exec")
        except SyntaxError as exc:
            line_no = (exc.lineno or 0) + cellspec.BODY_OFFSET if exc.lineno else 0
            self._fail("polyaxon_python", args.name, [SpecError(filename, line_no, exc.offset or 0, "", exc.msg)])
        script = pystep.save_script(args.name, cell)
        try:
            component = pystep.step_component(args.name, script, inputs, outputs)
        except (pystep.StepSpecError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        self.session.registry.register(args.name, component)
        self._clear_diagnostics("polyaxon_python")
        ins = ", ".join(f"{d.name}:{d.type}" for d in inputs) or "none"
        outs = ", ".join(f"{d.name}:{d.type}" for d in outputs) or "none"
        print(f"component {args.name} registered (python step; inputs {ins}; outputs {outs})")

    # -- %polyaxon ----------------------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def polyaxon(self, line: str) -> Any:
        """``%polyaxon run|ls|status|stop|logs|wait|events|tensorboard …`` — ``%polyaxon -h`` for help."""
        parser = _command_parser()
        try:
            args = parser.parse_args(shlex.split(line))
        except _HelpShown:
            return None
        if args.command is None:
            parser.print_help()
            return None
        command = getattr(self, f"_cmd_{args.command}")
        return command(args)

    def _cmd_run(self, args: argparse.Namespace) -> RunHandle:
        from polynb.compiler.pipeline import build_pipeline
        from polynb.spec.load import load

        path = Path(args.file)
        try:
            spec = load(path)
            pipeline = build_pipeline(spec, params=_params(args.param), registry=self.session.registry,
                                      base_dir=path.resolve().parent, source=str(path))  # fmt: skip
        except SpecErrors as exc:
            raise UsageError(f"{path}: not run\n{exc}") from None
        return self.session.submit(pipeline, executor=self._executor(args.executor))

    def _cmd_ls(self, args: argparse.Namespace) -> None:
        runs = self.session.store.list_runs(top_level_only=True, limit=args.limit)
        if not runs:
            print("no runs yet")
            return
        rows = [("NAME", "KIND", "STATUS", "UUID", "CREATED")]
        rows += [
            (r.name, r.kind, r.status.value, r.uuid[:12], r.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"))
            for r in runs
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    def _cmd_status(self, args: argparse.Namespace) -> RunHandle:
        return self.session.handle(self._root(args.run))

    def _cmd_stop(self, args: argparse.Namespace) -> None:
        from polynb.store import root_of

        record = self._record(args.run)
        how = self.session.stop(record.uuid)
        store = self.session.store
        if how == "direct":  # done: no engine runs it (a service a terminal's `polynb run` left running)
            status = store.get_run(record.uuid).status.value
            print(f"{record.name}: {status}, stopped directly (no engine was running it)")
        elif how == "pending":
            root = root_of(store, record)
            print(f"{record.name}: its processes are stopped; no engine runs {root.name}, so its end is recorded and"
                  f" its hooks run when one goes on with it (`polynb attach {root.uuid[:12]}`)")  # fmt: skip
        else:
            print(f"{record.name}: " + ("already final" if how == "final" else "stopping"))

    def _cmd_logs(self, args: argparse.Namespace) -> None:
        record = self._record(args.run)
        store = self.session.store
        if record.kind in PIPELINE_KINDS:  # every run with logs under it, named as `polynb logs` names them
            targets = [(label, r) for label, r in tree_runs(store, record.uuid) if r.kind not in PIPELINE_KINDS]
        else:
            targets = [(record.name, record)]
        for label, target in targets:
            lines, _title = self.session.logs(target.uuid, tail=args.tail)
            if record.kind in PIPELINE_KINDS:
                print(f"── {label} ({target.status.value})")
            for text in lines:
                print(text)

    def _cmd_wait(self, args: argparse.Namespace) -> None:
        uuid = self._root(args.run)
        handle = self.session.handle(uuid)
        try:
            handle.wait(timeout=args.timeout, include_services=args.services)
        except TimeoutError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            print(f"stopped waiting; {handle.name} keeps running")
            return
        print(handle.text())

    def _cmd_events(self, args: argparse.Namespace) -> None:
        handle = self.session.handle(self._root(args.run))
        events = handle.events
        if not events:
            return
        origin = events[0].at
        store = self.session.store
        names = {r.uuid: label for label, r in tree_runs(store, handle.uuid)} | {handle.uuid: handle.name}
        names |= {op.uuid: op.name for op in handle.ops.values()}  # a single run's hooks
        for event in events:
            if event.kind == DONE_EVENT:
                continue
            offset = (event.at - origin).total_seconds()
            why = " — ".join(p for p in (event.reason, event.message) if p)
            if event.status is None and event.kind != DONE_EVENT:
                why = json.dumps(event.payload, sort_keys=True)  # artifacts, metrics, alerts, approvals
            name = names.get(event.run_uuid, event.run_uuid[:12])
            why = " ⏎ ".join(line.strip() for line in why.splitlines() if line.strip())  # a row per event
            print(f"+{offset:7.2f}s  {name:<20} {event.status or event.kind:<16} {why}".rstrip())

    def _cmd_watch(self, args: argparse.Namespace) -> WatchHandle:
        from polynb.config_file import load_config
        from polynb.scheduler.reactive import ReactiveError, load_reactive
        from polynb.spec.load import load

        path = Path(args.file)
        try:
            reactive = load_reactive(path, load(path), load_config().connections, _params(args.param))
        except (SpecErrors, ReactiveError) as exc:
            raise UsageError(f"{path}: not watched\n{exc}") from None
        return self.session.watch(reactive, name=args.name, max_runs=args.max_runs, concurrency=args.concurrency,
                                  catch_up=args.catch_up, executor=self._executor(args.executor))  # fmt: skip

    def _cmd_approve(self, args: argparse.Namespace) -> None:
        record = self._record(args.run)
        self.session.approve(record.uuid, approved=not args.invalidate)
        print(f"{record.name}: {'invalidated' if args.invalidate else 'approved'}")

    def _cmd_emit(self, args: argparse.Namespace) -> None:
        payload: dict[str, Any] = {}
        for item in args.values:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise UsageError(f"{item}: payload entries are KEY=VALUE")
            try:
                payload[key] = json.loads(raw)
            except ValueError:
                payload[key] = raw
        kind = "org_custom_event" if args.org else "project_custom_event"
        seqs = self.session.emit(kind, {**payload, "name": args.name})
        print(f"{kind} {args.name!r}: " + (f"recorded on {len(seqs)} running DAG(s)" if seqs else "no DAG is running"))

    def _cmd_tensorboard(self, args: argparse.Namespace) -> RunHandle:
        from polynb.compiler.pipeline import build_pipeline
        from polynb.spec.models import Operation

        uuids = [self._record(ref).uuid for ref in args.runs]
        spec = Operation.model_validate(
            {"version": 1.1, "kind": "operation", "name": args.name or "tensorboard", "hubRef": "tensorboard",
             "params": {"uuids": {"value": uuids}}, "termination": {"timeout": args.timeout}}
        )  # fmt: skip
        pipeline = build_pipeline(spec, registry=self.session.registry, base_dir=Path.cwd())
        return self.session.submit(pipeline)

    # -- helpers ------------------------------------------------------------------------------------

    def _load(self, magic: str, name: str, cell: str, *, dag_body: bool = False) -> cellspec.CellSpec:
        try:
            # A DAG cell's graph is checked even with schema errors (every problem at once): it is built next.
            return cellspec.load_cell(cell, magic=magic, name=name, dag_body=dag_body, salvage_ok=dag_body)
        except SpecErrors as exc:
            self._fail(magic, name, exc.errors)

    def _fail(self, magic: str, name: str, errors: Sequence[SpecError]) -> NoReturn:
        filename = cellspec.cell_filename(magic, name)
        self.session.bridge.diagnostics(self._cell_id(), magic, cellspec.diagnostics(errors, filename))
        raise cell_error(errors, what=f"%%{magic} {name}")

    def _clear_diagnostics(self, magic: str) -> None:
        cell_id = self._cell_id()
        if cell_id and self.session.bridge.connected:
            self.session.bridge.diagnostics(cell_id, magic, [])

    def _cell_id(self) -> str | None:
        kernel = getattr(self.shell, "kernel", None)
        get_parent = getattr(kernel, "get_parent", None)
        parent = get_parent() if callable(get_parent) else None
        metadata = (parent or {}).get("metadata") or {}
        cell_id = metadata.get("cellId")
        return str(cell_id) if cell_id else None

    def _executor(self, name: str | None) -> str:
        name = name or self.session.config.default_executor
        if name in self.session.executor_names():
            return name
        if name not in KNOWN:
            available = sorted({*self.session.executor_names(), *KNOWN})
            raise UsageError(f"unknown executor {name!r}; available: {', '.join(available)}")
        try:
            self.session.add_executor(name)
        except ExecutorSetupError as exc:  # configuration problems: no kubeconfig, bad context, ...
            raise UsageError(f"the {name} executor cannot start: {exc.reason}") from None
        return name

    def _record(self, ref: str | None) -> Any:
        from polynb.store import StoreError, resolve_run

        if ref is None:
            last = self.session.last_run
            if last is None:
                raise UsageError("no run in this kernel yet: name one (uuid, uuid prefix or name)")
            return self.session.store.get_run(last)
        store = self.session.store
        try:
            record = resolve_run(store, ref)
        except (StoreError, LookupError) as exc:
            raise UsageError(str(exc)) from None
        if record.name == ref.strip():
            # A name: the latest run of it in this kernel (a top-level run first, then an op or a hook of one), not
            # one another kernel or a terminal on the same store ran since.
            return self._mine_named(record.name) or record
        return record

    def _mine_named(self, name: str) -> Any:
        store = self.session.store
        mine = [store.get_run(uuid) for uuid in reversed(self.session.known_runs)]  # newest first
        for root in mine:
            if root.name == name:
                return root
        for root in mine:
            below = [r for _label, r in tree_runs(store, root.uuid)] if root.kind in PIPELINE_KINDS else []
            named = [r for r in [*below, *store.hooks_of(root.uuid)] if r.name == name]
            if named:
                return max(named, key=lambda r: r.created_at)
        return None

    def _root(self, ref: str | None) -> str:
        from polynb.store import root_of

        return str(root_of(self.session.store, self._record(ref)).uuid)


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%polyaxon: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message)
        raise _HelpShown


def _command_parser() -> _Parser:
    parser = _Parser(prog="%polyaxon", description="what the polynb CLI does, from the notebook")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("run", help="run a Polyaxonfile in this kernel (shows the run widget)")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--executor", default=None)
    p = sub.add_parser("ls", help="list the latest top-level runs")
    p.add_argument("-n", "--limit", type=int, default=20)
    for name, text in (("status", "show a run's widget, redrawn from the store"), ("wait", "wait for a run")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", nargs="?", help="uuid, uuid prefix or name, this kernel's runs first (default: its "
                       "last run)")  # fmt: skip
        if name == "wait":
            p.add_argument("--timeout", type=float, default=None)
            p.add_argument("--services", action="store_true", help="also wait for services (TensorBoard)")
    p = sub.add_parser("stop", help="stop a run (an op, a service or a DAG)")
    p.add_argument("run")
    p = sub.add_parser("logs", help="print a run's logs (every op of a DAG)")
    p.add_argument("run", nargs="?")
    p.add_argument("--tail", type=int, default=None)
    p = sub.add_parser("events", help="print a run's event log")
    p.add_argument("run", nargs="?")
    p = sub.add_parser("watch", help="run a pipeline once per event of the connections its `events` name")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--name", default=None)
    p.add_argument("--max-runs", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--catch-up", action="store_true")
    p.add_argument("--executor", default=None)
    p = sub.add_parser("approve", help="approve a run waiting for it (isApproved: false); a DAG: all its waiting ops")
    p.add_argument("run")
    p.add_argument("--invalidate", action="store_true", help="invalidate instead: the waiting op is skipped")
    p = sub.add_parser("emit", help="send a custom event to the running DAGs (ops awaiting `ref: dag`)")
    p.add_argument("name")
    p.add_argument("values", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--org", action="store_true")
    p = sub.add_parser("tensorboard", help="start a TensorBoard over runs (opens like an auto-opened one)")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--name", default=None)
    p.add_argument("--timeout", type=float, default=7200.0)
    return parser


def _params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-P {item}: expected NAME=VALUE")
        params[name.strip()] = value
    return params


def _root_error(loaded: cellspec.CellSpec, message: str) -> SpecError:
    return SpecError(loaded.document.filename, 0, 0, "", message)


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def _yaml_of(loaded: cellspec.CellSpec, cell: str) -> str:
    """What ``--save`` writes: the cell as written, or the wrapped component for a DAG-only body."""
    if not loaded.wrapped:
        return cell
    import yaml

    return yaml.safe_dump(loaded.data, sort_keys=False)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext polynb``: register the magics and the comm target; re-attach to runs still alive."""
    session = get_session()
    magics = PolynbMagics(ip, session=session)
    ip.register_magics(magics)
    session.bridge.register_target()
    session.start_if_unfinished()


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext polynb``: remove the magics (runs keep going; the session ends with the kernel)."""
    manager = ip.magics_manager
    for kind, names in PolynbMagics.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop("PolynbMagics", None)
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, PolynbMagics)]
    get_session().bridge.unregister_target()


def _preview_kind(op: PipelineOp) -> str:
    """An op's run kind as its run will record it (``matrix``/``schedule`` for an op that sweeps or ticks)."""
    if op.operation.schedule is not None:
        return "schedule"
    if op.operation.matrix is not None:
        return "matrix"
    return str(getattr(op.component.run, "kind", "job"))
