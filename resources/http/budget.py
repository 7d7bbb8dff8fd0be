"""The rate budget: pacing from the API's rate-limit headers and 429s, and an optional configured limit."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

import dagster as dg

logger = dg.get_dagster_logger("marquee.http")


RATE_LIMIT_ENV = "{PROVIDER}_RATE_LIMIT"
_RATE_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smh]?)\s*$")
_RATE_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(text: str, name: str) -> tuple[int, float]:
    """`100/10s` (also `100/10`, `50/1m`, `2000/1h`, `5/s`) -> (100, 10.0): N requests per W seconds.
    A bad value is a ValueError naming the variable (`name`) it came from."""
    m = _RATE_LIMIT.match(text or "")
    count = int(m.group(1)) if m else 0
    window = float(m.group(2) or 1) * _RATE_UNITS[m.group(3)] if m and (m.group(2) or m.group(3)) else 0.0
    if count < 1 or window <= 0:
        raise ValueError(f"{name} must be N requests per window, like 100/10s, 100/10 (seconds), 50/1m or "
                         f"2000/1h, with N >= 1 and a window above 0; got {text!r}")
    return count, window




# --- rate budget ----------------------------------------------------------------------------------

class RateBudget:
    """Paces requests from the provider's own rate-limit headers (Ticket Tailor: 2000/hour), and
    optionally within a configured limit of N requests per W seconds.

    Nothing is hard-coded: while `X-Rate-Limit-Remaining` is above the reserve the client runs
    flat out; inside the reserve it spaces requests by `seconds_left_in_window / remaining`, so the
    window's budget lasts until `X-Rate-Limit-Reset`; at zero it waits for the reset. A 429's
    Retry-After is recorded as "zero remaining until then" so that parallel callers wait too.

    The configured limit (`set_limit`, from `<PROVIDER>_RATE_LIMIT`) is kept on our side, for APIs
    that throttle without telling (Cymbal, Cordial). "N per W seconds" is read as a token bucket
    (GCRA): N requests may go at once (less a 2% reserve for our own send lag), then one every W/N
    seconds, which is what a "100 requests / 10 s" limit usually means and the fastest any such
    limit allows. Every thread sharing the core
    books its send slot under one lock, so together they never exceed it. Each slot is spaced 2%
    (at least 2 ms) wider than W/N: that slack absorbs the jitter between our send and the server's
    arrival clock, so a server counting arrivals never finds the bucket empty. A stricter server
    (a sliding window) still answers 429 now and then, and its Retry-After is honoured. Hand-written
    rather than `limits` / `pyrate-limiter`: it must book a future slot and return the wait (the
    core sleeps through its injectable `sleep`, and the header pacing above shares the decision),
    which is one timestamp and a few lines; those libraries answer "allowed now?" and would need
    polling.
    """

    def __init__(self, reserve_fraction: float = 0.1, min_reserve: int = 10,
                 clock: Callable[[], float] = time.monotonic, limit: tuple[int, float] | None = None) -> None:
        self.reserve_fraction = reserve_fraction
        self.min_reserve = min_reserve
        self._clock = clock
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self._pacing_logged = False
        self._window: tuple[int, float, float] | None = None  # (N, W, spacing of one request)
        self._tat = 0.0  # GCRA "theoretical arrival time": when the bucket would be full again
        if limit is not None:
            self.set_limit(*limit)

    def set_limit(self, count: int, window: float) -> None:
        """At most `count` requests in any `window` seconds (from now on, for every thread)."""
        if count < 1 or window <= 0:
            raise ValueError(f"a rate limit needs at least 1 request per a positive window, got {count}/{window}")
        with self._lock:
            interval = float(window) / int(count)
            self._window = (int(count), float(window), interval + max(0.002, 0.02 * interval))

    @property
    def configured_limit(self) -> tuple[int, float] | None:
        return None if self._window is None else self._window[:2]

    @staticmethod
    def _int(headers: Mapping[str, str], name: str) -> int | None:
        raw = headers.get(name)
        try:
            return int(float(raw)) if raw is not None else None
        except ValueError:
            return None

    def observe(self, headers: Mapping[str, str], status: int, retry_after: float | None = None) -> None:
        remaining = self._int(headers, "x-rate-limit-remaining")
        reset = self._int(headers, "x-rate-limit-reset")
        limit = self._int(headers, "x-rate-limit-limit")
        now = self._clock()
        with self._lock:
            if limit is not None:
                self._limit = limit
            if remaining is not None and reset is not None:
                self._remaining = remaining
                self._reset_at = now + max(0, reset)
            if status == 429:
                # Blocked for Retry-After (else until the window resets), not for the whole window:
                # a 429 from a burst limit says nothing about the hourly budget.
                wait = retry_after if retry_after is not None else reset
                if wait is not None:
                    self._blocked_until = max(self._blocked_until, now + wait)

    def delay(self) -> float:
        """Seconds to wait before the next request; also books that request against the budget."""
        with self._lock:
            now = self._clock()
            wait = self._header_delay(now)
            if self._window is not None:
                wait = self._book(now, wait)
            return wait

    def _book(self, now: float, wait: float) -> float:
        """Books the send at the first instant the bucket allows (and not before `wait`).

        The first burst keeps 2% of N (at least 1) in reserve: our sends leave a little after their
        booked instant (threads, the GIL), and the server's bucket starts from the first ARRIVAL, so a
        full burst would leave no room for that lag; the reserve is it."""
        count, _window, spacing = self._window  # type: ignore[misc]
        reserve = min(count - 1, max(1, count // 50))
        tolerance = (count - 1 - reserve) * spacing
        at = max(now + wait, self._tat - tolerance)
        self._tat = max(self._tat, at) + spacing
        return at - now

    def _header_delay(self, now: float) -> float:
        blocked = max(0.0, self._blocked_until - now)
        if self._remaining is None or self._reset_at is None:
            return blocked
        left = self._reset_at - now
        if left <= 0:  # the window has rolled over: the next reply tells us the new budget
            self._remaining = self._reset_at = None
            self._pacing_logged = False
            return blocked
        reserve = max(self.min_reserve, int((self._limit or 0) * self.reserve_fraction))
        remaining = self._remaining
        self._remaining = max(0, remaining - 1)  # so concurrent callers see the spend at once
        if remaining <= 0:
            return max(blocked, left)
        if remaining > reserve:
            return blocked
        if not self._pacing_logged:
            self._pacing_logged = True
            logger.info("rate budget low (%d left, window resets in %.0fs): spacing requests", remaining, left)
        return max(blocked, left / remaining)

    @property
    def remaining(self) -> int | None:
        return self._remaining


