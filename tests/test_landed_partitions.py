"""raw.landed_partitions: which raw partition days are in the lake, in the build database and the
analysts' catalog; and its dbt source, which must not become a Dagster asset."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from assets.dbt import marquee_dbt_models
from assets.landing.lander import EntityLander
from assets.providers import entity
from resources import lake
from resources.warehouse import create_raw_views, publish_catalog

SELECT = "SELECT provider, entity, asset, partition_date FROM raw.landed_partitions ORDER BY ALL"
COLUMNS = [("provider", "VARCHAR"), ("entity", "VARCHAR"), ("asset", "VARCHAR"), ("partition_date", "DATE")]


def _columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute("DESCRIBE raw.landed_partitions").fetchall()]


def _land(root: Path, name: str, day: date, records: list[dict]) -> Path:
    """Land one day of an entity through the real writer (records already typed)."""
    spec = entity(name)
    with EntityLander(spec, [day], datetime(2026, 3, 16, tzinfo=UTC), root=root) as lander:
        if records:
            lander.add_page(records, lambda r: r, day)
        lander.commit()
    return lake.partition_path(spec, day, root)


def test_empty_or_missing_lake_gives_a_typed_empty_view(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty" / "raw").mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        names = create_raw_views(con, root)
        assert "raw.landed_partitions" in names
        assert _columns(con) == COLUMNS
        assert con.execute(SELECT).fetchall() == []
        con.close()


def test_lists_loaded_days_including_empty_ones(tmp_path: Path) -> None:
    # a lake root with `raw` and `date=` in its own path must not confuse the parsing
    root = tmp_path / "raw" / "date=2020-01-01" / "lake"
    empty = _land(root, "sympla_participants", date(2026, 3, 10), [])
    assert pq.read_table(empty).num_rows == 0  # the loaded-but-empty day is an empty file
    _land(root, "tickettailor_issued_tickets", date(2026, 3, 11), [])
    # not partitions: a stray temp file and a second file name (only part-0.parquet marks a load)
    stray = root / "raw" / "sympla" / "participants" / "date=2026-03-12"
    stray.mkdir(parents=True)
    (stray / "part-0.parquet.tmp").write_bytes(b"")
    shutil.copy(empty, stray / "part-1.parquet")

    con = duckdb.connect()
    create_raw_views(con, root)
    assert _columns(con) == COLUMNS
    assert con.execute(SELECT).fetchall() == [
        ("sympla", "participants", "sympla_participants", date(2026, 3, 10)),
        ("tickettailor", "issued_tickets", "tickettailor_issued_tickets", date(2026, 3, 11)),
    ]
    # the view re-lists the lake at every query: a day landed later appears without recreating it
    _land(root, "sympla_participants", date(2026, 3, 9), [])
    assert con.execute(
        "SELECT partition_date FROM raw.landed_partitions WHERE asset = 'sympla_participants' ORDER BY 1"
    ).fetchall() == [(date(2026, 3, 9),), (date(2026, 3, 10),)]
    con.close()


def test_in_the_analysts_catalog(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _land(data / "lake", "sympla_participants", date(2026, 3, 10), [])
    catalog = publish_catalog(data)
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        assert _columns(con) == COLUMNS
        assert con.execute("SELECT asset, partition_date FROM raw.landed_partitions").fetchall() == [
            ("sympla_participants", date(2026, 3, 10))
        ]
    finally:
        con.close()


def test_source_is_no_dagster_asset():
    specs = {s.key: s for s in marquee_dbt_models.specs}
    attendance = specs[dg.AssetKey(["marts", "attendance"])]
    assert {d.asset_key for d in attendance.deps} == {
        dg.AssetKey(["intermediate", "int_tickets"]),
        dg.AssetKey(["intermediate", "int_events"]),
    }
    every_dep = {d.asset_key for s in marquee_dbt_models.specs for d in s.deps}
    assert not any("landed_partitions" in k.to_user_string() for k in every_dep | set(specs))
    # the raw sources still map to their raw assets
    assert dg.AssetKey("tickettailor_issued_tickets") in every_dep
