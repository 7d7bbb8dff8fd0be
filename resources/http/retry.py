"""How hard a request is tried: the back-off policy, Retry-After, and the two kinds of failed attempt."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime

# --- retry policy ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit production; tests pass a small `backoff_base`."""

    backoff_base: float = 0.5  # first back-off ceiling, seconds
    backoff_max: float = 30.0  # cap on one exponential back-off step
    max_elapsed: float = 300.0  # give up once the next wait would end after this many seconds
    max_attempts: int = 12  # and never more than this many sends of one request
    # Sends of one request that come back 2xx but not in the documented shape (empty, not JSON,
    # no envelope) before that is the answer: enough to ride out one bad reply from a gateway or
    # a deploy, few enough that a broken API fails in seconds with the real reason.
    bad_reply_attempts: int = 3

    def backoff(self, attempt: int) -> float:
        """Full-jitter back-off before retry number `attempt` (1 = first retry)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Retryable(Exception):
    """One failed attempt that is worth another: carries what the next wait must respect."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class BadReply(Retryable):
    """A 2xx that is not the documented answer: worth `bad_reply_attempts` sends, no more."""

