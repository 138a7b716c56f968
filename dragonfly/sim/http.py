"""Plain-HTTP helpers for the REST endpoints served beside the WebSocket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from multidict import CIMultiDict
from picows import WSUpgradeResponse, WSUpgradeResponseWithListener

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class HttpReply:
    """A complete HTTP response: status, body and content type."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(obj: object, status: int = 200, *, compact: bool = True) -> HttpReply:
    """Encode ``obj`` as a JSON reply; ``compact`` drops the spaces after , and :."""
    separators = (",", ":") if compact else (", ", ": ")
    return HttpReply(status, json.dumps(obj, separators=separators).encode())


NOT_FOUND = HttpReply(404, b"Not Found", "text/plain; charset=utf-8")


def split_target(target: bytes) -> tuple[str, dict[str, str]]:
    """Split a request target into its decoded path and query (last value wins)."""
    parts = urlsplit(target.decode("latin-1"))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return unquote(parts.path), query


def is_upgrade(headers: CIMultiDict[str]) -> bool:
    """Return True if the request asks for a WebSocket upgrade."""
    return "websocket" in headers.get("Upgrade", "").lower()


def phrase(status: int) -> str:
    """Return the reason phrase of ``status`` (``Too Many Requests``)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_reply(reply: HttpReply, *, head_only: bool = False) -> bytes:
    """Return ``reply`` as HTTP/1.1 bytes; the connection closes after it."""
    lines = [f"HTTP/1.1 {reply.status} {phrase(reply.status)}",
             f"Content-Type: {reply.content_type}", f"Content-Length: {len(reply.body)}",
             "Connection: close", *(f"{name}: {value}" for name, value in reply.headers)]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + reply.body


def to_picows(reply: HttpReply) -> WSUpgradeResponseWithListener:
    """Wrap ``reply`` so picows sends it and closes the connection."""
    headers = {"Content-Type": reply.content_type, **dict(reply.headers)}
    response: WSUpgradeResponse
    if reply.status == 200:
        response = WSUpgradeResponse.create_ok_response(reply.body, headers)
    else:
        response = WSUpgradeResponse.create_error_response(reply.status, reply.body, headers)
    return WSUpgradeResponseWithListener(response, None)
