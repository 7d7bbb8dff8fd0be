"""Generic, configurable rate limits for any sandbox provider.

`start_sandbox(rate_limits={"cordial": (100, 10.0)})`, `marquee sandbox --rate-limit cordial=100/10`,
`Sandbox.set_rate_limits(...)` or `PUT /_sandbox/rate_limits?spec=cordial=100/10` on a running one.

Semantics: "N requests per W seconds" is a token bucket per provider (GCRA, the usual reading of
such a limit): a bucket of N requests that refills at N/W per second. N requests may arrive at once;
after that, one every W/N seconds on average. A request the bucket cannot take gets
`429 Too Many Requests` with `Retry-After` (whole seconds, rounded up, at least 1) and the provider's
own error body, and is not processed: nothing is recorded, no fault or handler runs. Requests a
fault strikes after acceptance (a 5xx, a reset) were accepted, so they count. 429s are counted per
provider (`GET /_sandbox/stats`, key `rate_limited`).

This is on top of, and independent from, Ticket Tailor's documented hourly budget with its
`X-Rate-Limit-*` headers (sandbox/tickettailor/api.py), which stays as it is.

Hand-written rather than a library (`limits`, `pyrate-limiter`): the sandbox must say *how long*
until a request would be taken (for Retry-After) and count exactly what a server counts (arrivals
it accepted), which is one "theoretical arrival time" per provider and a few lines; a library would
add a dependency to the sandbox for less control.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping

_SPEC = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smh]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


class RateLimitSpecError(ValueError):
    pass


def parse_rate_limits(spec: str | None) -> dict[str, tuple[int, float]]:
    """`cordial=100/10,cymbal=2000/1h` -> {"cordial": (100, 10.0), "cymbal": (2000, 3600.0)}.

    The window is seconds, or carries a unit: `10s`, `1m`, `1h` (`100/s` is 100 per second)."""
    limits: dict[str, tuple[int, float]] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = _SPEC.match(part)
        if not m:
            raise RateLimitSpecError(f"bad rate limit {part.strip()!r}: expected provider=N/W, e.g. cordial=100/10 "
                                     "(N requests per W seconds; W may end in s, m or h)")
        provider, count, window, unit = m.groups()
        if window is None and not unit:
            raise RateLimitSpecError(f"bad rate limit {part.strip()!r}: the window is missing (e.g. 100/10 or 100/1m)")
        limits[provider.lower()] = (int(count), float(window or 1) * _UNIT[unit])
    return check_limits(limits)


def check_limits(limits: Mapping[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    out = {}
    for provider, (count, window) in limits.items():
        if int(count) < 1 or not float(window) > 0:
            raise RateLimitSpecError(f"rate limit of {provider}: need at least 1 request per a positive window, "
                                     f"got {count}/{window}")
        out[provider] = (int(count), float(window))
    return out


def format_limits(limits: Mapping[str, tuple[int, float]]) -> str:
    return ",".join(f"{p}={n}/{w:g}" for p, (n, w) in sorted(limits.items()))


class RateLimits:
    """The token buckets of every limited provider, and how many requests each turned away."""

    def __init__(self, limits: Mapping[str, tuple[int, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[int, float]] = {}
        self._tat: dict[str, float] = {}  # GCRA "theoretical arrival time" of the next request
        self.rejected: dict[str, int] = {}
        self.set(limits or {})

    def set(self, limits: Mapping[str, tuple[int, float]]) -> None:
        """Replace every limit (a provider left out is no longer limited); the buckets start full."""
        checked = check_limits(limits)
        with self._lock:
            self._limits = checked
            self._tat = {}

    @property
    def limits(self) -> dict[str, tuple[int, float]]:
        with self._lock:
            return dict(self._limits)

    @property
    def active(self) -> bool:
        return bool(self._limits)

    def admit(self, provider: str) -> int | None:
        """None if the request is accepted (and counted), else the Retry-After in whole seconds."""
        limit = self._limits.get(provider)
        if limit is None:
            return None
        count, window = limit
        interval = window / count  # one request's share of the window
        tolerance = window - interval  # so a full bucket takes N at once
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(provider, now), now)
            if now < tat - tolerance - 1e-9:
                self.rejected[provider] = self.rejected.get(provider, 0) + 1
                return max(1, math.ceil(tat - tolerance - now))
            self._tat[provider] = tat + interval
            return None
