"""Scale-out, proven with real servers: the sandbox, an S3-compatible object store (moto's server,
tests/s3.py) and PostgreSQL (tests/pg.py), and several `marquee run` processes that share nothing
else: each has its own data directory, DAGSTER_HOME and spool.

- Ticket Tailor + Cymbal and Sympla + Cymbio land at the same time, then a third process builds the
  models and runs the syncs. The marts, read by a reader that attached the catalog published to the
  store, equal the sandbox's ground truth to the cent, and no process wrote a local lake.
- The store stops in the middle of a landing: the run fails naming the lake, no partition is half
  there, and a re-run once the store is back lands exactly what an undisturbed run lands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from resources import lake, lakefs
from resources.pg_locks import DAGSTER_PG_ENV, PG_URL_ENV
from sandbox import start_sandbox, truth
from tests.pg import Cluster, running_cluster
from tests.s3 import S3Server, running_server

pytestmark = [pytest.mark.pipeline, pytest.mark.xdist_group("scale_out")]

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = date(2026, 3, 15)
START = date(2026, 3, 14)
PII_KEY = "scale-out-pii-key-19c2e4"
LANDERS = ("group:tickettailor or group:cymbal", "group:sympla or group:cymbio")
MODELS_AND_SYNCS = ("group:reference or group:staging or group:intermediate or group:marts or group:sync "
                    "or group:reverse_sync")


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(anchor=ANCHOR) as sb:
        yield sb


def _env(base: Path, sandbox_env: dict[str, str], s3_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "MARQUEE_", "AWS_")) and k not in (PG_URL_ENV, *DAGSTER_PG_ENV.values())}
    env.update(sandbox_env)
    env.update(s3_env)
    env.update({"MARQUEE_DATA_DIR": str(base / "data"), "DAGSTER_HOME": str(base / "dagster_home"),
                "MARQUEE_SPOOL_DIR": str(base / "spool"), "MARQUEE_START_DATE": "2026-01-01",
                "MARQUEE_PII_HASH_KEY": PII_KEY, "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _marquee(env: dict[str, str], select: str, log: Path, start: date = START, end: date = ANCHOR) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--start", start.isoformat(),
                             "--end", end.isoformat(), "--select", select],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 420) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"marquee run did not finish in {timeout}s:\n{log.read_text()[-3000:]}")


def _bucket(s3: S3Server) -> str:
    name = "lake-" + uuid.uuid4().hex[:8]
    s3.create_bucket(name)
    return name


def test_three_workers_on_s3_and_postgres_build_the_true_marts(tmp_path, s3_server, cluster, sandbox, monkeypatch):
    lake_url = f"s3://{_bucket(s3_server)}/marquee"
    s3_env = s3_server.env(lake_url, single_host=False)  # the locks are PostgreSQL's
    db = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(db)
    pg = {PG_URL_ENV: cluster.url(db).replace("postgresql://", "postgresql+psycopg2://", 1)}
    workers = [tmp_path / name for name in ("landing-a", "landing-b", "models")]

    logs = [w / "run.log" for w in workers]
    for w in workers:
        w.mkdir()
    # The two landing workers run at the same time.
    landers = [_marquee(_env(w, sandbox.env, s3_env, **pg), select, log)
               for w, select, log in zip(workers[:2], LANDERS, logs[:2], strict=True)]
    codes = [_finish(p, log) for p, log in zip(landers, logs[:2], strict=True)]
    assert codes == [0, 0], "\n\n".join(log.read_text()[-3000:] for log in logs[:2])
    models = _marquee(_env(workers[2], sandbox.env, s3_env, **pg), MODELS_AND_SYNCS, logs[2])
    assert _finish(models, logs[2]) == 0, logs[2].read_text()[-3000:]

    # Every run of the three processes is in the one PostgreSQL, and all succeeded; their events are
    # there too, and no worker wrote a SQLite instance.
    statuses = cluster.query(db, "select status from runs")
    assert len(statuses) >= 4 and {s for (s,) in statuses} == {"SUCCESS"}, statuses
    materialized = cluster.query(
        db, "select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert materialized[0][0] > 0
    for w in workers:
        assert [p for p in (w / "dagster_home").rglob("*") if p.suffix in (".db", ".sqlite", ".db-wal")] == [], w

    # A reader elsewhere: the catalog from the store, attached read-only, reading the lake in the store.
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    local = lakefs.download(f"{lake_url}/catalog/warehouse.duckdb", tmp_path / "reader" / "warehouse.duckdb")
    con = duckdb.connect(str(local), read_only=True)
    try:
        lakefs.register_duckdb(con, lake_url)
        marts = truth.read_marts(con)
    finally:
        con.close()
    truth.assert_marts_match(None, sandbox.world, START, ANCHOR, marts=marts)

    # The lake is only in the store: no worker has a lake directory or a Parquet file on disk.
    for w in workers:
        assert not (w / "data" / "lake").exists()
        assert list(w.rglob("*.parquet")) == [], w
    keys = s3_server.keys(lake_url.removeprefix("s3://"))
    areas = {k.split("/")[2] for k in keys}
    assert {"raw", "models", "schemas", "sync_log", "catalog"} <= areas, areas


def _raw_tables(lake_url: str, entity_dirs: list[str]) -> dict[str, list[dict]]:
    """Every landed row of the given `provider/entity` dirs, without the load time, in a stable order."""
    out = {}
    for entity in entity_dirs:
        rows = []
        for f in lakefs.glob(f"{lake_url}/raw/{entity}", "date=*/*.parquet"):
            table = lakefs.read_table(f)
            rows += table.drop_columns(["_loaded_at"]).to_pylist()
        out[entity] = sorted(rows, key=repr)
    return out


def test_a_store_that_stops_mid_landing_fails_the_run_and_a_rerun_lands_exactly(tmp_path, s3_server, sandbox,
                                                                                monkeypatch):
    bucket = _bucket(s3_server)
    clean_url, faulted_url = f"s3://{bucket}/clean", f"s3://{bucket}/faulted"
    select = "group:tickettailor"

    clean = tmp_path / "clean"
    clean.mkdir()
    proc = _marquee(_env(clean, sandbox.env, s3_server.env(clean_url)), select, clean / "run.log", ANCHOR, ANCHOR)
    assert _finish(proc, clean / "run.log") == 0, (clean / "run.log").read_text()[-3000:]

    faulted = tmp_path / "faulted"
    pause = tmp_path / "pause"
    faulted.mkdir()
    pause.mkdir()
    # Hold the landing at its second upload (the first of the day's files is already in the store).
    (pause / "lake.before_rename.hold").write_text("2")
    env = _env(faulted, sandbox.env, s3_server.env(faulted_url), MARQUEE_TEST_PAUSE_DIR=str(pause))
    log = faulted / "run.log"
    proc = _marquee(env, select, log, ANCHOR, ANCHOR)
    deadline = time.monotonic() + 240
    while not (pause / "lake.before_rename.reached").exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    s3_server.stop()
    try:
        (pause / "lake.before_rename.hold").unlink()
        code = _finish(proc, log)
    finally:
        s3_server.start()
    output = log.read_text()
    assert code != 0, output[-3000:]
    assert faulted_url in output and "Nothing half-written is visible" in output, output[-4000:]

    for key, value in s3_server.env(faulted_url).items():
        monkeypatch.setenv(key, value)
    entities = ["/".join(pair) for pair in lake.landed_entity_dirs(clean_url)]
    assert entities, "the clean run landed nothing"
    # What the faulted run left in the store is whole: every file reads, and the partition held at
    # its upload is not there at all (the first upload is; the held one never completed).
    left = lakefs.glob(f"{faulted_url}/raw", "*/*/date=*/*.parquet")
    for f in left:
        lakefs.read_table(f)
    assert 1 <= len(left) < len(lakefs.glob(f"{clean_url}/raw", "*/*/date=*/*.parquet")), left

    again = faulted / "rerun.log"
    proc = _marquee({k: v for k, v in env.items() if k != "MARQUEE_TEST_PAUSE_DIR"}, select, again, ANCHOR, ANCHOR)
    assert _finish(proc, again) == 0, again.read_text()[-3000:]
    assert _raw_tables(faulted_url, entities) == _raw_tables(clean_url, entities)
