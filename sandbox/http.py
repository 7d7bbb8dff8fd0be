"""The sandbox's HTTP plumbing: the provider plug-in interface and a threaded loopback server that
can misbehave on purpose. The request/response types it passes around live in `messages.py`.

Hand-written on the standard library's `ThreadingHTTPServer` rather than an ASGI framework
because the faults we must reproduce (connection resets, bodies cut short after an honest
Content-Length) need direct control of the socket, which ASGI servers deliberately hide.
"""

from __future__ import annotations

import email.utils
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import glitches
from sandbox.faults import FaultPlan
from sandbox.messages import Request, Response, json_response
from sandbox.ratelimit import RateLimits

# The stdlib's own limits on a request's header block (http.client._MAXLINE / _MAXHEADERS).
MAX_HEADER_LINE = 65536
MAX_HEADERS = 100
# Pending connections the kernel queues before accept(): the stdlib's default of 5 resets clients
# when a benchmark opens 16+ keep-alive connections at once while the accept thread waits for the GIL.
LISTEN_BACKLOG = 128


class Provider:
    """One provider's API. Subclasses set `name` (also the URL prefix) and implement `env` and `handle`."""

    name: str = ""

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:  # pragma: no cover - interface
        """The environment variables that point marquee at this provider served at `base_url`: its
        base-URL variable and the credentials this sandbox accepts."""
        raise NotImplementedError

    def handle(self, request: Request, ctx: SandboxContext) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        """An error reply in this provider's own error style (the generic rate limit's 429 uses it)."""
        return json_response({"error": message}, status)


@dataclass
class Received:
    provider: str
    endpoint: str
    payload: Any
    at: float


class Recorder:
    """Everything the push endpoints accepted, in arrival order."""

    def __init__(self) -> None:
        self._items: list[Received] = []
        self._lock = threading.Lock()

    def record(self, provider: str, endpoint: str, payload: Any) -> None:
        with self._lock:
            self._items.append(Received(provider, endpoint, payload, time.time()))

    def items(self, provider: str | None = None, endpoint: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r for r in self._items
                if (provider is None or r.provider == provider) and (endpoint is None or r.endpoint == endpoint)
            ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass
class SandboxContext:
    """Shared by all providers of one sandbox: the dataset, the fault plan, the push log, counters."""

    world: Any  # sandbox.world.World
    faults: FaultPlan
    recorder: Recorder = field(default_factory=Recorder)
    state: dict[str, Any] = field(default_factory=dict)  # provider-owned mutable state, keyed by provider
    lock: threading.Lock = field(default_factory=threading.Lock)
    request_counts: dict[str, int] = field(default_factory=dict)
    # Every path requested (the raw request target without its query, as it arrived), how often:
    # how a test proves that no request reached a path an id was meant to rewrite.
    paths: Counter[str] = field(default_factory=Counter)
    # Bytes of each streamed (oversize) body actually written before it ended or the client hung
    # up: how a test sees that a client stopped reading at its cap.
    streamed: list[int] = field(default_factory=list)
    rate_limits: RateLimits = field(default_factory=RateLimits)

    def count(self, provider: str | None, path: str) -> None:
        with self.lock:
            if provider is not None:
                self.request_counts[provider] = self.request_counts.get(provider, 0) + 1
            self.paths[path] += 1


class _EmptyHeaderBlock:
    """What the stdlib's request-line parser reads as the header block: nothing (see parse_request)."""

    @staticmethod
    def readline(limit: int = -1) -> bytes:
        return b"\r\n"


class _BadHeaders(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read_headers(rfile: Any) -> dict[str, str]:
    """The header block, by lower-cased name (the last of a repeated header wins), with the stdlib's
    limits. A folded continuation line extends the previous header, as RFC 7230 obs-fold does."""
    headers: dict[str, str] = {}
    last: str | None = None
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise _BadHeaders(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and last is not None:
            headers[last] = f"{headers[last]} {text.strip()}"
            continue
        name, sep, value = text.partition(":")
        name = name.strip().lower()
        if not sep or not name:
            raise _BadHeaders(HTTPStatus.BAD_REQUEST, "Malformed header line")
        value = value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise _BadHeaders(HTTPStatus.BAD_REQUEST, "Conflicting Content-Length headers")
        headers[name] = value
        last = name
    raise _BadHeaders(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")


@lru_cache(maxsize=4)
def _http_date(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def _make_handler(providers: dict[str, Provider], ctx: SandboxContext,
                  internal: Callable[[Request, SandboxContext], Response]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes; with Nagle on, keep-alive clients stall ~40 ms on
        # the peer's delayed ACK for every request.
        disable_nagle_algorithm = True
        server_version = "marquee-sandbox/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return  # quiet: tests and the demo run thousands of requests

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return  # quiet, and without formatting a line per request that nobody reads

        def date_time_string(self, timestamp: float | None = None) -> str:
            # One Date header per second, not one formatdate() per reply.
            return _http_date(int(time.time() if timestamp is None else timestamp))

        def parse_request(self) -> bool:
            # The stdlib parses the header block with the email package: a quarter of the sandbox's
            # CPU for a small POST. It still parses and checks the request line (versions, HTTP/0.9),
            # reading an empty header block; the real one is read here with the stdlib's limits.
            rfile, self.rfile = self.rfile, _EmptyHeaderBlock()  # type: ignore[assignment]
            try:
                if not super().parse_request():
                    return False
            finally:
                self.rfile = rfile
            try:
                self.headers = _read_headers(rfile)  # type: ignore[assignment]
            except _BadHeaders as exc:
                self.send_error(exc.status, str(exc))
                return False
            # The stdlib's Connection and Expect handling, on the headers read here.
            conntype = self.headers.get("connection", "").lower()
            if conntype == "close":
                self.close_connection = True
            elif conntype == "keep-alive" and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            expect = self.headers.get("expect", "").lower()
            if expect == "100-continue" and self.protocol_version >= "HTTP/1.1" \
                    and self.request_version >= "HTTP/1.1":
                return self.handle_expect_100()
            return True

        def _dispatch(self) -> None:
            headers: dict[str, str] = self.headers  # type: ignore[assignment]
            parts = urlsplit(self.path)
            segments = parts.path.split("/", 2)
            prefix = segments[1] if len(segments) > 1 else ""
            rest = "/" + (segments[2] if len(segments) > 2 else "")
            length = int(headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=rest.rstrip("/") or "/",
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=headers,
                body=body,
            )
            if prefix == "_sandbox":
                self._send(internal(request, ctx))
                return
            provider = providers.get(prefix)
            ctx.count(prefix if provider is not None else None, parts.path)
            if provider is None:
                self._send(json_response({"error": f"no provider at /{prefix}"}, 404))
                return
            if ctx.rate_limits.active:
                retry_after = ctx.rate_limits.admit(prefix)
                if retry_after is not None:
                    limit, window = ctx.rate_limits.limits.get(prefix, (0, 0.0))
                    response = provider.error(429, f"Too Many Requests: at most {limit} requests per {window:g} s; "
                                                    f"retry in {retry_after} s")
                    response.headers["Retry-After"] = str(retry_after)
                    self._send(response)
                    return
            faults = ctx.faults
            if not faults.rates:  # no fault or glitch configured: skip the decisions altogether
                self._send(provider.handle(request, ctx))
                return
            key = f"{prefix} {request.key}"
            if faults.hit("reset", key):
                self._reset()
                return
            if faults.hit("slow", key):
                time.sleep(faults.param("slow"))
            if faults.hit("429", key):
                # Whole seconds, as servers send them; `429:rate:0` is "Retry-After: 0" (retry at
                # once, valid HTTP), which tests use when the wait itself is not what they check.
                retry_after = max(0, int(faults.param("429")))
                self._send(json_response({"status": 429, "message": "Too Many Requests"}, 429,
                                         {"Retry-After": str(retry_after)}))
                return
            if faults.hit("5xx", key):
                status = (500, 502, 503)[len(key) % 3]
                self._send(json_response({"status": status, "message": "sandbox injected failure"}, status))
                return
            response = provider.handle(request, ctx)
            if request.method == "GET" and response.status == 200:
                response = glitches.apply(response, key, prefix, request, faults)
            if response.stream is None and response.status < 400 and faults.hit("truncate", key):
                self._send(response, truncate=True)
                return
            self._send(response)

        def _send(self, response: Response, truncate: bool = False) -> None:
            if response.stream is not None:
                self._send_stream(response)
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if truncate:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            # Headers and body in one write: one syscall and one packet per reply instead of two.
            # `_headers_buffer` is where send_header() collects the header lines (see end_headers).
            self._headers_buffer.append(b"\r\n" + response.body)  # type: ignore[attr-defined]
            self.flush_headers()

        def _send_stream(self, response: Response) -> None:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            chunked = response.length is None
            self.send_header("Transfer-Encoding" if chunked else "Content-Length",
                             "chunked" if chunked else str(response.length))
            self.end_headers()
            assert response.stream is not None
            # A client that stops reading closes the socket: the write then fails and the handler
            # ends (BrokenPipe / ConnectionReset are caught in `_guarded`).
            sent = 0
            try:
                for chunk in response.stream:
                    if chunked:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    else:
                        self.wfile.write(chunk)
                    sent += len(chunk)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            finally:
                self.close_connection = True
                with ctx.lock:
                    ctx.streamed.append(sent)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _guarded(self) -> None:
            try:
                self._dispatch()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as exc:  # a sandbox bug must surface as a 500 with the reason, not a hang
                self._send(json_response({"error": "sandbox error", "detail": repr(exc)}, 500))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _guarded

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True  # a handler blocked on a keep-alive socket never holds the process open


# serve_forever's default 0.5 s poll is how long shutdown() waits: every stop of a sandbox cost half a
# second. The poll is a select() on one socket, so a 20 ms interval costs nothing measurable.
SHUTDOWN_POLL_SECONDS = 0.02


class SandboxServer:
    """A running sandbox: `base_url`, `env` (the variables to export), `ctx`, and `stop()`."""

    def __init__(self, providers: Iterable[Provider], ctx: SandboxContext,
                 internal: Callable[[Request, SandboxContext], Response], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.providers = {p.name: p for p in providers}
        self.ctx = ctx
        handler = _make_handler(self.providers, ctx, internal)
        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, provider: str) -> str:
        return f"{self.base_url}/{provider}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,),
                                        name="marquee-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(SHUTDOWN_POLL_SECONDS)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
