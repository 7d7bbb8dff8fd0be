"""Vendor glitches: turn a good 200 GET reply into the broken reply a real vendor sometimes sends.

The names, what they do and how they are scheduled are documented in `faults.py`. This module only
rewrites a `Response`; the server (`http.py`) decides whether a glitch strikes and sends the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sandbox.faults import FaultPlan
from sandbox.messages import Request, Response

MIB = 1024 * 1024
_CHUNK = 64 * 1024
_MARKER = "__sandbox_glitch_marker__"
# What replaces the marker string (quotes included) in the serialised page: bytes orjson would
# never produce, which is the point.
_BAD_VALUES = {
    "surrogate": b'"\\ud800"',
    "badutf8": b'"caf\xff"',
    "bignum": b"1e400",
}
# The `badid` glitch's event id: used raw in `/events/{id}/orders` it would climb out of the
# API's path (`../..`), start a query (`?`) and cut the rest of the URL off as a fragment (`#`).
BAD_EVENT_ID = "../../v1.5.1/events/1?x=#"


def _records(payload: Any) -> list[Any] | None:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return payload["data"]
    return None


def _padded(body: bytes, total: int) -> Iterator[bytes]:
    """The page, then whitespace up to `total` bytes, produced lazily in chunks."""
    yield body
    left = max(0, total - len(body))
    blank = b" " * _CHUNK
    while left > 0:
        n = min(left, _CHUNK)
        yield blank[:n]
        left -= n


def _sympla_error(request: Request, code: int) -> bytes:
    # Sympla's documented error shape. The message echoes the token the request sent, as a real
    # API might: a client must never put it into a log or an error as it is.
    token = request.headers.get("s_token", "")
    message = {401: f"Invalid s_token: {token}", 403: f"s_token {token} has no access to this resource"}.get(
        code, f"Request could not be processed (s_token: {token})")
    return orjson.dumps({"error": True, "code": code, "message": message})


def apply(response: Response, key: str, provider: str, request: Request, faults: FaultPlan) -> Response:
    """The reply to send instead of `response` (a sandbox `Response` for a 200 GET of `request`)."""
    path = request.path
    if faults.hit("redirect", key):
        return Response(301, b"", {"Location": f"/{provider}/moved{path}"})
    if faults.hit("empty", key):
        return Response(200, b"", {"Content-Type": "application/json"})
    if faults.hit("shapeless", key):
        return Response(200, b"{}", {"Content-Type": "application/json"})
    if faults.hit("nulldata", key):
        return Response(200, b'{"data":null}', {"Content-Type": "application/json"})
    if faults.hit("bare_data", key):
        try:
            payload = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and "data" in payload:
            return Response(200, orjson.dumps({"data": payload["data"]}), dict(response.headers))
    if provider == "sympla" and faults.hit("errorbody", key):
        return Response(200, _sympla_error(request, int(faults.param("errorbody"))),
                        {"Content-Type": "application/json"})
    for name, chunked in (("oversize", False), ("oversize_chunked", True)):
        if faults.hit(name, key):
            total = max(len(response.body), int(faults.param(name) * MIB))
            return Response(200, b"", {"Content-Type": "application/json"},
                            stream=_padded(response.body, total), length=None if chunked else total)

    wanted = [g for g in ("childlist", "listid", "badid", "surrogate", "badutf8", "bignum") if faults.rates.get(g)]
    if not wanted:
        return response
    try:
        payload = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response
    records = _records(payload)
    if not records:
        return response
    bad: bytes | None = None
    if "childlist" in wanted and isinstance(records[0], dict) and faults.hit("childlist", key):
        for field, value in list(records[0].items()):
            if isinstance(value, list):
                records[0][field] = 5
    if "listid" in wanted and isinstance(records[-1], dict) and faults.hit("listid", key):
        id_key = next((k for k in ("id", "returnId") if k in records[-1]), None)
        if id_key:
            records[-1][id_key] = [records[-1][id_key]]
    if ("badid" in wanted and provider == "sympla" and path == "/events" and isinstance(records[0], dict)
            and faults.hit("badid", key)):
        records[0]["id"] = BAD_EVENT_ID
    for name in ("surrogate", "badutf8", "bignum"):
        if bad is None and name in wanted and isinstance(records[0], dict) and faults.hit(name, key):
            records[0]["sandbox_glitch"] = _MARKER
            bad = _BAD_VALUES[name]
    body = orjson.dumps(payload)
    if bad is not None:
        body = body.replace(orjson.dumps(_MARKER), bad, 1)
    return Response(response.status, body, dict(response.headers))
