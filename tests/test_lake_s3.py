"""The lake in object storage (MARQUEE_LAKE_URL=s3://...), against a real S3-compatible server on
127.0.0.1 (tests/s3.py): partitions appear in one step and a re-run replaces exactly its own, the
quarantine, the sync log and the views work the same as on disk, nothing lands on local disk, and a
store that is down is an error that names the lake."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from assets.landing.lander import EntityLander
from assets.reverse_sync.log import SENT, SyncLog
from resources import lake, lakefs, settings
from resources.lakefs import LakeStoreError, parse_lake_url
from resources.warehouse import create_model_views, create_raw_views, publish_catalog
from tests.s3 import S3Server, running_server
from tests.test_lake import SPEC, _convert, _records

DAY = date(2026, 3, 10)
LOADED = datetime(2026, 3, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def lake_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh prefix in a bucket of the module's server, set as this process's lake."""
    bucket = "lake-" + uuid.uuid4().hex[:8]
    s3_server.create_bucket(bucket)
    url = f"s3://{bucket}/marquee"
    for key, value in s3_server.env(url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARQUEE_SPOOL_DIR", str(tmp_path / "spool"))
    return url


def _land(root: str, records: list[dict], day: date = DAY) -> None:
    with EntityLander(SPEC, [day], LOADED, root) as lander:
        lander.add_page(records, _convert, day)
        lander.commit()


def test_the_lake_url_is_a_bucket_and_prefix_or_a_local_path(tmp_path: Path) -> None:
    assert parse_lake_url("s3://bucket/some/prefix/") == "s3://bucket/some/prefix"
    assert parse_lake_url(str(tmp_path)) == tmp_path
    assert parse_lake_url(f"file://{tmp_path}") == tmp_path
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID") as err:
        parse_lake_url("s3://AKIA123:hunter2@bucket/prefix")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        parse_lake_url("gs://bucket/prefix")


def test_a_partition_appears_in_one_step_and_a_rerun_replaces_exactly_it(lake_url: str, s3_server: S3Server,
                                                                         tmp_path: Path) -> None:
    _land(lake_url, _records(5), DAY)
    _land(lake_url, _records(2, 100), date(2026, 3, 11))
    target = lake.partition_path(SPEC, DAY, lake_url)
    assert target == f"{lake_url}/raw/unit/things/date=2026-03-10/part-0.parquet"

    with EntityLander(SPEC, [DAY], LOADED, lake_url) as lander:
        lander.add_page(_records(3, 50), _convert, DAY)
        lander.prepare()
        # Written in full, not yet published: readers still get the old partition.
        assert sorted(lake.read_partition(SPEC, DAY, lake_url).column("id").to_pylist()) == \
            [f"t{i}" for i in range(5)]
        lander.commit()
    assert sorted(lake.read_partition(SPEC, DAY, lake_url).column("id").to_pylist()) == ["t50", "t51", "t52"]
    # The other day is untouched, and nothing but the two part files is in the raw area.
    assert lake.read_partition(SPEC, date(2026, 3, 11), lake_url).column("id").to_pylist() == ["t100", "t101"]
    bucket_prefix = lake_url.removeprefix("s3://")
    assert [k for k in s3_server.keys(bucket_prefix) if "/raw/" in k] == [
        f"{bucket_prefix}/raw/unit/things/date=2026-03-10/part-0.parquet",
        f"{bucket_prefix}/raw/unit/things/date=2026-03-11/part-0.parquet",
    ]
    assert lake.landed_days(SPEC, lake_url) == [DAY, date(2026, 3, 11)]
    # The spool holds nothing once the uploads are done; no local lake was made.
    assert list((tmp_path / "spool").iterdir()) == []
    assert not (tmp_path / "data" / "lake").exists()


def test_an_aborted_write_leaves_the_old_partition(lake_url: str) -> None:
    _land(lake_url, _records(4))
    with pytest.raises(RuntimeError, match="boom"), EntityLander(SPEC, [DAY], LOADED, lake_url) as lander:
        lander.add_page(_records(9, 10), _convert, DAY)
        raise RuntimeError("boom")
    assert lake.read_partition(SPEC, DAY, lake_url).num_rows == 4


def test_quarantine_is_written_and_cleared_in_the_store(lake_url: str) -> None:
    bad = [{"id": "ok", "amount": 1, "at": 1773100800}, {"amount": "not money"}]
    _land(lake_url, bad)
    q = lake.read_partition(SPEC, DAY, lake_url, area=lake.QUARANTINE_AREA)
    assert q is not None and q.num_rows == 1
    _land(lake_url, bad[:1])  # fixed at the source: the re-run clears the day's quarantine
    assert lake.read_partition(SPEC, DAY, lake_url, area=lake.QUARANTINE_AREA) is None


def test_duckdb_reads_the_lake_through_the_registered_filesystem(lake_url: str) -> None:
    _land(lake_url, _records(6))
    con = duckdb.connect()
    try:
        names = create_raw_views(con, lake_url, entities=[SPEC])
        assert "raw.unit_things" in names
        assert con.execute("select count(*), sum(amount) from raw.unit_things").fetchone() == (6, 1500)
        assert con.execute("select asset, partition_date from raw.landed_partitions").fetchall() == \
            [("unit_things", DAY)]
    finally:
        con.close()


def test_duckdb_threads_reading_one_file_of_many_row_groups_get_the_right_bytes(lake_url: str) -> None:
    # DuckDB reads row groups in parallel through one file object; through a Python filesystem its
    # seek and read are separate calls, and another thread's seek used to land in between (wrong
    # bytes, "Invalid data"). Row groups of incompressible text make the reads big enough to overlap.
    n, group = 20_000, 2_500
    with lake.PartitionWriter(SPEC, DAY, lake_url, row_group_rows=group) as writer:
        for start in range(0, n, group):
            writer.write_table(pa.table({
                "id": [f"t{i}" for i in range(start, start + group)], "amount": list(range(start, start + group)),
                "at": pa.array([None] * group, pa.timestamp("us", tz="UTC")),
                "_raw": [os.urandom(100).hex() for _ in range(group)],
                "_loaded_at": pa.array([LOADED] * group, pa.timestamp("us", tz="UTC")),
                "_partition": pa.array([DAY] * group, pa.date32()),
            }, schema=SPEC.schema))
        writer.commit()
    con = duckdb.connect()
    try:
        con.execute("SET threads = 4")
        create_raw_views(con, lake_url, entities=[SPEC])
        for _ in range(5):
            assert con.execute("select count(*), sum(amount), count(distinct _raw) from raw.unit_things").fetchone() \
                == (n, sum(range(n)), n)
    finally:
        con.close()


def test_the_catalog_is_published_to_the_store_and_reads_from_it(lake_url: str, s3_server: S3Server,
                                                                  tmp_path: Path) -> None:
    _land(lake_url, _records(3))
    model = pa.table({"currency": ["EUR"], "gross_cents": [1234]})
    lakefs.write_table(model, lake.model_path("marts", "revenue", lake_url))
    lakefs.write_table(model, lake.model_path("sync", "sync_contacts", lake_url))  # private: never published
    publish_catalog(settings.data_dir(), entities=[SPEC])
    local = lakefs.download(lake.catalog_object(lake_url), tmp_path / "copy" / "warehouse.duckdb")
    con = duckdb.connect(str(local), read_only=True)
    try:
        lakefs.register_duckdb(con, lake_url)
        assert con.execute("select gross_cents from marts.revenue").fetchall() == [(1234,)]
        assert con.execute("select count(*) from raw.unit_things").fetchone() == (3,)
        schemas = {r[0] for r in con.execute("select schema_name from duckdb_schemas()").fetchall()}
        assert "sync" not in schemas
    finally:
        con.close()
    con = duckdb.connect()
    try:
        assert "marts.revenue" in create_model_views(con, lake_url)
    finally:
        con.close()


def test_the_sync_log_appends_and_compacts_in_the_store(lake_url: str) -> None:
    log = SyncLog("cymbal_orders", lake_url)
    assert not log.exists()
    log.append([("o1", "h1", SENT, None)], partition="2026-03-10", run_id="r1")
    log.append([("o1", "h2", SENT, None), ("o2", "h3", SENT, None)], partition="2026-03-10", run_id="r2")
    assert len(lakefs.glob(log.directory, "part-*.parquet")) == 2
    log.compact()
    assert len(lakefs.glob(log.directory, "part-*.parquet")) == 1
    state = log.state()
    assert state["o1"].last_sent_hash == "h2" and state["o2"].last_sent_hash == "h3"


def test_a_store_that_is_down_fails_naming_the_lake_and_publishes_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    server = S3Server()
    server.start()
    try:
        server.create_bucket("downlake")
        url = "s3://downlake/p"
        for key, value in server.env(url).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MARQUEE_SPOOL_DIR", str(tmp_path / "spool"))
        _land(url, _records(2))
        with pytest.raises(LakeStoreError) as err, EntityLander(SPEC, [DAY], LOADED, url) as lander:
            lander.add_page(_records(7, 20), _convert, DAY)
            lander.prepare()
            server.stop()
            lander.commit()
        message = str(err.value)
        assert url in message and server.endpoint in message and "re-run" in message
        assert "marquee-test-secret" not in message
        server.start()  # the same objects come back
        assert lake.read_partition(SPEC, DAY, url).column("id").to_pylist() == ["t0", "t1"]
        assert list((tmp_path / "spool").iterdir()) == []
    finally:
        server.stop()


# A writer in another process that lands one page of a day and commits it; crash tests kill it at
# a named step (resources/seams.py).
WRITER = """
import sys
from datetime import UTC, date, datetime
from assets.landing.lander import EntityLander
from tests.test_lake import SPEC, _convert, _records
day = date.fromisoformat(sys.argv[2])
with EntityLander(SPEC, [day], datetime(2026, 3, 11, tzinfo=UTC), sys.argv[1]) as lander:
    lander.add_page(_records(int(sys.argv[3]), 500), _convert, day)
    lander.commit()
"""


def test_a_writer_killed_before_its_upload_leaves_the_old_partition_and_a_spool_file_the_sweep_removes(
        lake_url: str, tmp_path: Path) -> None:
    _land(lake_url, _records(2))
    env = {**os.environ, lake.CRASH_ENV: "lake.before_rename"}
    proc = subprocess.run([sys.executable, "-c", WRITER, lake_url, DAY.isoformat(), "8"], env=env,
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == lake.CRASH_EXIT_CODE, proc.stderr
    # The store still has the old partition, whole.
    assert lake.read_partition(SPEC, DAY, lake_url).column("id").to_pylist() == ["t0", "t1"]
    spool = tmp_path / "spool"
    assert len([p for p in spool.iterdir() if p.name.endswith(".inprogress")]) == 1
    # The dead writer's spool file is an orphan: the next run's sweep removes it.
    assert lake.sweep_orphaned_temp_files(lake_url) == 1
    assert list(spool.iterdir()) == []
    # And the re-run lands the day.
    proc = subprocess.run([sys.executable, "-c", WRITER, lake_url, DAY.isoformat(), "8"],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert lake.read_partition(SPEC, DAY, lake_url).num_rows == 8


def test_marquee_sql_queries_a_catalog_over_the_store(lake_url: str, tmp_path: Path) -> None:
    model = pa.table({"currency": ["EUR", "BRL"], "gross_cents": [1234, 990]})
    lakefs.write_table(model, lake.model_path("marts", "revenue", lake_url))
    publish_catalog(settings.data_dir())
    marquee = str(Path(sys.executable).with_name("marquee"))
    env = dict(os.environ)
    result = subprocess.run([marquee, "sql", "select currency, gross_cents from marts.revenue order by 1"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "BRL" in result.stdout and "1234" in result.stdout and "990" in result.stdout
    bad = subprocess.run([marquee, "sql", "select * from marts.nope"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "nope" in bad.stderr
    shell = subprocess.run([marquee, "sql"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           input="")
    assert shell.returncode == 2 and "httpfs" in shell.stderr and lake_url in shell.stderr


def test_the_demo_never_lands_its_synthetic_rows_in_a_real_lake(lake_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from pipelines import runner
    from pipelines.cli import demo

    seen: list[object] = []

    def fake_run_range(*args, **kwargs):
        seen.append(settings.lake_location())
        raise runner.RunFailed("raw", ["stopped by the test"])

    monkeypatch.setattr(runner, "run_range", fake_run_range)
    monkeypatch.setenv("MARQUEE_DEMO_DIR", str(tmp_path / "demo"))
    saved = dict(os.environ)  # the demo sets its own variables in this process
    try:
        assert demo.run_demo(days=1, end=DAY) == 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert seen == [tmp_path / "demo" / "lake"]
    assert "ignoring MARQUEE_LAKE_URL" in capsys.readouterr().out


def test_a_lake_in_a_store_without_postgresql_is_refused_unless_declared_single_host(
        lake_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flock holds on one machine; a bucket is shared by many. Without PostgreSQL to hold the lake's
    locks, `marquee run` stops before any request and a locked step fails, naming both ways out."""
    from pipelines.runner import run_range
    from resources.pg_locks import DAGSTER_PG_ENV, PG_URL_ENV

    for var in (PG_URL_ENV, *DAGSTER_PG_ENV.values()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(lake.SINGLE_HOST_ENV)
    with pytest.raises(lake.LakeLockError) as err, lake.lake_lock(lake.BUILD_LOCK):
        pass
    assert lake_url in str(err.value) and PG_URL_ENV in str(err.value) and lake.SINGLE_HOST_ENV in str(err.value)
    with pytest.raises(SystemExit) as stop:
        run_range(DAY, DAY, progress=lambda line: None)
    assert "marquee run:" in str(stop.value) and lake.SINGLE_HOST_ENV in str(stop.value)

    monkeypatch.setenv(lake.SINGLE_HOST_ENV, "1")  # the operator's word: this machine alone writes it
    assert lake.lock_problem() is None
    with lake.lake_lock(lake.BUILD_LOCK):
        assert lake.lock_path(lake.BUILD_LOCK).exists()  # a flock on this machine
