"""``polynb port-forward RUN`` and ``polynb open RUN``: reach a service run on Kubernetes from this machine.

A service on Kubernetes is a pod and a ClusterIP Service, reachable inside the cluster only. ``polynb run``
forwards a local port to it while the command runs; these commands hold such a tunnel for as long as the
user wants, from any terminal: a local port (fixed for the command's life, ``--port`` to choose it) whose
every connection opens a port-forward through the API server (``pods/portforward`` over WebSocket, with
the kubeconfig's credentials) to the run's pod *at that moment*. They end on Ctrl-C, or when the run ends.

The run is found in the store by uuid prefix or name; its record (namespace, ports) says where it lives.
The cluster comes from ``KUBECONFIG`` / ``POLYNB_K8S_CONTEXT`` as for ``polynb run --executor kubernetes``.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

from polynb.cli.common import EXIT_FAILED, EXIT_OK, error

if TYPE_CHECKING:
    from polynb.store import RunRecord

POLL = 1.0
"""Seconds between two looks at the run's status while the tunnel is held (it ends with the run)."""


def register(subparsers: Any) -> None:
    """Add ``port-forward`` and ``open`` to the ``polynb`` argument parser."""
    for name, helptext in (
        ("port-forward", "hold a local port that reaches a service run on Kubernetes (until Ctrl-C)"),
        ("open", "open a service run (TensorBoard) in the browser, through a tunnel held until Ctrl-C"),
    ):
        p = subparsers.add_parser(name, help=helptext)
        p.add_argument("run", metavar="RUN", help="the service run: a uuid prefix or a name")
        p.add_argument("--port", type=int, default=0, help="the local port (default: any free one)")
        p.add_argument("--address", default="127.0.0.1", help="the local address to listen on (default: loopback)")
        if name == "open":
            p.add_argument("--no-browser", action="store_true", help="print the URL, do not start a browser")
        p.set_defaults(func=cmd_forward, opening=name == "open")


def _find(query: str) -> RunRecord | None:
    """The run ``query`` means (``resolve_run``); by name, a running service of that name comes first
    (every ``polynb run`` of a file reuses the names, and only the running one can be opened)."""
    from polynb.store import AmbiguousRunError, RunNotFoundError, Store, db_path, resolve_run

    if not db_path().exists():
        error(f"no run matches {query!r}: no runs yet")
        return None
    with Store() as store:
        try:
            record = resolve_run(store, query)
        except (RunNotFoundError, AmbiguousRunError) as exc:
            error(str(exc))
            return None
        if record.name == query.strip() and record.status.value != "running":
            live = [r for r in store.list_runs() if r.name == record.name and r.status.value == "running"]
            record = max(live, key=lambda r: r.created_at) if live else record
        return record


def _status_of(uuid: str) -> str:
    from polynb.store import Store

    with Store() as store:
        return store.get_run(uuid).status.value


def _problem(record: RunRecord) -> str | None:
    """Why ``record`` cannot be forwarded to, or None."""
    what = f"run {record.name} ({record.uuid[:12]})"
    if record.kind != "service":
        return f"{what} is a {record.kind}, not a service: it serves nothing to open"
    if record.executor != "kubernetes":
        where = f" at {record.url}" if record.url else ""
        return f"{what} runs on the {record.executor or 'local'} executor{where}: no tunnel is needed"
    if record.status.value != "running":
        return f"{what} is {record.status.value}, not running: nothing serves it"
    handle = record.handle or {}
    if not handle.get("ports"):
        return f"{what} has no ports recorded: nothing to forward to"
    return None


def cmd_forward(args: argparse.Namespace) -> int:
    record = _find(args.run)
    if record is None:
        return EXIT_FAILED
    problem = _problem(record)
    if problem is not None:
        if args.opening and record.kind == "service" and record.executor != "kubernetes" and record.url:
            return _open_direct(record.url, args)
        error(problem)
        return EXIT_FAILED
    try:
        forward = _forward(record, port=args.port, host=args.address)
    except Exception as exc:  # a missing kubeconfig, a taken port: say which
        error(f"cannot forward to run {record.name}: {exc}")
        return EXIT_FAILED
    url = forward.url
    remote = int((record.handle or {})["ports"][0])
    print(f"{url}  ->  run {record.name} ({record.uuid[:12]}), port {remote} of its pod", flush=True)
    print("holding the tunnel; Ctrl-C to close it", file=sys.stderr, flush=True)
    if args.opening and not args.no_browser:
        _browse(url)
    done = threading.Event()
    try:
        while not done.wait(POLL):
            status = _status_of(record.uuid)
            if status != "running":
                print(f"run {record.name} is {status}: tunnel closed", file=sys.stderr, flush=True)
                break
    except KeyboardInterrupt:
        print("tunnel closed", file=sys.stderr, flush=True)
    finally:
        forward.close()
    return EXIT_OK


def _open_direct(url: str, args: argparse.Namespace) -> int:
    print(url, flush=True)
    if not args.no_browser:
        _browse(url)
    return EXIT_OK


def _browse(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        print(f"no browser here: open {url} yourself", file=sys.stderr, flush=True)


def _forward(record: RunRecord, *, port: int, host: str) -> Any:
    """A :class:`~polynb.executors.kubernetes.portforward.PortForward` to the run's first port."""
    from polynb.executors.kubernetes import names
    from polynb.executors.kubernetes.client import Api, K8sError, path
    from polynb.executors.kubernetes.config import load
    from polynb.executors.kubernetes.portforward import PortForward, official_connect
    from polynb.executors.kubernetes.settings import KubernetesSettings

    handle = record.handle or {}
    settings = KubernetesSettings.from_env()
    namespace = str(handle.get("namespace") or settings.namespace or "")
    cluster = load(context=settings.context, namespace=namespace or None)
    namespace = namespace or cluster.namespace
    api = Api.from_configuration(cluster.configuration)
    selector = names.selector({names.RUN: names.label_value(record.uuid)})

    def serving_pod() -> str:
        """The run's running pod now (a retried service has a new one)."""
        try:
            pods = api.request("GET", path("pods", namespace), query={"labelSelector": selector})
        except K8sError as exc:
            raise LookupError(f"cannot list the pods of run {record.uuid}: {exc}") from exc
        running = [p for p in pods.get("items") or () if (p.get("status") or {}).get("phase") == "Running"]
        if not running:
            raise LookupError(f"run {record.name} has no running pod in namespace {namespace}")
        newest = max(running, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return str(newest["metadata"]["name"])

    remote = int(handle["ports"][0])
    return PortForward(official_connect(cluster.configuration, namespace, serving_pod, remote), host=host, port=port)
