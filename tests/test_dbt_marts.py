"""dbt marts over hand-written raw fixtures: every expected figure below is computed by hand from
the rows in `_lake_rows()` and the rules in DESIGN.md ("Marts contract"), not read back from SQL.

One full `dbt build` (models + dbt tests) is shared by the module; the incremental test adds two
more runs (an incremental one and a fresh full one) on a changed copy of the lake.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.dbt import export_models, prepare_build_database
from assets.dbt_project import dbt_env
from assets.providers import entities as provider_entities
from resources.pii import open_build_database
from tests.dbt_inprocess import DbtResult, dbt

# runs dbt or the pipeline: left out of `make test-fast`; its module fixture is built once, on one worker
pytestmark = [pytest.mark.pipeline, pytest.mark.xdist_group("test_dbt_marts")]

PII_KEY = "test-pii-key-do-not-use"


def ts(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _rows() -> dict[str, list[tuple[str, datetime, dict[str, Any]]]]:
    """entity -> [(partition day, loaded_at, typed row)]. The story, by hand:

    Campaigns: cmp1000 (email, USD, sent 01-01 12:00), cmp1001 (sms, JPY, sent 01-02 00:00),
    cmp1002 (email, BRL, sent 01-03 00:00, zero clicks), cmp1003 (sms, GBP, sent 01-04, nothing).
    """
    early = ts("2025-01-05 06:00:00")
    late = ts("2025-01-11 06:00:00")
    tt_event_1 = {"event_id": "ev_1", "event_name": "Tulip Fest", "event_start_at": ts("2025-01-10 18:00:00")}
    return {
        "tickettailor_events": [
            (
                "2025-01-05",
                early,
                {
                    "id": "ev_1",
                    "name": "Tulip Fest (draft name)",
                    "currency": "gbp",
                    "start_at": ts("2025-01-10 18:00:00"),
                    "status": "draft",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "ev_1",
                    "name": "Tulip Fest",
                    "currency": "gbp",
                    "start_at": ts("2025-01-10 18:00:00"),
                    "status": "published",
                    "start_iso": "2025-01-10T18:00:00+00:00",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "ev_2",
                    "name": "Tokyo Night",
                    "currency": "jpy",
                    "start_at": ts("2099-01-01 10:00:00"),
                    "status": "on_sale",
                },
            ),
        ],
        "tickettailor_orders": [
            # an older version of or_1 (pending, no refund) that the later load supersedes
            (
                "2025-01-02",
                ts("2025-01-02 11:00:00"),
                {
                    "id": "or_1",
                    **tt_event_1,
                    "status": "pending",
                    "currency": "gbp",
                    "total": 2500,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-02 10:00:00"),
                    "referral_tag": "  CMP1000 ",
                    "buyer_email": " John@Example.com ",
                    "buyer_phone": "+44 7123 456789",
                },
            ),
            (
                "2025-01-02",
                early,
                {
                    "id": "or_1",
                    **tt_event_1,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 2500,
                    "refund_amount": 500,
                    "created_at": ts("2025-01-02 10:00:00"),
                    "referral_tag": "  CMP1000 ",
                    "buyer_email": " John@Example.com ",
                    "buyer_phone": "+44 7123 456789",
                },
            ),
            (
                "2025-01-02",
                early,
                {
                    "id": "or_2",
                    **tt_event_1,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 1000,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-02 23:30:00"),
                    "referral_tag": "cmp1000",
                },
            ),
            (
                "2025-01-01",
                early,  # before cmp1000 was sent: revenue, but not attributed
                {
                    "id": "or_7",
                    **tt_event_1,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 300,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-01 11:00:00"),
                    "referral_tag": "cmp1000",
                },
            ),
            (
                "2025-01-03",
                early,
                {
                    "id": "or_3",
                    **tt_event_1,
                    "status": "pending",
                    "currency": "gbp",
                    "total": 700,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-03 09:00:00"),
                    "referral_tag": "cmp1000",
                },
            ),
            (
                "2025-01-03",
                early,
                {
                    "id": "or_4",
                    **tt_event_1,
                    "status": "cancelled",
                    "currency": "gbp",
                    "total": 900,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-03 09:30:00"),
                    "referral_tag": "cmp1000",
                },
            ),
            (
                "2025-01-03",
                early,
                {
                    "id": "or_5",
                    "event_id": "ev_2",
                    "event_name": "Tokyo Night",
                    "status": "completed",
                    "currency": "jpy",
                    "total": 5000,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-03 05:00:00"),
                    "referral_tag": "CMP1001",
                },
            ),
            (
                "2025-01-08",
                late,  # exactly sent_at + 7 days: outside [sent_at, sent_at + 7d)
                {
                    "id": "or_6",
                    **tt_event_1,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 1200,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-08 12:00:00"),
                    "referral_tag": "cmp1000",
                },
            ),
        ],
        "tickettailor_order_issued_tickets": [
            (
                "2025-01-02",
                early,
                {
                    "id": "it_4",
                    "order_id": "or_1",
                    "event_id": "ev_1",
                    "status": "valid",
                    "checked_in": False,
                    "email": "john@example.com",
                },
            ),
            (
                "2025-01-03",
                early,
                {"id": "it_5", "order_id": "or_5", "event_id": "ev_2", "status": "valid", "checked_in": False},
            ),
        ],
        "tickettailor_issued_tickets": [
            (
                "2025-01-10",
                late,
                {"id": "it_1", "order_id": "or_1", "event_id": "ev_1", "status": "valid", "checked_in": True},
            ),
            (
                "2025-01-10",
                late,
                {"id": "it_2", "order_id": "or_2", "event_id": "ev_1", "status": "valid", "checked_in": False},
            ),
            (
                "2025-01-10",
                late,
                {"id": "it_3", "order_id": "or_2", "event_id": "ev_1", "status": "void", "checked_in": True},
            ),
            # it_4 again, loaded after the event: the late check-in wins over the copy in the order
            (
                "2025-01-10",
                late,
                {"id": "it_4", "order_id": "or_1", "event_id": "ev_1", "status": "valid", "checked_in": True},
            ),
        ],
        "tickettailor_order_line_items": [
            ("2025-01-02", early, {"id": "li_1", "order_id": "or_1", "type": "ticket", "quantity": 2, "total": 2500}),
        ],
        "sympla_events": [
            (
                "2025-01-06",
                late,
                {
                    "id": "sy_1",
                    "name": "Workshop",
                    "start_date": ts("2025-01-06 22:00:00"),
                    "start_date_local": "2025-01-06 19:00:00",
                    "published": True,
                    "cancelled": False,
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "sy_2",
                    "name": "Empty room",
                    "start_date": ts("2025-01-07 22:00:00"),
                    "published": True,
                    "cancelled": False,
                },
            ),
            # starts 01:00 UTC on 2099-02-01 (22:00 on 01-31 in Sao Paulo): its ticket day is 02-01
            (
                "2025-01-06",
                late,
                {
                    "id": "sy_3",
                    "name": "Future talk",
                    "start_date": ts("2099-02-01 01:00:00"),
                    "start_date_local": "2099-01-31 22:00:00",
                    "published": True,
                    "cancelled": False,
                },
            ),
            # its start day (01-08) was never loaded: no attendance row, rather than misleading zeros
            (
                "2025-01-06",
                late,
                {
                    "id": "sy_4",
                    "name": "Not loaded yet",
                    "start_date": ts("2025-01-08 22:00:00"),
                    "published": True,
                    "cancelled": False,
                },
            ),
        ],
        "sympla_orders": [
            # 23:00 in Sao Paulo on 01-03, but 02:00 UTC on 01-04: order_date is the UTC day
            (
                "2025-01-04",
                early,
                {
                    "id": "S1",
                    "event_id": "sy_1",
                    "order_status": "APPROVED",
                    "order_total_sale_price": "0.29",
                    "order_date": ts("2025-01-04 02:00:00"),
                    "utm_campaign": "Cmp1002 ",
                    "buyer_email": "Maria@Example.com",
                    "_raw": {"invoice_info": {"doc_number": "142.536.789-55"}},
                },
            ),
            (
                "2025-01-04",
                early,
                {
                    "id": "S2",
                    "event_id": "sy_1",
                    "order_status": "APPROVED",
                    "order_total_sale_price": "123.5",
                    "order_date": ts("2025-01-04 10:00:00"),
                },
            ),
            (
                "2025-01-04",
                early,
                {
                    "id": "S3",
                    "event_id": "sy_1",
                    "order_status": "PENDING",
                    "order_total_sale_price": "50.00",
                    "order_date": ts("2025-01-04 11:00:00"),
                    "utm_campaign": "cmp1002",
                },
            ),
            (
                "2025-01-05",
                early,
                {
                    "id": "S4",
                    "event_id": "sy_1",
                    "order_status": "CANCELLED",
                    "order_total_sale_price": "10.00",
                    "order_date": ts("2025-01-05 11:00:00"),
                    "utm_campaign": "cmp1002",
                },
            ),
        ],
        # Partitions by event start day (UTC): 01-06 (sy_1) with rows; 01-07 (sy_2) and 2099-02-01
        # (sy_3) loaded but empty (None = an empty typed file); 01-08 (sy_4) never loaded.
        # Ticket Tailor's are 01-10 only (ev_1): 2099-01-01 (ev_2) was never loaded, even though
        # ev_2's ticket it_5 arrived inside its order.
        "sympla_participants": [
            ("2025-01-07", late, None),
            ("2099-02-01", late, None),
            (
                "2025-01-06",
                late,
                {
                    "id": 101,
                    "event_id": "sy_1",
                    "order_id": "S1",
                    "order_status": "A",
                    "check_in": True,
                    "email": "maria@example.com",
                    "custom_form": [{"id": 1, "name": "CPF", "value": "142.536.789-55"}],
                },
            ),
            (
                "2025-01-06",
                late,
                {"id": 102, "event_id": "sy_1", "order_id": "S2", "order_status": "A", "check_in": False},
            ),
            (
                "2025-01-06",
                late,
                {"id": 103, "event_id": "sy_1", "order_id": "S2", "order_status": "A", "check_in": True},
            ),
            (
                "2025-01-06",
                late,
                {"id": 104, "event_id": "sy_1", "order_id": "S4", "order_status": "C", "check_in": True},
            ),
        ],
        "cymbal_campaign_analytics": [
            (
                "2025-01-05",
                early,
                {
                    "id": "cmp1000",
                    "name": "Early bird",
                    "type": "email",
                    "sent_at": ts("2025-01-01 12:00:00"),
                    "num_links_clicked": 10,
                    "attributed_revenue": 1111,
                    "currency_code": "USD",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "cmp1000",
                    "name": "Early bird",
                    "type": "email",
                    "sent_at": ts("2025-01-01 12:00:00"),
                    "num_links_clicked": 20,
                    "attributed_revenue": 9999,
                    "currency_code": "USD",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "cmp1001",
                    "name": "Tokyo SMS",
                    "type": "sms",
                    "sent_at": ts("2025-01-02 00:00:00"),
                    "num_links_clicked": 4,
                    "attributed_revenue": 5000,
                    "currency_code": "JPY",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "cmp1002",
                    "name": "Workshop promo",
                    "type": "email",
                    "sent_at": ts("2025-01-03 00:00:00"),
                    "num_links_clicked": 0,
                    "attributed_revenue": 29,
                    "currency_code": "BRL",
                },
            ),
            (
                "2025-01-06",
                late,
                {
                    "id": "cmp1003",
                    "name": "Silent",
                    "type": "sms",
                    "sent_at": ts("2025-01-04 00:00:00"),
                    "num_links_clicked": 0,
                    "attributed_revenue": 0,
                    "currency_code": "GBP",
                },
            ),
        ],
        "cymbio_variants": [
            ("2025-01-06", late, {"id": 1, "sku": "A", "title": "Tee", "currency": "USD", "retail_price": 2000}),
        ],
        "cymbio_returns": [
            # 1772 landed twice (a crash between landing and acknowledging): counted once
            ("2025-01-05", early, {"return_id": 1772, "reason_code": "other", "created_at": ts("2025-01-04 06:40:17")}),
            ("2025-01-06", late, {"return_id": 1772, "reason_code": "other", "created_at": ts("2025-01-04 06:40:17")}),
            (
                "2025-01-06",
                late,
                {"return_id": 1773, "reason_code": " Damaged", "created_at": ts("2025-01-05 06:40:17")},
            ),
        ],
        "cymbio_return_lines": [
            (
                "2025-01-05",
                early,
                {"return_id": 1772, "line_number": 1, "sku": "A", "ordered_quantity": 1, "returned_quantity": 1},
            ),
            (
                "2025-01-05",
                early,
                {"return_id": 1772, "line_number": 2, "sku": "B", "ordered_quantity": 1, "returned_quantity": 1},
            ),
            (
                "2025-01-06",
                late,
                {"return_id": 1772, "line_number": 1, "sku": "A", "ordered_quantity": 1, "returned_quantity": 1},
            ),
            (
                "2025-01-06",
                late,
                {"return_id": 1772, "line_number": 2, "sku": "B", "ordered_quantity": 1, "returned_quantity": 1},
            ),
            (
                "2025-01-06",
                late,
                {"return_id": 1773, "line_number": 1, "sku": "A", "ordered_quantity": 2, "returned_quantity": 1},
            ),
        ],
    }


def write_lake(
    lake: Path, rows: dict[str, list[tuple[str, datetime, dict[str, Any]]]], file_name: str = "part-0"
) -> None:
    """Write rows as raw Parquet exactly as the landing assets do: the registered schema, one file
    per (entity, partition day). Rows of one partition with different loads go in separate files.
    A row `None` stands for a loaded day without records: the partition gets an empty typed file."""
    specs = {e.name: e for e in provider_entities()}
    for name, entries in rows.items():
        spec = specs[name]
        groups: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
        for day, loaded, row in entries:
            group = groups.setdefault((day, loaded), [])
            if row is not None:  # None: the day was loaded and had no records (an empty typed file)
                group.append(row)
        per_day_index: dict[str, int] = {}
        for (day, loaded), group in sorted(groups.items()):
            records = []
            for row in group:
                row = dict(row)
                raw_extra = row.pop("_raw", {})
                record = dict(row)
                for f in spec.columns:  # money as the landing writes it: exact decimals, never floats
                    if pa.types.is_decimal(f.type) and record.get(f.name) is not None:
                        record[f.name] = Decimal(record[f.name])
                record["_raw"] = json.dumps({**{k: str(v) for k, v in row.items()}, **raw_extra})
                record["_loaded_at"] = loaded
                record["_partition"] = date.fromisoformat(day)
                records.append(record)
            table = pa.Table.from_pylist(records, schema=spec.schema)
            out = lake / "raw" / spec.provider / spec.entity / f"date={day}"
            out.mkdir(parents=True, exist_ok=True)
            idx = per_day_index.get(day, 0)
            per_day_index[day] = idx + 1
            pq.write_table(table, out / (f"{file_name}.parquet" if idx == 0 else f"{file_name}-{idx}.parquet"))


def dbt_cli(data_dir: Path, db_path: Path, args: list[str]) -> DbtResult:
    """dbt (in this process: tests/dbt_inprocess.py) against a build database, with the PII key in dbt's
    environment (its plugin hands it to every connection as a session variable). Does not assert
    success: some tests expect a failure."""
    env = dbt_env()
    env.update(
        {
            "MARQUEE_DATA_DIR": str(data_dir),
            "MARQUEE_DBT_DATABASE": str(db_path),
            "MARQUEE_PII_HASH_KEY": PII_KEY,
            "DBT_TARGET_PATH": str(data_dir / "dbt_target"),
            "DBT_LOG_PATH": str(data_dir / "dbt_logs"),
            "DBT_USE_COLORS": "false",
        }
    )
    return dbt([*args, "--threads", "2"], env)


def run_dbt(data_dir: Path, db_path: Path, args: list[str]) -> DbtResult:
    """Prepare the build database (raw views) and run the dbt CLI against it; it must succeed."""
    prepare_build_database(db_path, data_dir / "lake")
    result = dbt_cli(data_dir, db_path, args)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("dbtdata")
    write_lake(data_dir / "lake", _rows())
    db_path = data_dir / "build" / "dbt.duckdb"
    result = run_dbt(data_dir, db_path, ["build"])
    shutil.copy(db_path, data_dir / "after_full.duckdb")  # pristine copy for the incremental test
    con = keyed_connection(db_path)
    yield {"data_dir": data_dir, "db": db_path, "con": con, "stdout": result.stdout}
    con.close()


def keyed_connection(db_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection whose staging views hash with the tests' key (a session variable)."""
    saved = os.environ.get("MARQUEE_PII_HASH_KEY")
    os.environ["MARQUEE_PII_HASH_KEY"] = PII_KEY
    try:
        return open_build_database(db_path, read_only=True)
    finally:
        if saved is None:
            os.environ.pop("MARQUEE_PII_HASH_KEY", None)
        else:
            os.environ["MARQUEE_PII_HASH_KEY"] = saved


def q(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_dbt_build_runs_tests(built):
    # the dbt tests (grain uniqueness, not-null keys, accepted values, integer cents, net = gross -
    # refunded, checked-in <= issued) ran and passed as part of `dbt build`
    assert "PASS=" in built["stdout"] and "ERROR=0" in built["stdout"]
    assert "unique_combination_of_columns_revenue" in built["stdout"]


def test_revenue(built):
    rows = q(
        built["con"],
        "SELECT provider, event_id, currency, order_date, orders, gross_cents, refunded_cents, net_cents "
        "FROM marts.revenue ORDER BY provider, order_date, event_id",
    )
    assert rows == [
        ("sympla", "sy_1", "BRL", date(2025, 1, 4), 2, 29 + 12350, 0, 12379),
        ("tickettailor", "ev_1", "GBP", date(2025, 1, 1), 1, 300, 0, 300),
        ("tickettailor", "ev_1", "GBP", date(2025, 1, 2), 2, 3500, 500, 3000),
        ("tickettailor", "ev_2", "JPY", date(2025, 1, 3), 1, 5000, 0, 5000),
        ("tickettailor", "ev_1", "GBP", date(2025, 1, 8), 1, 1200, 0, 1200),
    ]
    types = dict(
        q(
            built["con"],
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'revenue'",
        )
    )
    assert {types[c] for c in ("orders", "gross_cents", "refunded_cents", "net_cents")} == {"BIGINT"}


def test_sympla_money_is_exact(built):
    rows = dict(q(built["con"], "SELECT order_id, order_total_sale_price_cents FROM staging.stg_sympla__orders"))
    assert rows == {"S1": 29, "S2": 12350, "S3": 5000, "S4": 1000}


def test_attendance(built):
    rows = q(
        built["con"],
        "SELECT provider, event_id, event_name, tickets_issued, tickets_checked_in, no_shows, "
        "attendance_rate FROM marts.attendance ORDER BY provider, event_id",
    )
    # ev_2 and sy_4: their start days were never loaded, so no row (see the next test)
    assert rows == [
        ("sympla", "sy_1", "Workshop", 3, 2, 1, pytest.approx(2 / 3)),
        ("sympla", "sy_2", "Empty room", 0, 0, 0, None),
        ("sympla", "sy_3", "Future talk", 0, 0, None, None),  # starts in 2099: no no-shows yet
        ("tickettailor", "ev_1", "Tulip Fest", 3, 2, 1, pytest.approx(2 / 3)),
    ]
    starts = dict(q(built["con"], "SELECT event_id, starts_at FROM marts.attendance"))
    assert starts["sy_1"] == datetime(2025, 1, 6, 22, 0, tzinfo=UTC)
    # latest load of the event's ticket rows: it_1..it_4 and participants 101-104 all came in `late`
    # (it_4's copy inside or_1, loaded earlier, is superseded); none for the empty days
    loaded = dict(q(built["con"], "SELECT event_id, tickets_loaded_at FROM marts.attendance"))
    late = datetime(2025, 1, 11, 6, 0, tzinfo=UTC)
    assert loaded == {"sy_1": late, "sy_2": None, "sy_3": None, "ev_1": late}
    types = dict(
        q(
            built["con"],
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'attendance'",
        )
    )
    assert types["tickets_loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    assert {types[c] for c in ("tickets_issued", "tickets_checked_in", "no_shows")} == {"BIGINT"}


def test_attendance_reports_only_events_whose_ticket_day_is_loaded(built):
    con = built["con"]
    # the build database's raw.landed_partitions lists the per-event ticket days as landed
    days = q(
        con,
        "SELECT asset, partition_date FROM raw.landed_partitions "
        "WHERE asset IN ('tickettailor_issued_tickets', 'sympla_participants') ORDER BY asset, partition_date",
    )
    assert days == [
        ("sympla_participants", date(2025, 1, 6)),
        ("sympla_participants", date(2025, 1, 7)),
        ("sympla_participants", date(2099, 2, 1)),
        ("tickettailor_issued_tickets", date(2025, 1, 10)),
    ]
    reported = {e for (e,) in q(con, "SELECT event_id FROM marts.attendance")}
    known = {e for (e,) in q(con, "SELECT event_id FROM intermediate.int_events")}
    # every event is known to int_events, but the two whose start day was never loaded are not reported
    assert known == {"ev_1", "ev_2", "sy_1", "sy_2", "sy_3", "sy_4"}
    assert reported == {"ev_1", "sy_1", "sy_2", "sy_3"}
    # sy_2's day was loaded as an empty file: a real zero, with no-shows (it has started)
    assert q(
        con, "SELECT tickets_issued, tickets_checked_in, no_shows FROM marts.attendance WHERE event_id = 'sy_2'"
    ) == [(0, 0, 0)]
    # ev_2 has a valid ticket (it_5, inside order or_5), yet its event day (2099-01-01) was never
    # loaded: tickets embedded in orders alone do not make an event reported
    assert q(con, "SELECT event_id, counts_as_issued FROM intermediate.int_tickets WHERE ticket_id = 'it_5'") == [
        ("ev_2", True)
    ]


def test_campaign_attribution(built):
    rows = q(
        built["con"],
        "SELECT campaign_id, currency, channel, links_clicked, reported_revenue_cents, "
        "attributed_orders, attributed_revenue_cents, conversion_rate "
        "FROM marts.campaign_attribution ORDER BY campaign_id, currency",
    )
    assert rows == [
        ("cmp1000", "GBP", "email", 20, None, 2, 3500, pytest.approx(2 / 20)),  # or_1 + or_2 (not or_6, or_7)
        ("cmp1000", "USD", "email", 20, 9999, 0, 0, 0.0),  # latest snapshot: 20 clicks, 9999
        ("cmp1001", "JPY", "sms", 4, 5000, 1, 5000, pytest.approx(1 / 4)),
        ("cmp1002", "BRL", "email", 0, 29, 1, 29, None),  # zero clicks: no rate
        ("cmp1003", "GBP", "sms", 0, 0, 0, 0, None),
    ]
    sent = dict(q(built["con"], "SELECT campaign_id, sent_at FROM marts.campaign_attribution WHERE currency = 'USD'"))
    assert sent == {"cmp1000": datetime(2025, 1, 1, 12, 0, tzinfo=UTC)}


def test_returns_by_sku_reason(built):
    rows = q(
        built["con"],
        "SELECT sku, reason_code, product_title, returns, return_lines, returned_quantity, "
        "ordered_quantity FROM marts.returns_by_sku_reason ORDER BY sku, reason_code",
    )
    assert rows == [
        ("A", "damaged", "Tee", 1, 1, 1, 2),
        ("A", "other", "Tee", 1, 1, 1, 1),
        ("B", "other", None, 1, 1, 1, 1),
    ]


def test_pii_is_hashed_with_the_key(built):
    con = built["con"]

    def h(value: str) -> str:
        return hashlib.sha256(f"{PII_KEY}:{value}".encode()).hexdigest()

    assert q(
        con, "SELECT buyer_email_hash, buyer_phone_hash FROM staging.stg_tickettailor__orders WHERE order_id = 'or_1'"
    ) == [(h("john@example.com"), h("447123456789"))]
    assert q(
        con, "SELECT buyer_email_hash, buyer_document_hash FROM staging.stg_sympla__orders WHERE order_id = 'S1'"
    ) == [(h("maria@example.com"), h("14253678955"))]
    assert q(
        con, "SELECT attendee_document_hash FROM staging.stg_sympla__participants WHERE participant_id = '101'"
    ) == [(h("14253678955"),)]
    # no model anywhere carries a raw email, phone or CPF
    cols = q(
        con,
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE table_schema IN ('staging', 'intermediate', 'marts') AND data_type = 'VARCHAR'",
    )
    for schema, table, column in cols:
        leaked = q(
            con,
            f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" ILIKE \'%@example.com%\' '
            f"OR \"{column}\" LIKE '%536.789%' OR \"{column}\" LIKE '%7123 456789%'",
        )
        assert leaked == [(0,)], (schema, table, column)


def test_key_is_not_in_sql_or_logs(built):
    target = built["data_dir"] / "dbt_target"
    logs = built["data_dir"] / "dbt_logs"
    for folder in (target, logs):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".sql", ".json", ".log", ".txt"):
                assert PII_KEY not in path.read_text(errors="ignore"), path


def test_export_writes_every_model_and_the_key_never_touches_disk(built, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(built["db"], db)
    lake = tmp_path / "lake"
    counts = export_models(db, lake)
    assert counts["marts.revenue"] == 5
    assert counts["reference.currencies"] > 150
    assert (lake / "models" / "marts" / "campaign_attribution.parquet").exists()
    assert (lake / "models" / "staging" / "stg_sympla__orders.parquet").exists()
    assert (lake / "models" / "sync" / "sync_orders.parquet").exists()
    assert not list((lake / "models").rglob("*.tmp"))
    back = (
        duckdb.connect()
        .execute(f"SELECT sum(net_cents) FROM read_parquet('{lake / 'models' / 'marts' / 'revenue.parquet'}')")
        .fetchone()
    )
    assert back == (12379 + 300 + 3000 + 5000 + 1200,)
    # The key lived only in session variables: not in the database file, its WAL, the exports, or
    # the build directory, in any form the tests can think of.
    forms = [PII_KEY.encode(), PII_KEY.encode("utf-16-le")]
    for path in [*built["db"].parent.rglob("*"), *lake.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(f in data for f in forms), path
    # A connection without the key cannot hash: it fails instead of producing NULL hashes.
    con = duckdb.connect(str(db), read_only=True)
    try:
        with pytest.raises(duckdb.Error, match="MARQUEE_PII_HASH_KEY"):
            con.execute("SELECT buyer_email_hash FROM staging.stg_tickettailor__orders").fetchall()
    finally:
        con.close()
    assert (built["db"].parent.stat().st_mode & 0o777) == 0o700


def _changes() -> dict[str, list[tuple[str, datetime, dict[str, Any]]]]:
    """What a later load brings: or_2 refunded (its day re-landed), a new order on 01-09, a late
    ticket for ev_1 (the event's day re-landed)."""
    later = ts("2025-01-12 06:00:00")
    ev = {"event_id": "ev_1", "event_name": "Tulip Fest", "event_start_at": ts("2025-01-10 18:00:00")}
    return {
        "tickettailor_orders": [
            (
                "2025-01-02",
                later,
                {
                    "id": "or_1",
                    **ev,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 2500,
                    "refund_amount": 500,
                    "created_at": ts("2025-01-02 10:00:00"),
                    "referral_tag": "  CMP1000 ",
                },
            ),
            (
                "2025-01-02",
                later,
                {
                    "id": "or_2",
                    **ev,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 1000,
                    "refund_amount": 1000,
                    "created_at": ts("2025-01-02 23:30:00"),
                    "referral_tag": "cmp1000",
                },
            ),
            (
                "2025-01-09",
                later,
                {
                    "id": "or_8",
                    **ev,
                    "status": "completed",
                    "currency": "gbp",
                    "total": 800,
                    "refund_amount": 0,
                    "created_at": ts("2025-01-09 08:00:00"),
                    "referral_tag": "cmp1003",
                },
            ),
        ],
        "tickettailor_issued_tickets": [
            ("2025-01-10", later, {"id": t, "order_id": o, "event_id": "ev_1", "status": s, "checked_in": c})
            for t, o, s, c in [
                ("it_1", "or_1", "valid", True),
                ("it_2", "or_2", "valid", True),
                ("it_3", "or_2", "void", True),
                ("it_4", "or_1", "valid", True),
                ("it_6", "or_8", "valid", False),
            ]
        ],
    }


def _table_set(db: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for schema, name in q(
            con,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('intermediate', 'marts') AND table_type = 'BASE TABLE'",
        ):
            out[f"{schema}.{name}"] = sorted(q(con, f'SELECT * FROM "{schema}"."{name}"'), key=repr)
        return out
    finally:
        con.close()


def test_incremental_run_equals_full_build(built, tmp_path):
    # lake B = lake A + changes, with the changed partitions re-landed (replaced whole, as landing does)
    data_dir = tmp_path / "data"
    shutil.copytree(built["data_dir"] / "lake", data_dir / "lake")
    for name, entries in _changes().items():
        spec = {e.name: e for e in provider_entities()}[name]
        for day in {d for d, _, _ in entries}:
            shutil.rmtree(data_dir / "lake" / "raw" / spec.provider / spec.entity / f"date={day}", ignore_errors=True)
    # or_1's superseded version stays where it was (another file of the day in lake A): re-add it
    write_lake(data_dir / "lake", {"tickettailor_orders": [_rows()["tickettailor_orders"][0]]}, file_name="part-old")
    write_lake(data_dir / "lake", _changes())

    incremental_db = data_dir / "build" / "incremental.duckdb"
    incremental_db.parent.mkdir(parents=True)
    shutil.copy(built["data_dir"] / "after_full.duckdb", incremental_db)
    run_dbt(
        data_dir, incremental_db, ["run", "--vars", json.dumps({"min_date": "2025-01-02", "max_date": "2025-01-11"})]
    )

    full_db = data_dir / "build" / "full.duckdb"
    run_dbt(data_dir, full_db, ["seed"])  # `run` builds no seeds; the models need reference.currencies
    run_dbt(data_dir, full_db, ["run", "--full-refresh"])

    incremental, full = _table_set(incremental_db), _table_set(full_db)
    assert set(incremental) == set(full) and "marts.revenue" in full
    for name in full:
        assert incremental[name] == full[name], name
    # and the changes did arrive (so the comparison is not between two stale copies)
    con = duckdb.connect(str(incremental_db), read_only=True)
    try:
        assert q(con, "SELECT refunded_cents, net_cents FROM marts.revenue WHERE order_date = '2025-01-02'") == [
            (1500, 2000)
        ]
        assert q(con, "SELECT gross_cents FROM marts.revenue WHERE order_date = '2025-01-09'") == [(800,)]
        assert q(con, "SELECT tickets_issued, tickets_checked_in FROM marts.attendance WHERE event_id = 'ev_1'") == [
            (4, 3)
        ]
    finally:
        con.close()


def test_attribution_window_is_a_var(built, tmp_path):
    # with an 8-day window, or_6 (created exactly sent_at + 7 days) is attributed to cmp1000 as well
    db = tmp_path / "window.duckdb"
    shutil.copy(built["data_dir"] / "after_full.duckdb", db)
    run_dbt(
        built["data_dir"],
        db,
        ["run", "--select", "int_order_campaigns+", "--vars", json.dumps({"attribution_window_days": 8})],
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert q(
            con,
            "SELECT attributed_orders, attributed_revenue_cents FROM marts.campaign_attribution "
            "WHERE campaign_id = 'cmp1000' AND currency = 'GBP'",
        ) == [(3, 3500 + 1200)]
    finally:
        con.close()
