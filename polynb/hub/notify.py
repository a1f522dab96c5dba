"""The program of the built-in notifier components (``hubRef: slack``, ``discord``, ``teams``, ``mattermost``,
``pagerduty``, ``hipchat``): post a run's status to a chat's incoming webhook.

``python -m polynb.hub.notify --kind=slack [--url=URL] [--connection=NAME] --context=JSON [--retries=N] ...``

Polyaxon's notifiers (its ``vents`` package) send a notification as each service's incoming webhook expects
it; this program builds the same body shapes from the hook's default context (name, uuid, kind, status,
inputs, outputs, duration, wait_time), then posts it with ``polynb.hub.webhook.post`` (retries on 5xx, 429
and connection errors). The URL is ``--url`` or, as Polyaxon keeps it out of the Polyaxonfile, a connection:
the hook's ``connection: NAME`` names the environment variable ``POLYNB_CONNECTION_<NAME>`` (upper case,
anything but letters and digits as ``_``) that holds it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from polynb.hub.webhook import WebhookError, post

PROJECT = "polynb"

# Polyaxon's status colours (``StatusColor``): green for success, red for failure, the rest neutral.
_COLORS = {"succeeded": "#1aaa55", "failed": "#d22e2e", "upstream_failed": "#d22e2e", "stopped": "#e67e22"}
_NEUTRAL = "#2e77aa"


def connection_env(name: str) -> str:
    """The variable holding connection ``name``'s URL: ``my-slack`` -> ``POLYNB_CONNECTION_MY_SLACK``."""
    return "POLYNB_CONNECTION_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def resolve_url(url: str | None, connection: str | None, env: Mapping[str, str]) -> str:
    """``url`` if given, else the connection's URL from the environment; a clear error when neither is there."""
    if url:
        return url
    if connection:
        variable = connection_env(connection)
        found = env.get(variable, "").strip()
        if found:
            return found
        raise WebhookError(f"connection `{connection}`: set {variable} to its webhook URL")
    raise WebhookError("no URL: give the `url` param or the hook a `connection`")


def title(context: Mapping[str, Any]) -> str:
    """``name (uuid) Status: status``, as Polyaxon titles a notification."""
    name, uuid = context.get("name"), context.get("uuid")
    who = f"{name} ({uuid})" if name and uuid else str(name or uuid or "run")
    return f"{who} Status: {context.get('status') or 'unknown'}"


def details(context: Mapping[str, Any]) -> str:
    """The notification's text: one ``Field: `value``` line per known field of the run, Polyaxon's layout."""
    lines = []
    name, uuid = context.get("name"), context.get("uuid")
    if name or uuid:
        lines.append(f"Run: {name} ({uuid})" if name and uuid else f"Run: {name or uuid}")
    for label, key in (("Kind", "kind"), ("Status", "status"), ("Wait time", "wait_time"),
                       ("Duration", "duration"), ("Inputs", "inputs"), ("Outputs", "outputs")):  # fmt: skip
        value = context.get(key)
        if value not in (None, "", {}, []):
            lines.append(f"{label}: `{json.dumps(value) if isinstance(value, dict | list) else value}`")
    return "\n".join(lines)


def color(context: Mapping[str, Any]) -> str:
    return _COLORS.get(str(context.get("status")), _NEUTRAL)


def _slack(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"attachments": [{"fallback": str(context.get("status")), "title": title(context),
                            "text": details(context), "mrkdwn_in": ["text"], "footer": PROJECT,
                            "color": color(context)}]}  # fmt: skip
    if options.get("channel"):
        body["channel"] = options["channel"]
    return body


def _mattermost(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"attachments": [{"title": title(context), "text": details(context),
                            "color": color(context), "author_name": PROJECT}]}  # fmt: skip
    if options.get("channel"):
        body["channel"] = options["channel"]
    return body


def _discord(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    content = f"**{title(context)}**\n{details(context)}"
    # Discord refuses a message over 2,000 characters (Polyaxon raises); cut it, saying so, rather than fail.
    if len(content) > 2000:
        content = content[:1985] + "\n… (truncated)"
    return {"username": PROJECT, "content": content, "tts": False}


def _teams(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    return {"@type": "MessageCard", "@context": "http://schema.org/extensions", "summary": title(context),
            "themeColor": color(context).lstrip("#"), "title": title(context),
            "sections": [{"activityTitle": PROJECT, "text": details(context), "markdown": True}]}  # fmt: skip


def _pagerduty(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"event_type": "trigger", "description": title(context), "details": details(context),
                            "incident_key": str(context.get("uuid") or ""), "client": PROJECT}  # fmt: skip
    if options.get("service_key"):
        body["service_key"] = options["service_key"]
    return body


def _hipchat(context: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    status = str(context.get("status"))
    hip_color = "green" if status == "succeeded" else "red" if status in ("failed", "upstream_failed") else "gray"
    return {"message": details(context), "message_format": "text", "color": hip_color, "from": PROJECT,
            "notify": False}  # fmt: skip


FORMATS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    "slack": _slack,
    "mattermost": _mattermost,
    "discord": _discord,
    "teams": _teams,
    "pagerduty": _pagerduty,
    "hipchat": _hipchat,
}


def body(kind: str, context: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body ``kind``'s incoming webhook expects for the run described by ``context``."""
    try:
        fmt = FORMATS[kind]
    except KeyError:
        raise WebhookError(f"unknown notifier `{kind}`; known: {', '.join(FORMATS)}") from None
    return fmt(context, options or {})


def _json_arg(text: str, what: str) -> Any:
    if text in ("", "None", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WebhookError(f"{what} is not JSON: {exc}") from None


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynb.hub.notify", description="Notify a chat of a run.")
    parser.add_argument("--kind", required=True, choices=sorted(FORMATS))
    parser.add_argument("--url", default="")
    parser.add_argument("--connection", default="")
    parser.add_argument("--context", default="null", help="JSON of the run's context (the hook's defaults)")
    parser.add_argument("--options", default="null", help="JSON: channel (slack, mattermost), service_key")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--backoff", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        url = resolve_url(args.url or None, args.connection or None, os.environ if env is None else env)
        context = _json_arg(args.context, "--context") or {}
        options = _json_arg(args.options, "--options") or {}
        post(url, body(args.kind, context, options), retries=args.retries, timeout=args.timeout,
             backoff=args.backoff)  # fmt: skip
    except WebhookError as exc:
        print(f"notify: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
