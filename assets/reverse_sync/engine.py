"""The push engine: send what changed, concurrently within the destination's budget, log every outcome.

For one destination (e.g. `cordial_orders`) it takes records (id, payload, content hash), skips those
whose hash equals the last one the destination accepted (per the sync log), and sends the rest in
units: a batch of records for endpoints that take lists (Cymbal events and orders), one record per
request otherwise (Cymbal contacts, Cordial). Up to `concurrency` units are in flight at once; the
provider client's own rate budget (`<PROVIDER>_RATE_LIMIT`, the API's rate headers, a 429's
Retry-After) paces them, shared by every thread.

What a failure does, and why:
- 422 / 413 on a batch: the batch is split in halves until the refused records are isolated, so
  one invalid record does not hold back the others. If BOTH halves of a batch's first split are
  refused too, the problem is the whole payload shape, not a record: the destination is stopped.
- 422 / 413 on single records: that record failed; if the first records tried are all refused,
  the destination is stopped for the same reason (SYSTEMATIC_AFTER).
- 400 / 404 / 405 / 410 or a redirect: the request itself is wrong for every record (typically
  `<PROVIDER>_BASE_URL`), so the destination is stopped at once with one error that names the
  endpoint and the likely cause. Splitting would cost about two requests per record for nothing.
- 401 / 403 (the key) and unavailable after the HTTP core's retries: the destination is stopped.
- When a destination stops, units already in flight finish and are logged; every record not yet
  sent is logged as failed, "not attempted", and retried next run.

The log records outcomes as they arrive (one file per flush, temp + rename), so a crash loses at
most one flush of bookkeeping; those records are re-sent next run (every destination upserts by id).
Reasons in the log are an HTTP status and an error code, never API text (it may echo an email).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assets.reverse_sync.log import FAILED, SENT, SyncLog
from resources.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotConfiguredError,
    ProviderRedirectError,
    ProviderRequestError,
    ProviderUnavailableError,
)

# Statuses that say "this record's content was refused": worth isolating the record.
RECORD_REFUSED = frozenset({413, 422})
# Statuses that say "this request can never work": the URL or method is wrong for every record.
REQUEST_WRONG = frozenset({400, 404, 405, 410})
# Single-record endpoints: this many refusals in a row, with no success yet, is a systematic problem.
SYSTEMATIC_AFTER = 10
SHOWN_IDS = 20

Entry = tuple[str, str, str, "str | None"]  # record id, content hash, status, reason


@dataclass(frozen=True)
class Record:
    rid: str
    payload: dict[str, Any]
    digest: str  # what the log compares: the payload hash, or a contact's content hash


@dataclass
class SyncOutcome:
    destination: str
    in_scope: int = 0
    sent: int = 0
    unchanged: int = 0
    failed_ids: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # record id -> status/code
    skipped_ids: list[str] = field(default_factory=list)  # cannot be expressed for this destination
    not_attempted: int = 0
    requests: int = 0
    stopped: str | None = None  # why the destination was stopped, if it was
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failed_ids)

    def metadata(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "sent": self.sent,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "not_attempted": self.not_attempted,
            "skipped": len(self.skipped_ids),
            "requests": self.requests,
            "dagster/row_count": self.in_scope,
            **({"failed_ids": shown(self.failed_ids)} if self.failed_ids else {}),
            **({"skipped_ids": shown(self.skipped_ids)} if self.skipped_ids else {}),
            **({"stopped": self.stopped} if self.stopped else {}),
            **self.extra_metadata,
        }


def shown(ids: Sequence[str]) -> str:
    head = ", ".join(ids[:SHOWN_IDS])
    return head + (f" ... and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def error_code(exc: BaseException) -> str:
    """A short, safe description of a failure for the log: status and the API's error code, or the
    error's class. Never the message (the API's text may echo personal data)."""
    code = getattr(exc, "code", None)
    if code:
        return str(code)[:80]
    status = getattr(exc, "status", None)
    return f"{status} {type(exc).__name__}" if status else type(exc).__name__


class DestinationStopped(Exception):
    """No further request to this destination can succeed in this run."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause
        self.code = error_code(cause)


def _stop_message(destination: str, exc: ProviderError, base_url_var: str, why: str) -> str:
    endpoint = exc.endpoint or "its endpoint"
    return (f"{destination}: stopped. {exc.provider} {endpoint} answered {error_code(exc)}: {why} "
            f"Nothing more was sent to it in this run; the records not sent are logged as not attempted and "
            f"retried next run.")


def _classify_stop(destination: str, exc: ProviderError, base_url_var: str) -> DestinationStopped | None:
    """A DestinationStopped if `exc` means no further request can work, else None."""
    if isinstance(exc, ProviderAuthError | ProviderNotConfiguredError):
        return DestinationStopped(_stop_message(destination, exc, base_url_var,
                                                "the credentials were refused (see the error above)."), exc)
    if isinstance(exc, ProviderUnavailableError):
        return DestinationStopped(_stop_message(destination, exc, base_url_var,
                                                "the API stayed unavailable through the retries; re-run later."), exc)
    if isinstance(exc, ProviderRedirectError) or (exc.status in REQUEST_WRONG):
        return DestinationStopped(_stop_message(
            destination, exc, base_url_var,
            f"this request cannot work for any record, so it was not repeated. The likely cause is "
            f"{base_url_var} (it must be the API's root) or an API change."), exc)
    return None


def _record_refused(exc: ProviderError) -> bool:
    return isinstance(exc, ProviderRequestError) and exc.status in RECORD_REFUSED


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class _RefusalStreak:
    """Single-record endpoints: SYSTEMATIC_AFTER refusals before any success is the payload's shape,
    not one record. Shared by the worker threads."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self._lock = threading.Lock()
        self._refused = 0
        self._succeeded = False

    def observe(self, entries: list[Entry], destination: str) -> DestinationStopped | None:
        if not self.active or not entries:
            return None
        with self._lock:
            if entries[0][2] == SENT:
                self._succeeded = True
                return None
            if self._succeeded:
                return None
            self._refused += 1
            if self._refused != SYSTEMATIC_AFTER:
                return None
        code = entries[0][3] or "refused"
        stop = DestinationStopped(
            f"{destination}: stopped. The first {SYSTEMATIC_AFTER} records were all refused ({code}), so the "
            "payload shape itself is wrong (a marquee or API change), not one record. Nothing more was sent to it "
            "in this run.", ProviderRequestError(code, provider=destination))
        stop.code = code
        return stop


class _NotAttempted(Exception):
    """The destination was stopped by another thread before this unit was sent."""


def _attempt(destination: str, chunk: list[Record], send: Callable[[list[dict[str, Any]]], Any],
             base_url_var: str, requests: _Counter, stopping: threading.Event) -> list[Entry]:
    """Send one unit. On a record-level refusal of a batch, send both halves whole first: if both are
    refused too the payload shape is wrong and the destination stops (3 requests, not 2n); else the
    refused half is split down to its bad records. Raises DestinationStopped, _NotAttempted."""
    try:
        return _send(destination, chunk, send, base_url_var, requests, stopping)
    except ProviderError as exc:
        if len(chunk) == 1:
            return [(chunk[0].rid, chunk[0].digest, FAILED, error_code(exc))]
        halves = [chunk[:len(chunk) // 2], chunk[len(chunk) // 2:]]
        tried: list[list[Entry] | ProviderError] = []
        for half in halves:
            try:
                tried.append(_send(destination, half, send, base_url_var, requests, stopping))
            except ProviderError as half_exc:
                tried.append(half_exc)
        if all(isinstance(t, ProviderError) for t in tried):
            stopping.set()
            raise DestinationStopped(_stop_message(
                destination, exc, base_url_var,
                "a batch and both its halves were refused, so the payload shape itself is wrong (a marquee or "
                "API change), not one record."), exc) from exc
        out: list[Entry] = []
        for half, t in zip(halves, tried, strict=True):
            out += _isolate(destination, half, send, base_url_var, requests, stopping) \
                if isinstance(t, ProviderError) else t
        return out


def _send(destination: str, chunk: list[Record], send: Callable[[list[dict[str, Any]]], Any],
          base_url_var: str, requests: _Counter, stopping: threading.Event) -> list[Entry]:
    """One request. Returns SENT entries; raises DestinationStopped for a stop-worthy failure, the
    ProviderError itself for a record-level refusal, and records other failures as FAILED."""
    if stopping.is_set():
        raise _NotAttempted
    try:
        requests.add()
        send([r.payload for r in chunk])
        return [(r.rid, r.digest, SENT, None) for r in chunk]
    except ProviderError as exc:
        stop = _classify_stop(destination, exc, base_url_var)
        if stop is not None:
            stopping.set()
            raise stop from exc
        if _record_refused(exc):
            raise
        return [(r.rid, r.digest, FAILED, error_code(exc)) for r in chunk]


def _isolate(destination: str, chunk: list[Record], send: Callable[[list[dict[str, Any]]], Any],
             base_url_var: str, requests: _Counter, stopping: threading.Event) -> list[Entry]:
    """A refused chunk: split until each refused record stands alone."""
    if len(chunk) == 1:
        return [(chunk[0].rid, chunk[0].digest, FAILED, "refused")]
    out: list[Entry] = []
    for half in (chunk[:len(chunk) // 2], chunk[len(chunk) // 2:]):
        try:
            out += _send(destination, half, send, base_url_var, requests, stopping)
        except ProviderError as exc:
            out += ([(half[0].rid, half[0].digest, FAILED, error_code(exc))] if len(half) == 1
                    else _isolate(destination, half, send, base_url_var, requests, stopping))
    return out


def _units(records: Sequence[Record], batch: int, per_record: bool) -> Iterator[list[Record]]:
    size = 1 if per_record else batch
    for i in range(0, len(records), size):
        yield list(records[i:i + size])


def sync_records(
    destination: str,
    records: Sequence[Record],
    send: Callable[[list[dict[str, Any]]], Any],
    *,
    batch: int,
    per_record: bool = False,
    concurrency: int = 1,
    log: SyncLog | None = None,
    partition: str | None = None,
    run_id: str | None = None,
    base_url_var: str = "the destination's *_BASE_URL",
    flush_every: int | None = None,
) -> SyncOutcome:
    """Send the records whose content changed since the destination last accepted them.

    `send(payloads)` posts one unit and raises a `ProviderError` when the API did not accept it (for
    single-record endpoints it gets a list of one). Returns the outcome; `outcome.stopped` says why
    the destination was stopped, and auth errors are re-raised (after logging), because no later
    run can succeed with a refused key either."""
    log = log or SyncLog(destination)
    out = SyncOutcome(destination)
    unique: dict[str, Record] = {}
    for r in records:
        unique[r.rid] = r
    out.in_scope = len(unique)
    state = log.state()
    pending = []
    for r in unique.values():
        previous = state.get(r.rid)
        if previous is not None and previous.last_sent_hash == r.digest:
            out.unchanged += 1
        else:
            pending.append(r)

    flush_at = flush_every or max(batch, 1)
    buffer: list[Entry] = []

    def flush() -> None:
        if buffer:
            log.append(list(buffer), partition=partition, run_id=run_id)
            buffer.clear()

    def record(entries: list[Entry]) -> None:
        for rid, _h, status, reason in entries:
            if status == SENT:
                out.sent += 1
            else:
                out.failed_ids.append(rid)
                out.reasons[rid] = reason or ""
        buffer.extend(entries)
        if len(buffer) >= flush_at:
            flush()

    requests = _Counter()
    stopping = threading.Event()  # set by whichever thread meets a stop-worthy failure first
    stops: list[DestinationStopped] = []
    not_attempted: list[Record] = []
    finished: deque[list[Entry]] = deque()  # entries of finished units, drained by the caller's thread
    units = _units(pending, batch, per_record)
    take = threading.Lock()
    streak = _RefusalStreak(per_record)

    # Workers pull units themselves and leave their entries in a deque: no future, queue or
    # condition per request, which at thousands of requests a second is most of the CPU left.
    def work() -> None:
        while not stopping.is_set():
            with take:
                unit = next(units, None)
            if unit is None:
                return
            try:
                entries = _attempt(destination, unit, send, base_url_var, requests, stopping)
            except _NotAttempted:
                not_attempted.extend(unit)
                continue
            except DestinationStopped as exc:
                stops.append(exc)
                entries = [(r.rid, r.digest, FAILED, exc.code) for r in unit]
            finished.append(entries)
            refusal = streak.observe(entries, destination)
            if refusal is not None:
                stops.append(refusal)
                stopping.set()

    def drain() -> None:
        while finished:
            record(finished.popleft())

    try:
        if concurrency <= 1:
            work()  # inline: nothing to hand over between threads
        else:
            threads = [threading.Thread(target=work, name=f"sync-{destination}-{i}", daemon=True)
                       for i in range(concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.05)
                    drain()
        drain()
        stop = stops[0] if stops else None
        if stop is not None:
            not_attempted += [r for unit in units for r in unit]
            out.not_attempted = len(not_attempted)
            record([(r.rid, r.digest, FAILED, f"not attempted: {stop.code}") for r in not_attempted])
            out.stopped = str(stop)
    finally:
        flush()
        out.requests = requests.value
    log.compact()
    if stop is not None and isinstance(stop.cause, ProviderAuthError | ProviderNotConfiguredError):
        raise stop.cause
    return out
