"""Seeded, reproducible fault injection for the sandbox.

Spec grammar (the `--faults` flag): comma-separated `name:rate[:param][@scope]`, e.g.
`429:0.1,5xx:0.05,reset:0.02,truncate:0.02,slow:0.05:1.5,expire:0.2,repeat:0.1`, or `all:0.05`.
`@scope` limits a fault to the requests whose `/{provider}{path}` starts with it, e.g.
`empty:1@/tickettailor/v1/orders` (one scope per name; `all` never takes one).

| name     | effect                                                                 | param            |
|----------|------------------------------------------------------------------------|------------------|
| 429      | `429 Too Many Requests` with `Retry-After`                             | seconds (1)      |
| 5xx      | one of 500 / 502 / 503, no work done                                   |                  |
| reset    | the TCP connection is reset before any reply                           |                  |
| truncate | the full Content-Length is announced, half the body sent, then closed  |                  |
| slow     | the reply is delayed                                                    | seconds (1.0)    |
| expire   | Cymbio: a valid access token is treated as expired (401)               |                  |
| repeat   | paginated lists: the page starts with the previous page's last record  |                  |

A decision is a pure function of (seed, fault, request key, attempt number for that key), so
the same run sees the same faults whatever the thread interleaving. A key is never faulted more
than `MAX_CONSECUTIVE` times in a row, so a client that retries always gets through.

Vendor glitches (`GLITCH_NAMES`) model replies that are wrong rather than lost: a vendor bug, a
misrouted gateway, one bad record. They strike successful (200) GET replies only, and they are
sticky: the decision is a function of (seed, glitch, request key) alone, so a glitched request is
glitched on every retry, as a real broken page is. `all` does not include them (they lose or
quarantine data on purpose, so a run against them cannot match the sandbox truth).

| name             | effect on a 200 GET reply                                                | param            |
|------------------|--------------------------------------------------------------------------|------------------|
| redirect         | `301 Moved Permanently` to `/{provider}/moved/...`, empty body           |                  |
| empty            | `200` with an empty body                                                 |                  |
| shapeless        | `200` with `{}`                                                          |                  |
| nulldata         | `200` with `{"data": null}`                                              |                  |
| bare_data        | the reply keeps only its `data` member: no `links` (Ticket Tailor), no   |                  |
|                  | `pagination` (Sympla), no `page` / `per_page` (Cymbal)                   |                  |
| errorbody        | Sympla only: `200` with the documented error body `{"error": true,       | code (401)       |
|                  | "code": param, "message": ...}`; the message echoes the request's        |                  |
|                  | `s_token` (`Invalid s_token: <token>`), as a real API might              |                  |
| oversize         | the page padded with whitespace to `param` MiB, honest Content-Length,   | MiB (100)        |
|                  | streamed (the padding costs the sandbox no memory)                       |                  |
| oversize_chunked | the same, chunked: no Content-Length, the reader must count              | MiB (100)        |
| surrogate        | the page's first record gains `"sandbox_glitch": "\ud800"` (lone         |                  |
|                  | surrogate escape)                                                        |                  |
| badutf8          | the page's first record gains a string holding the byte 0xFF             |                  |
| bignum           | the page's first record gains `"sandbox_glitch": 1e400`                  |                  |
| childlist        | every top-level list field of the page's first record becomes `5`        |                  |
|                  | (Ticket Tailor `line_items: 5`, Cymbio `returnLines: 5`)                 |                  |
| listid           | the page's last record's `id` (Cymbio `returnId`) becomes `[id]`; the    |                  |
|                  | page's own links keep the real id                                        |                  |
| badid            | Sympla `GET /events` only: the page's first event's `id` becomes         |                  |
|                  | `"../../v1.5.1/events/1?x=#"` (`glitches.BAD_EVENT_ID`), a string that   |                  |
|                  | would rewrite `/events/{id}/orders` if used raw; the rest stays valid    |                  |

The record glitches apply to the records of a list page (`data`, or a bare array); a page with
no records is left as it is. Change the plan of a running sandbox with `Sandbox.set_faults(spec)`
or `PUT /_sandbox/faults?spec=...` (a day landed clean, then a glitched run).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

FAULT_NAMES = ("429", "5xx", "reset", "truncate", "slow", "expire", "repeat")
ENVELOPE_GLITCHES = ("redirect", "empty", "shapeless", "nulldata", "bare_data", "errorbody", "oversize",
                     "oversize_chunked")
RECORD_GLITCHES = ("surrogate", "badutf8", "bignum", "childlist", "listid", "badid")
GLITCH_NAMES = ENVELOPE_GLITCHES + RECORD_GLITCHES
DEFAULT_PARAMS = {"429": 1.0, "slow": 1.0, "oversize": 100.0, "oversize_chunked": 100.0, "errorbody": 401.0}
MAX_CONSECUTIVE = 2


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    scopes: dict[str, str] = field(default_factory=dict)  # name -> "/{provider}{path}" prefix
    seed: int = 0
    _attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    _streak: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    injected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> FaultPlan:
        plan = cls(seed=seed)
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            part, _, scope = part.partition("@")
            scope = scope.strip()
            bits = part.split(":")
            name = bits[0].strip().lower()
            names = [n for n in FAULT_NAMES] if name == "all" else [name]
            if name != "all" and name not in FAULT_NAMES + GLITCH_NAMES:
                raise FaultSpecError(
                    f"unknown fault {name!r} in --faults; use one of {', '.join(FAULT_NAMES + GLITCH_NAMES)} or 'all'"
                )
            if scope and (name == "all" or not scope.startswith("/")):
                raise FaultSpecError(f"bad scope in {part}@{scope}: a path prefix such as /tickettailor/v1/orders, "
                                     "on one named fault")
            try:
                rate = float(bits[1]) if len(bits) > 1 else 0.1
                param = float(bits[2]) if len(bits) > 2 else None
            except ValueError as exc:
                raise FaultSpecError(f"bad fault spec {part!r}: expected name:rate[:param]") from exc
            if not 0 <= rate <= 1:
                raise FaultSpecError(f"fault rate in {part!r} must be between 0 and 1")
            if param is not None and param < 0:
                raise FaultSpecError(f"fault parameter in {part!r} must not be negative")
            for n in names:
                plan.rates[n] = rate
                if param is not None:
                    plan.params[n] = param
                if scope:
                    plan.scopes[n] = scope
        return plan

    @property
    def spec(self) -> str:
        """The plan as a `--faults` spec (normalised), for display."""
        return ",".join(f"{name}:{rate:g}" + (f":{self.params[name]:g}" if name in self.params else "")
                        + (f"@{self.scopes[name]}" if name in self.scopes else "")
                        for name, rate in sorted(self.rates.items()) if rate > 0)

    def _in_scope(self, name: str, key: str) -> bool:
        scope = self.scopes.get(name)
        if not scope:
            return True
        # key: "{provider} {METHOD} {path}?{query}" (see sandbox.http); the scope is a path prefix.
        provider, _, rest = key.partition(" ")
        path = rest.partition(" ")[2].partition("?")[0]
        return f"/{provider}{path}".startswith(scope)

    def param(self, name: str) -> float:
        return self.params.get(name, DEFAULT_PARAMS.get(name, 0.0))

    def hit(self, name: str, key: str) -> bool:
        """Should fault `name` strike the request identified by `key` (method + path + query)?"""
        rate = self.rates.get(name, 0.0)
        if rate <= 0 or not self._in_scope(name, key):
            return False
        if name in GLITCH_NAMES:  # sticky: the same request is glitched on every attempt
            digest = hashlib.blake2b(f"{self.seed}|{name}|{key}".encode(), digest_size=8).digest()
            strike = int.from_bytes(digest, "big") / 2**64 < rate
            if strike:
                with self._lock:
                    self.injected[name] = self.injected.get(name, 0) + 1
            return strike
        with self._lock:
            attempt = self._attempts.get((name, key), 0)
            self._attempts[(name, key)] = attempt + 1
            streak = self._streak.get((name, key), 0)
            if streak >= MAX_CONSECUTIVE:
                self._streak[(name, key)] = 0
                return False
            digest = hashlib.blake2b(f"{self.seed}|{name}|{key}|{attempt}".encode(), digest_size=8).digest()
            strike = int.from_bytes(digest, "big") / 2**64 < rate
            self._streak[(name, key)] = streak + 1 if strike else 0
            if strike:
                self.injected[name] = self.injected.get(name, 0) + 1
            return strike

    @property
    def active(self) -> bool:
        return any(r > 0 for r in self.rates.values())
