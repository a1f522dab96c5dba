"""Pod port-forward over WebSocket (``v4.channel.k8s.io``) — placeholder until implemented."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ApiError

if TYPE_CHECKING:
    from . import Emulator
    from .server import Handler


def serve_portforward(emu: Emulator, handler: Handler, namespace: str, pod: str, query: dict[str, str]) -> None:
    raise ApiError(400, "BadRequest", "port-forward is not supported by the emulator")
