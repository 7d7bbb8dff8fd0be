"""What a provider receives and returns: the sandbox's request and response types.

Kept apart from the server (`http.py`) so that whatever rewrites a reply (`glitches.py`) and
whatever serves it can both use these types without importing each other.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson


@dataclass
class Request:
    method: str
    path: str  # path below the provider prefix, e.g. "/v1/orders"
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def basic_username(self) -> str | None:
        return _basic_username(self.headers.get("authorization", ""))

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    @property
    def key(self) -> str:
        """Identity of this request for fault decisions: the same request retried has the same key."""
        query = "&".join(f"{k}={v}" for k, vs in sorted(self.query.items()) for v in vs)
        return f"{self.method} {self.path}?{query}"


@lru_cache(maxsize=256)
def _basic_username(auth: str) -> str | None:
    # Cached: a client sends the same Authorization header on every request.
    if not auth.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # A body produced while it is sent (the oversize glitches): `length` is announced as
    # Content-Length, or None for chunked transfer encoding.
    stream: Iterator[bytes] | None = None
    length: int | None = None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status=status,
        body=orjson.dumps(payload),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
