"""The reverse-sync log: per destination and record id, what was last accepted and what failed.

Layout: `{lake}/sync_log/{destination}/part-*.parquet`, append-only. Every flush writes one new
file with a unique name in one step (a durable rename locally, one upload to an object store:
resources/lakefs.py), so a reader never sees half a file and two runs syncing different partitions
of the same destination never write the same file. `compact()` folds the files into one under a
per-destination lake lock (resources/lake.py `lake_lock`: flock locally, a PostgreSQL advisory lock
for a shared object store) at the end of a run, so the file count stays small. It writes the folded
file before it deletes the ones folded, so a crash in between leaves rows twice, never none, and
reading keeps the latest row per record either way.

A record's state is its latest row: `sent` (the destination accepted the payload with this hash) or
`failed` (with the reason; retried next run). A record is unchanged, and not sent again, only when
the hash of its latest *accepted* payload equals the hash of the payload built now. The time of the
latest accepted send is what the consent rule compares an answer with (`consent.py`).

Rows carry ids, hashes, statuses and codes only. Contacts are keyed by an HMAC of their email or
phone under the PII key (`consent.contact_key`), so no email or phone number is written here and a
guessed email cannot be matched against the log. Reasons are an HTTP status and the API's short
error code (`422 validation_error`), never the API's text, which may echo personal data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from resources import lake, lakefs
from resources.lakefs import Location

SENT = "sent"
FAILED = "failed"

SCHEMA = pa.schema([
    pa.field("destination", pa.string(), nullable=False),
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("payload_hash", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # sent | failed
    pa.field("reason", pa.string()),
    pa.field("logged_at", pa.timestamp("us", tz="UTC"), nullable=False),
    # The run's partition range, for the operator. For contacts it is the run that sent them, not
    # where the buyer's orders are: contact syncs consider the whole lake, whatever the partition.
    pa.field("partition", pa.string()),
    pa.field("run_id", pa.string()),
])


@dataclass(frozen=True)
class RecordState:
    last_sent_hash: str | None  # hash of the latest payload the destination accepted
    status: str  # status of the latest row
    reason: str | None
    last_sent_at: datetime | None = None  # when the destination last accepted it


def log_dir(destination: str, lake_root: Path | str | None = None) -> Location:
    return lake.sync_log_dir(destination, lake_root)


def _files(directory: Location) -> list[Location]:
    return lakefs.glob(directory, "part-*.parquet")


def _read_table(directory: Location) -> pa.Table:
    # A concurrent compaction may delete a file between listing and reading; its rows are already in
    # the compacted file by then, so list again.
    for _ in range(5):
        try:
            tables = [lakefs.read_table(f, schema=SCHEMA) for f in _files(directory)]
        except FileNotFoundError:
            continue
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    raise RuntimeError(f"sync log {directory} kept changing while being read; retry the run")


def _order_key(row: dict) -> tuple:
    return (row["logged_at"], 0 if row["status"] == FAILED else 1)


class SyncLog:
    """One destination's log. `state()` reads it; `append()` durably records one batch's outcome."""

    def __init__(self, destination: str, lake_root: Path | str | None = None) -> None:
        self.destination = destination
        self.directory = log_dir(destination, lake_root)
        self._lake_root = lake_root

    def rows(self) -> list[dict]:
        return _read_table(self.directory).to_pylist()

    def exists(self) -> bool:
        """Whether this destination has any log at all (a lost or never-written log has none)."""
        return bool(_files(self.directory))

    def state(self) -> dict[str, RecordState]:
        latest: dict[str, dict] = {}
        last_sent: dict[str, dict] = {}
        for row in self.rows():
            rid = row["record_id"]
            key = _order_key(row)
            if rid not in latest or key >= _order_key(latest[rid]):
                latest[rid] = row
            if row["status"] == SENT and (rid not in last_sent or key >= _order_key(last_sent[rid])):
                last_sent[rid] = row
        return {
            rid: RecordState(last_sent[rid]["payload_hash"] if rid in last_sent else None, row["status"],
                             row["reason"], last_sent[rid]["logged_at"] if rid in last_sent else None)
            for rid, row in latest.items()
        }

    def append(self, entries: Iterable[tuple[str, str, str, str | None]], *, partition: str | None = None,
               run_id: str | None = None) -> int:
        """Record (record_id, payload_hash, status, reason) rows durably; returns how many."""
        now = datetime.now(UTC)
        rows = [
            {"destination": self.destination, "record_id": rid, "payload_hash": h, "status": status,
             "reason": reason, "logged_at": now, "partition": partition, "run_id": run_id}
            for rid, h, status, reason in entries
        ]
        if not rows:
            return 0
        stamp = now.strftime("%Y%m%dT%H%M%S%f")
        lakefs.write_table(pa.Table.from_pylist(rows, schema=SCHEMA),
                           lakefs.join(self.directory, f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"))
        return len(rows)

    def compact(self, forget: Iterable[str] = ()) -> None:
        """Fold all files into one, keeping per record its latest row and its latest accepted row.

        `forget`: record ids to drop for good (ids of a retired scheme, once carried over)."""
        dropped = set(forget)
        with lake.lake_lock(f"sync_log_{self.destination}", self._lake_root):
            files = _files(self.directory)
            if len(files) <= 1 and not dropped:
                return
            table = pa.concat_tables([lakefs.read_table(f, schema=SCHEMA) for f in files]) if files else None
            if table is None:
                return
            latest: dict[str, dict] = {}
            last_sent: dict[str, dict] = {}
            for row in table.to_pylist():
                rid, key = row["record_id"], _order_key(row)
                if rid in dropped:
                    continue
                if rid not in latest or key >= _order_key(latest[rid]):
                    latest[rid] = row
                if row["status"] == SENT and (rid not in last_sent or key >= _order_key(last_sent[rid])):
                    last_sent[rid] = row
            keep = list(last_sent.values()) + [r for rid, r in latest.items() if last_sent.get(rid) is not r]
            keep.sort(key=lambda r: (r["record_id"], _order_key(r)))
            if not keep:
                keep_table = SCHEMA.empty_table()
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            else:
                keep_table = pa.Table.from_pylist(keep, schema=SCHEMA)
                stamp = max(r["logged_at"] for r in keep).strftime("%Y%m%dT%H%M%S%f")
            # Named after its newest row so it sorts before anything appended later.
            lakefs.write_table(keep_table,
                               lakefs.join(self.directory, f"part-{stamp}-compact{uuid.uuid4().hex[:8]}.parquet"))
            for f in files:
                lakefs.remove(f)
