"""Vendor glitches: turn a good 200 GET reply into the broken reply a real vendor sometimes sends.

The names, what they do and how they are scheduled are documented in `faults.py`. This module only
rewrites a `Response`; the server (`http.py`) decides whether a glitch strikes and sends the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from pipelines.sandbox.faults import FaultPlan

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


def apply(response: Any, key: str, provider: str, request: Any, faults: FaultPlan) -> Any:
    """The reply to send instead of `response` (a sandbox `Response` for a 200 GET of `request`)."""
    from pipelines.sandbox.http import Response  # the types live with the server

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
    for name, chunked in (("oversize", False), ("oversize_chunked", True)):
        if faults.hit(name, key):
            total = max(len(response.body), int(faults.param(name) * MIB))
            return Response(200, b"", {"Content-Type": "application/json"},
                            stream=_padded(response.body, total), length=None if chunked else total)

    wanted = [g for g in ("childlist", "listid", "surrogate", "badutf8", "bignum") if faults.rates.get(g)]
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
    for name in ("surrogate", "badutf8", "bignum"):
        if bad is None and name in wanted and isinstance(records[0], dict) and faults.hit(name, key):
            records[0]["sandbox_glitch"] = _MARKER
            bad = _BAD_VALUES[name]
    body = orjson.dumps(payload)
    if bad is not None:
        body = body.replace(orjson.dumps(_MARKER), bad, 1)
    return Response(response.status, body, dict(response.headers))
