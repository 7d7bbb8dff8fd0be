"""Unit tests of the lake writer, the quarantine, the conversion helpers and the warehouse catalog,
with synthetic records (no HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import tickettailor as tt
from assets.landing.checks import duplicate_key_count
from assets.landing.convert import RecordError, req, to_bool, to_decimal, to_id, to_money_minor, ts_text, ts_unix
from assets.landing.lander import EntityLander, EntityResult
from assets.landing.materialize import materialize_result
from assets.landing.snapshot import day_ranges, land_snapshot
from assets.providers import entities as provider_entities
from resources import lake, settings
from resources.entity import EntitySpec
from resources.warehouse import create_raw_views, publish_catalog

PROJECT = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 10)
SPEC = EntitySpec(
    provider="unit", entity="things", primary_key=("id",), money_minor_columns=("amount",),
    columns=pa.schema([pa.field("id", pa.string(), nullable=False), ("amount", pa.int64()),
                       ("at", pa.timestamp("us", tz="UTC"))]),
)


def _convert(rec: dict) -> dict:
    return {"id": to_id(req(rec, "id"), "id"),
            "amount": to_money_minor(rec.get("amount"), "amount"),
            "at": ts_unix(rec.get("at"), "at")}


def _records(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"t{i}", "amount": i * 100, "at": 1773100800 + i} for i in range(start, start + n)]


def test_writer_streams_pages_into_row_groups_and_renames_atomically(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    loaded = datetime(2026, 3, 11, tzinfo=UTC)
    with EntityLander(SPEC, [DAY], loaded, root, row_group_rows=250) as lander:
        for page_start in range(0, 1000, 100):
            lander.add_page(_records(100, page_start), _convert, DAY)
        # Nothing visible before the commit: readers see the old partition (here: none).
        assert not lake.partition_path(SPEC, DAY, root).exists()
        result = lander.commit()
    path = lake.partition_path(SPEC, DAY, root)
    assert path == root / "raw" / "unit" / "things" / "date=2026-03-10" / "part-0.parquet"
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == 1000 == result.row_count
    assert pf.num_row_groups == 4  # 1000 rows in groups of 250: streamed, not one big table
    assert pf.schema_arrow.equals(SPEC.schema)
    table = pf.read()
    assert table.column("amount").to_pylist()[:3] == [0, 100, 200]
    assert set(table.column("_partition").to_pylist()) == {DAY}
    assert set(table.column("_loaded_at").to_pylist()) == {loaded}
    assert json.loads(table.column("_raw")[5].as_py()) == {"id": "t5", "amount": 500, "at": 1773100805}
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]  # no temp file left behind


def test_empty_day_writes_an_empty_typed_file(tmp_path: Path) -> None:
    with EntityLander(SPEC, [DAY, date(2026, 3, 11)], root=tmp_path) as lander:
        lander.add_page(_records(3), _convert, DAY)
        lander.commit()
    empty = pq.read_table(lake.partition_path(SPEC, date(2026, 3, 11), tmp_path))
    assert empty.num_rows == 0 and empty.schema.equals(SPEC.schema)
    assert lake.landed_days(SPEC, tmp_path) == [DAY, date(2026, 3, 11)]


def test_rerun_replaces_exactly_its_partition(tmp_path: Path) -> None:
    for day, n in ((DAY, 5), (date(2026, 3, 11), 7)):
        with EntityLander(SPEC, [day], root=tmp_path) as lander:
            lander.add_page(_records(n), _convert, day)
            lander.commit()
    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(2, 100), _convert, DAY)
        lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["t100", "t101"]
    assert lake.read_partition(SPEC, date(2026, 3, 11), tmp_path).num_rows == 7


def test_an_exception_mid_write_keeps_the_previous_partition(tmp_path: Path) -> None:
    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(4), _convert, DAY)
        lander.commit()
    with pytest.raises(RuntimeError), EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(50, 10), _convert, DAY)
        raise RuntimeError("provider went away mid-partition")
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["t0", "t1", "t2", "t3"]
    assert [p.name for p in lake.partition_dir(SPEC, DAY, tmp_path).iterdir()] == ["part-0.parquet"]


@pytest.mark.parametrize("step", ["lake.before_rename", "lake.after_rename"])
def test_killed_process_leaves_a_whole_partition(tmp_path: Path, step: str) -> None:
    """The process dies (os._exit, no cleanup) at the named step of a re-run: the partition is
    either entirely the previous one (before the rename) or entirely the new one (after)."""
    root = tmp_path / "lake"
    with EntityLander(SPEC, [DAY], root=root) as lander:
        lander.add_page(_records(4), _convert, DAY)
        lander.commit()
    script = textwrap.dedent(f"""
        import pyarrow as pa
        from datetime import date
        from assets.landing.lander import EntityLander
        from resources.entity import EntitySpec
        from tests.test_lake import SPEC, _convert, _records
        with EntityLander(SPEC, [date(2026, 3, 10)], root={str(root)!r}, row_group_rows=100) as lander:
            for start in range(0, 1000, 100):
                lander.add_page(_records(100, 1000 + start), _convert, date(2026, 3, 10))
            lander.commit()
        print("not reached if crashed before the end")
    """)
    env = {**os.environ, lake.CRASH_ENV: step}
    proc = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == lake.CRASH_EXIT_CODE, proc.stderr
    ids = lake.read_partition(SPEC, DAY, root).column("id").to_pylist()
    if step == "lake.before_rename":
        assert ids == ["t0", "t1", "t2", "t3"]
    else:
        assert ids == [f"t{i}" for i in range(1000, 2000)]
    # A temp file may be left behind; it is never visible as part of the partition.
    con = duckdb.connect()
    glob = str(root / "raw" / "unit" / "things" / "date=*" / "*.parquet")
    assert con.execute(f"select count(*) from read_parquet('{glob}')").fetchone()[0] == len(ids)


def test_bad_records_go_to_quarantine_and_the_rest_lands(tmp_path: Path) -> None:
    page = _records(3) + [{"amount": 5}, {"id": "bad-type", "amount": "12"}, {"id": "frac", "amount": 12.5},
                          {"id": "ok-float", "amount": 700.0}]
    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        accepted = lander.add_page(page, _convert, DAY)
        result = lander.commit()
    assert accepted == 4 and result.row_count == 4 and result.quarantine_count == 3
    assert lake.read_partition(SPEC, DAY, tmp_path).column("amount").to_pylist() == [0, 100, 200, 700]
    q = lake.read_partition(SPEC, DAY, tmp_path, area="quarantine").to_pylist()
    reasons = {json.loads(r["_raw"]).get("id"): r["reason"] for r in q}
    assert "missing key 'id'" in reasons[None]
    assert "expected" in reasons["bad-type"] or "integral" in reasons["bad-type"]
    assert "integral minor units" in reasons["frac"]
    assert {r["provider"] for r in q} == {"unit"} and {r["_partition"] for r in q} == {DAY}
    # A clean re-run removes the day's quarantine file: quarantine describes the current partition.
    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(3), _convert, DAY)
        lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path, area="quarantine") is None


def test_rows_arrow_rejects_are_quarantined_one_by_one(tmp_path: Path) -> None:
    def loose(rec: dict) -> dict:  # a converter that lets a wrong type through to Arrow
        return {"id": rec["id"], "amount": rec["amount"], "at": None}

    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page([{"id": "a", "amount": 1}, {"id": "b", "amount": "x"}, {"id": "c", "amount": 3}], loose, DAY)
        result = lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["a", "c"]
    assert result.quarantine_count == 1


def test_records_outside_the_window_are_quarantined_not_landed_elsewhere(tmp_path: Path) -> None:
    with EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(2), _convert, lambda row: row["at"].date() if row["id"] == "t0" else date(2026, 1, 1))
        result = lander.commit()
    assert result.row_count == 1 and result.quarantine_count == 1
    assert lake.landed_days(SPEC, tmp_path) == [DAY]



def test_a_long_window_shares_one_memory_budget_across_its_day_writers(tmp_path: Path) -> None:
    """A 60-day window whose days never fill a row group on their own would buffer every day at once;
    the lander keeps the days' buffers together under its budget and still lands every row once."""
    days = [DAY + timedelta(days=i) for i in range(60)]
    budget = 48 * 1024
    peak = 0
    with EntityLander(SPEC, days, root=tmp_path, budget=lake.BufferBudget(budget)) as lander:
        for page in range(40):  # each page spreads 120 rows over all 60 days
            records = _records(120, start=page * 120)
            lander.add_page(records, _convert, lambda row: days[int(row["id"][1:]) % len(days)])
            peak = max(peak, lander.budget.pending_bytes)
            assert lander.budget.pending_bytes <= budget
        result = lander.commit()
    assert result.row_count == 4800 and peak > budget // 2  # the budget was actually exercised
    for i, day in enumerate(days):
        table = lake.read_partition(SPEC, day, tmp_path)
        assert sorted(table.column("id").to_pylist()) == sorted(f"t{n}" for n in range(i, 4800, len(days)))
    # early flushes made more, smaller row groups than the 60 files would otherwise have
    assert sum(pq.ParquetFile(lake.partition_path(SPEC, d, tmp_path)).num_row_groups for d in days) > len(days)


def test_writers_of_different_entities_share_one_budget(tmp_path: Path) -> None:
    """Like Ticket Tailor's orders, line items and issued tickets, writers that fill from the same
    pages share one bound: their buffers together never pass it, whatever their own row-group size."""
    other = EntitySpec(provider="unit", entity="others", primary_key=("id",), columns=SPEC.columns)
    budget = lake.BufferBudget(40 * 1024)
    writers = [lake.PartitionWriter(s, DAY, tmp_path, row_group_rows=10**6, row_group_bytes=10**9, budget=budget)
               for s in (SPEC, other)]
    loaded = datetime(2026, 3, 11, tzinfo=UTC)
    for page in range(30):
        for i, writer in enumerate(writers):
            rows = [{**_convert(r), "_raw": json.dumps(r), "_loaded_at": loaded, "_partition": DAY}
                    for r in _records(50 * (i + 1), start=page * 100)]
            writer.write_rows(rows)
            assert budget.pending_bytes <= budget.limit
    for writer in writers:
        writer.commit()
    assert budget.pending_bytes == 0
    for spec, per_page in ((SPEC, 50), (other, 100)):
        pf = pq.ParquetFile(lake.partition_path(spec, DAY, tmp_path))
        assert pf.metadata.num_rows == 30 * per_page and pf.num_row_groups > 1  # flushed early, nothing lost


def test_day_spans_cut_consecutive_days_and_break_at_gaps() -> None:
    from resources.partitions import day_spans

    d = [date(2026, 1, 1) + timedelta(days=i) for i in range(70)]
    assert day_spans(d, 31) == [d[:31], d[31:62], d[62:]]
    assert day_spans([d[5], d[0], d[1], d[3]], 31) == [[d[0], d[1]], [d[3]], [d[5]]]
    assert day_spans([], 31) == []
    with pytest.raises(ValueError):
        day_spans(d, 0)


# --- snapshots: an observation of now, written under at most one day ------------------------------

SNAP = EntitySpec(provider="unit", entity="snaps", primary_key=("id",), snapshot=True,
                  columns=SPEC.columns)
D1, D2, D3 = date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)
LATER = date(2026, 4, 20)  # "today" for a backfill of D1..D3


class _Pages:
    """A provider's current state as pages; counts how often it was fetched."""

    def __init__(self, records: list[dict]) -> None:
        self.records, self.calls = records, 0

    def __call__(self) -> list[list[dict]]:
        self.calls += 1
        return [self.records[:2], self.records[2:]]


def _snapshot(days: list[date], records: list[dict], today: date, root: Path,
              log: list[str] | None = None) -> tuple[EntityResult, _Pages]:
    pages = _Pages(records)
    loaded = datetime.combine(today, datetime.min.time(), UTC)
    result = land_snapshot(SNAP, days, pages, _convert, root, loaded, today,
                                   log.append if log is not None else None)
    return result, pages


def _ids(day: date, root: Path) -> list[str]:
    return sorted(lake.read_partition(SNAP, day, root).column("id").to_pylist())


def test_past_window_writes_only_its_last_day_and_keeps_an_earlier_snapshot_byte_for_byte(tmp_path: Path) -> None:
    # A genuine snapshot taken on D2 itself (today == D2): written under D2.
    taken_on_d2, _ = _snapshot([D2], _records(3), today=D2, root=tmp_path)
    assert taken_on_d2.snapshot.target == D2 and _ids(D2, tmp_path) == ["t0", "t1", "t2"]
    before = lake.partition_path(SNAP, D2, tmp_path).read_bytes()

    # Weeks later, a backfill of D1..D3 sees a different state of the API.
    log: list[str] = []
    result, pages = _snapshot([D1, D2, D3], _records(5, 10), today=LATER, root=tmp_path, log=log)
    assert pages.calls == 1
    assert lake.landed_days(SNAP, tmp_path) == [D2, D3]  # D1 gets no file, not even an empty one
    assert not lake.partition_dir(SNAP, D1, tmp_path).exists()
    assert lake.partition_path(SNAP, D2, tmp_path).read_bytes() == before  # history untouched
    assert _ids(D3, tmp_path) == ["t10", "t11", "t12", "t13", "t14"]
    assert set(lake.read_partition(SNAP, D3, tmp_path).column("_partition").to_pylist()) == {D3}
    assert result.row_count == 5 and result.rows == {D3: 5}
    plan = result.snapshot
    assert (plan.target, plan.kept, plan.absent) == (D3, (D2,), (D1,))
    # One log line for the days without a new file, saying why.
    assert len(log) == 1
    assert "can only be taken on their own day" in log[0]
    assert str(D1) in log[0] and str(D2) in log[0] and "absent" in log[0] and "kept" in log[0]


def test_past_window_whose_last_day_has_a_snapshot_writes_nothing_and_does_not_fetch(tmp_path: Path) -> None:
    _snapshot([D3], _records(2), today=D3, root=tmp_path)
    before = lake.partition_path(SNAP, D3, tmp_path).read_bytes()
    log: list[str] = []
    result, pages = _snapshot([D1, D2, D3], _records(4, 50), today=LATER, root=tmp_path, log=log)
    assert pages.calls == 0
    assert lake.landed_days(SNAP, tmp_path) == [D3]
    assert lake.partition_path(SNAP, D3, tmp_path).read_bytes() == before
    assert result.row_count == 0 and result.paths == []
    assert (result.snapshot.target, result.snapshot.kept, result.snapshot.absent) == (None, (D3,), (D1, D2))
    assert len(log) == 1 and "nothing written" in log[0]


def test_rerunning_a_past_day_that_has_a_snapshot_keeps_it(tmp_path: Path) -> None:
    _snapshot([D2], _records(3), today=D2, root=tmp_path)
    path = lake.partition_path(SNAP, D2, tmp_path)
    before = path.read_bytes()
    for _ in range(2):  # and again: idempotent
        result, pages = _snapshot([D2], _records(7, 100), today=LATER, root=tmp_path)
        assert pages.calls == 0 and result.row_count == 0
        assert result.snapshot.kept == (D2,) and result.snapshot.target is None
        assert path.read_bytes() == before


def test_window_containing_today_writes_today_only(tmp_path: Path) -> None:
    _snapshot([D1], _records(2), today=D1, root=tmp_path)
    before = lake.partition_path(SNAP, D1, tmp_path).read_bytes()
    log: list[str] = []
    result, _ = _snapshot([D1, D2, D3], _records(4, 20), today=D2, root=tmp_path, log=log)
    # Today (D2) is written even though the window's last day (D3) is empty: D3 has not happened.
    assert lake.landed_days(SNAP, tmp_path) == [D1, D2]
    assert _ids(D2, tmp_path) == ["t20", "t21", "t22", "t23"]
    assert lake.partition_path(SNAP, D1, tmp_path).read_bytes() == before
    assert (result.snapshot.target, result.snapshot.kept, result.snapshot.absent) == (D2, (D1,), (D3,))
    assert result.row_count == 4 and len(log) == 1
    # Re-running today replaces today's snapshot with the newer observation.
    _snapshot([D1, D2, D3], _records(1, 90), today=D2, root=tmp_path)
    assert _ids(D2, tmp_path) == ["t90"]
    assert lake.partition_path(SNAP, D1, tmp_path).read_bytes() == before


def test_single_day_window_of_today_logs_nothing_and_an_empty_api_writes_an_empty_file(tmp_path: Path) -> None:
    log: list[str] = []
    result, _ = _snapshot([D3], [], today=D3, root=tmp_path, log=log)
    # Taken, nothing existed: that is an observation, so it is an empty typed file.
    assert lake.read_partition(SNAP, D3, tmp_path).num_rows == 0
    assert result.snapshot.target == D3 and log == []


def test_a_year_long_backfill_lands_one_copy_not_one_per_day(tmp_path: Path) -> None:
    year = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    result, pages = _snapshot(year, _records(6), today=LATER, root=tmp_path)
    assert pages.calls == 1
    assert lake.landed_days(SNAP, tmp_path) == [year[-1]]
    assert result.row_count == 6
    assert len(result.snapshot.absent) == 364
    assert day_ranges(result.snapshot.absent) == f"{year[0]}..{year[-2]}"


def test_snapshot_materialization_metadata_says_what_was_written_and_kept(tmp_path: Path) -> None:
    _snapshot([D2], _records(3), today=D2, root=tmp_path)
    result, _ = _snapshot([D1, D2, D3], _records(5, 10), today=LATER, root=tmp_path)
    meta = {k: getattr(v, "value", v) for k, v in materialize_result(result).metadata.items()}
    assert meta["snapshot_written_to"] == D3.isoformat()
    assert meta["snapshot_kept_days"] == 1 and meta["snapshot_absent_days"] == 1
    assert meta["snapshot_kept"] == D2.isoformat()
    assert meta["dagster/row_count"] == 5
    assert meta["rows_by_day"] == {D3.isoformat(): 5}


def test_snapshots_on_several_days_read_through_the_raw_view_and_dedup_to_the_latest(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    first = [{"id": "ev_1", "name": "old name", "start": {"unix": 1773100800}},
             {"id": "ev_2", "name": "gone later", "start": {"unix": 1773100800}}]
    now = [{"id": "ev_1", "name": "new name", "start": {"unix": 1773100800}},
           {"id": "ev_3", "name": "added", "start": {"unix": 1773187200}}]

    class Client:
        def __init__(self, pages: list[dict]) -> None:
            self.pages = pages

        def iter_events(self):
            yield self.pages

    tt.land_events(Client(first), [D2], root, datetime(2026, 3, 9, 6, tzinfo=UTC), today=D2)
    tt.land_events(Client(now), [D1, D2, D3], root, datetime(2026, 4, 20, 6, tzinfo=UTC), today=LATER)
    con = duckdb.connect()
    create_raw_views(con, root)
    by_day = dict(con.execute("select _partition, count(*) from raw.tickettailor_events group by 1").fetchall())
    assert by_day == {D2: 2, D3: 2}
    # What dbt staging's `latest_by_key` (macros/staging_helpers.sql) keeps: the latest snapshot per id.
    latest = dict(con.execute("""
        select id, name from raw.tickettailor_events
        qualify row_number() over (partition by id order by _loaded_at desc, _partition desc, _raw desc) = 1
    """).fetchall())
    assert latest == {"ev_1": "new name", "ev_2": "gone later", "ev_3": "added"}
    landed = con.execute("select partition_date from raw.landed_partitions where asset = 'tickettailor_events' "
                         "order by 1").fetchall()
    assert [d for (d,) in landed] == [D2, D3]


# --- conversion helpers ---------------------------------------------------------------------------


def test_timestamps_are_parsed_to_utc() -> None:
    # Sympla sends local Sao Paulo time without offset; March 2026 is UTC-3 (no DST since 2019).
    assert ts_text("2026-03-02 21:00:00", "x", "America/Sao_Paulo") == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert ts_text("2026-03-02 21:00:00", "x", "UTC") == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert ts_text("2018-09-10T10:21:10-03:00", "x") == datetime(2018, 9, 10, 13, 21, 10, tzinfo=UTC)
    assert ts_text("2023-09-21T06:40:17.932Z", "x") == datetime(2023, 9, 21, 6, 40, 17, 932000, tzinfo=UTC)
    assert ts_unix(1587042691, "x") == datetime(2020, 4, 16, 13, 11, 31, tzinfo=UTC)
    with pytest.raises(RecordError):
        ts_text("yesterday", "x")


def test_money_stays_exact() -> None:
    assert to_decimal(0.29, "x") == Decimal("0.29")  # float 0.29 * 100 would be 28.999...
    assert to_decimal(123.5, "x") == Decimal("123.50")
    with pytest.raises(RecordError):
        to_decimal(1.005, "x")  # more precision than reais have: quarantined, never rounded
    assert to_money_minor(850000, "x") == 850000
    with pytest.raises(RecordError, match="integral minor units"):
        to_money_minor(12.5, "x")
    assert to_bool("false", "x") is False and to_bool(1, "x") is True


def test_duplicate_key_count() -> None:
    t = pa.table({"a": [1, 1, 2, 3, 3, 3], "b": ["x", "y", "x", "x", "x", "x"]})
    assert duplicate_key_count(t, ["a"]) == 2
    assert duplicate_key_count(t, ["a", "b"]) == 1


# --- warehouse ------------------------------------------------------------------------------------


def test_every_declared_entity_has_a_typed_view_even_before_landing(tmp_path: Path) -> None:
    con = duckdb.connect()
    names = create_raw_views(con, tmp_path / "lake", entities=provider_entities())
    specs = {e.name: e for e in provider_entities()}
    assert {n.removeprefix("raw.") for n in names} == set(specs) | {"quarantine", "landed_partitions"}
    cols = dict(con.execute("select column_name, data_type from information_schema.columns "
                        "where table_schema='raw' and table_name='tickettailor_orders'").fetchall())
    assert cols["created_at"] == "TIMESTAMP WITH TIME ZONE" and cols["total"] == "BIGINT"
    assert cols["_partition"] == "DATE" and cols["_raw"] == "VARCHAR"
    sympla = dict(con.execute("select column_name, data_type from information_schema.columns "
                          "where table_schema='raw' and table_name='sympla_orders'").fetchall())
    assert sympla["order_total_sale_price"] == "DECIMAL(18,2)"
    assert con.execute("select count(*) from raw.sympla_orders").fetchone() == (0,)


def test_landed_entity_view_reads_its_partitions(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    order = {"id": "or_1", "status": "completed", "currency": {"code": "gbp"}, "total": 1250,
             "created_at": 1773100800, "event_summary": {"id": "ev_1"}}
    with EntityLander(tt.ORDERS, [DAY], root=root) as lander:
        lander.add_page([order], tt.convert_order, DAY)
        lander.commit()
    con = duckdb.connect()
    create_raw_views(con, root)
    row = con.execute("select id, total, created_at, _partition from raw.tickettailor_orders").fetchone()
    assert row[:2] == ("or_1", 1250) and row[3] == DAY
    assert row[2] == datetime(2026, 3, 10, tzinfo=UTC)


def test_publish_swaps_the_catalog_under_an_open_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    first = publish_catalog(entities=provider_entities())  # as the dbt asset publishes: every entity
    assert first == settings.warehouse_path()
    reader = duckdb.connect(str(first), read_only=True)
    try:
        assert reader.execute("select count(*) from raw.tickettailor_orders").fetchone() == (0,)
        # A dbt export appears as a schema.view after the next publish, while the reader stays open.
        models = data / "lake" / "models" / "marts"
        models.mkdir(parents=True)
        pq.write_table(pa.table({"provider": ["tickettailor"], "orders": [3]}), models / "revenue.parquet")
        publish_catalog()  # a later publisher need not know the entities: the lake kept their schemas
        assert reader.execute("select count(*) from raw.tickettailor_orders").fetchone() == (0,)  # old catalog, fine
    finally:
        reader.close()
    fresh = duckdb.connect(str(first), read_only=True)
    assert fresh.execute("select provider, orders from marts.revenue").fetchall() == [("tickettailor", 3)]
    assert fresh.execute("select count(*) from raw.tickettailor_orders").fetchone() == (0,)
    fresh.close()
    assert not list(data.glob("*.tmp"))
