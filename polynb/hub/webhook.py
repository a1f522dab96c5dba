"""The program of the built-in ``webhook`` component: POST one JSON message, retrying transient failures.

``python -m polynb.hub.webhook --url=URL [--payload=JSON] [--context=JSON] [--retries=N] [--timeout=S]``

The message is ``{"run": <context>, "payload": <payload>}``. Server errors (5xx), 429 and connection errors are
retried with exponential backoff; any other answer (4xx) fails at once, since repeating it cannot help. The
exit status is 0 on success and 1 on failure, with the reason on stderr. Standard library only, no shell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

USER_AGENT = "polynb-webhook/1"


class WebhookError(Exception):
    """The message could not be delivered; the text says why."""


def _parse_json(text: str, what: str) -> Any:
    if text in ("", "None"):
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WebhookError(f"{what} is not JSON: {exc}") from None


def post(
    url: str,
    message: Any,
    *,
    retries: int = 3,
    timeout: float = 10.0,
    backoff: float = 1.0,
    log: Callable[[str], None] = print,
) -> int:
    """POST ``message`` as JSON; return the HTTP status of the accepted answer or raise ``WebhookError``."""
    if not url.startswith(("http://", "https://")):
        raise WebhookError(f"url must start with http:// or https://, got {url!r}")
    body = json.dumps(message, default=str).encode("utf-8")
    attempts = max(0, retries) + 1
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": USER_AGENT}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                status = int(answer.status)
            log(f"webhook: POST {url} -> {status}")
            return status
        except urllib.error.HTTPError as exc:
            detail = _snippet(exc)
            reason = f"{exc.code} {exc.reason}{detail}"
            if exc.code < 500 and exc.code != 429:
                raise WebhookError(f"POST {url} was refused: {reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt == attempts:
            raise WebhookError(f"POST {url} failed after {attempts} attempt(s): {reason}")
        delay = backoff * 2 ** (attempt - 1)
        log(f"webhook: POST {url} -> {reason}; retrying in {delay:g}s ({attempt}/{attempts - 1})")
        time.sleep(delay)
    raise AssertionError("unreachable")


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(300).decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f": {text}" if text else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynb.hub.webhook", description="POST a JSON message.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--payload", default="null", help="JSON sent as `payload`")
    parser.add_argument("--context", default="null", help="JSON of the run's context, sent as `run`")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--backoff", type=float, default=1.0, help="first delay between attempts (doubles)")
    args = parser.parse_args(argv)
    try:
        message = {
            "run": _parse_json(args.context, "--context"),
            "payload": _parse_json(args.payload, "--payload"),
        }
        post(args.url, message, retries=args.retries, timeout=args.timeout, backoff=args.backoff)
    except WebhookError as exc:
        print(f"webhook: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
