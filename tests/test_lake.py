"""Unit tests of the lake writer, the quarantine, the conversion helpers and the warehouse catalog,
with synthetic records (no HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import landing
from assets import tickettailor as tt
from pipelines import settings
from resources import lake
from resources.warehouse import (
    EntitySpec,
    create_raw_views,
    publish_catalog,
    registered_entities,
)

PROJECT = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 10)
SPEC = EntitySpec(
    provider="unit", entity="things", primary_key=("id",), money_minor_columns=("amount",),
    columns=pa.schema([pa.field("id", pa.string(), nullable=False), ("amount", pa.int64()),
                       ("at", pa.timestamp("us", tz="UTC"))]),
)


def _convert(rec: dict) -> dict:
    return {"id": landing.to_id(landing.req(rec, "id"), "id"),
            "amount": landing.to_money_minor(rec.get("amount"), "amount"),
            "at": landing.ts_unix(rec.get("at"), "at")}


def _records(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"t{i}", "amount": i * 100, "at": 1773100800 + i} for i in range(start, start + n)]


def test_writer_streams_pages_into_row_groups_and_renames_atomically(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    loaded = datetime(2026, 3, 11, tzinfo=UTC)
    with landing.EntityLander(SPEC, [DAY], loaded, root, row_group_rows=250) as lander:
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
    with landing.EntityLander(SPEC, [DAY, date(2026, 3, 11)], root=tmp_path) as lander:
        lander.add_page(_records(3), _convert, DAY)
        lander.commit()
    empty = pq.read_table(lake.partition_path(SPEC, date(2026, 3, 11), tmp_path))
    assert empty.num_rows == 0 and empty.schema.equals(SPEC.schema)
    assert lake.landed_days(SPEC, tmp_path) == [DAY, date(2026, 3, 11)]


def test_rerun_replaces_exactly_its_partition(tmp_path: Path) -> None:
    for day, n in ((DAY, 5), (date(2026, 3, 11), 7)):
        with landing.EntityLander(SPEC, [day], root=tmp_path) as lander:
            lander.add_page(_records(n), _convert, day)
            lander.commit()
    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(2, 100), _convert, DAY)
        lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["t100", "t101"]
    assert lake.read_partition(SPEC, date(2026, 3, 11), tmp_path).num_rows == 7


def test_an_exception_mid_write_keeps_the_previous_partition(tmp_path: Path) -> None:
    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(4), _convert, DAY)
        lander.commit()
    with pytest.raises(RuntimeError), landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(50, 10), _convert, DAY)
        raise RuntimeError("provider went away mid-partition")
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["t0", "t1", "t2", "t3"]
    assert [p.name for p in lake.partition_dir(SPEC, DAY, tmp_path).iterdir()] == ["part-0.parquet"]


@pytest.mark.parametrize("step", ["lake.before_rename", "lake.after_rename"])
def test_killed_process_leaves_a_whole_partition(tmp_path: Path, step: str) -> None:
    """The process dies (os._exit, no cleanup) at the named step of a re-run: the partition is
    either entirely the previous one (before the rename) or entirely the new one (after)."""
    root = tmp_path / "lake"
    with landing.EntityLander(SPEC, [DAY], root=root) as lander:
        lander.add_page(_records(4), _convert, DAY)
        lander.commit()
    script = textwrap.dedent(f"""
        import pyarrow as pa
        from datetime import date
        from assets import landing
        from resources.warehouse import EntitySpec
        from tests.test_lake import SPEC, _convert, _records
        with landing.EntityLander(SPEC, [date(2026, 3, 10)], root={str(root)!r}, row_group_rows=100) as lander:
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
    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
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
    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(3), _convert, DAY)
        lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path, area="quarantine") is None


def test_rows_arrow_rejects_are_quarantined_one_by_one(tmp_path: Path) -> None:
    def loose(rec: dict) -> dict:  # a converter that lets a wrong type through to Arrow
        return {"id": rec["id"], "amount": rec["amount"], "at": None}

    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page([{"id": "a", "amount": 1}, {"id": "b", "amount": "x"}, {"id": "c", "amount": 3}], loose, DAY)
        result = lander.commit()
    assert lake.read_partition(SPEC, DAY, tmp_path).column("id").to_pylist() == ["a", "c"]
    assert result.quarantine_count == 1


def test_records_outside_the_window_are_quarantined_not_landed_elsewhere(tmp_path: Path) -> None:
    with landing.EntityLander(SPEC, [DAY], root=tmp_path) as lander:
        lander.add_page(_records(2), _convert, lambda row: row["at"].date() if row["id"] == "t0" else date(2026, 1, 1))
        result = lander.commit()
    assert result.row_count == 1 and result.quarantine_count == 1
    assert lake.landed_days(SPEC, tmp_path) == [DAY]


# --- conversion helpers ---------------------------------------------------------------------------


def test_timestamps_are_parsed_to_utc() -> None:
    # Sympla sends local Sao Paulo time without offset; March 2026 is UTC-3 (no DST since 2019).
    assert landing.ts_text("2026-03-02 21:00:00", "x", "America/Sao_Paulo") == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert landing.ts_text("2026-03-02 21:00:00", "x", "UTC") == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert landing.ts_text("2018-09-10T10:21:10-03:00", "x") == datetime(2018, 9, 10, 13, 21, 10, tzinfo=UTC)
    assert landing.ts_text("2023-09-21T06:40:17.932Z", "x") == datetime(2023, 9, 21, 6, 40, 17, 932000, tzinfo=UTC)
    assert landing.ts_unix(1587042691, "x") == datetime(2020, 4, 16, 13, 11, 31, tzinfo=UTC)
    with pytest.raises(landing.RecordError):
        landing.ts_text("yesterday", "x")


def test_money_stays_exact() -> None:
    assert landing.to_decimal(0.29, "x") == Decimal("0.29")  # float 0.29 * 100 would be 28.999...
    assert landing.to_decimal(123.5, "x") == Decimal("123.50")
    with pytest.raises(landing.RecordError):
        landing.to_decimal(1.005, "x")  # more precision than reais have: quarantined, never rounded
    assert landing.to_money_minor(850000, "x") == 850000
    with pytest.raises(landing.RecordError, match="integral minor units"):
        landing.to_money_minor(12.5, "x")
    assert landing.to_bool("false", "x") is False and landing.to_bool(1, "x") is True


def test_duplicate_key_count() -> None:
    t = pa.table({"a": [1, 1, 2, 3, 3, 3], "b": ["x", "y", "x", "x", "x", "x"]})
    assert landing.duplicate_key_count(t, ["a"]) == 2
    assert landing.duplicate_key_count(t, ["a", "b"]) == 1


# --- warehouse ------------------------------------------------------------------------------------


def test_every_registered_entity_has_a_typed_view_even_before_landing(tmp_path: Path) -> None:
    con = duckdb.connect()
    names = create_raw_views(con, tmp_path / "lake")
    specs = registered_entities()
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
    with landing.EntityLander(tt.ORDERS, [DAY], root=root) as lander:
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
    first = publish_catalog()
    assert first == settings.warehouse_path()
    reader = duckdb.connect(str(first), read_only=True)
    try:
        assert reader.execute("select count(*) from raw.tickettailor_orders").fetchone() == (0,)
        # A dbt export appears as a schema.view after the next publish, while the reader stays open.
        models = data / "lake" / "models" / "marts"
        models.mkdir(parents=True)
        pq.write_table(pa.table({"provider": ["tickettailor"], "orders": [3]}), models / "revenue.parquet")
        publish_catalog()
        assert reader.execute("select count(*) from raw.tickettailor_orders").fetchone() == (0,)  # old catalog, fine
    finally:
        reader.close()
    fresh = duckdb.connect(str(first), read_only=True)
    assert fresh.execute("select provider, orders from marts.revenue").fetchall() == [("tickettailor", 3)]
    fresh.close()
    assert not list(data.glob("*.tmp"))
