"""Dagster on PostgreSQL, against a real PostgreSQL 15 cluster the tests start (tests/pg.py).

What pipelines/instance.py generates for MARQUEE_PG_URL and for Dagster's DAGSTER_PG_* variables
(no password on disk, PostgreSQL run/event/schedule storage, the run queue), that the `duckdb` pool
serializes writers of two processes through PostgreSQL, that the reaper leaves other machines' runs
alone there. Real `marquee run` processes on PostgreSQL (their runs there, nothing in SQLite) are
tests/test_scale_out.py's.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRun
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from assets.providers import PROVIDERS
from pipelines.instance import (
    DAGSTER_PG_ENV,
    DUCKDB_POOL,
    PG_DRIVER_SCHEME,
    PG_URL_ENV,
    ensure_instance_config,
    ensure_pool_slots,
    instance_config,
    postgres_storage,
)
from pipelines.reaper import HOST_TAG, PID_TAG, PROCESS_TAG, owner_tags, process_identity, reap_dead_runs
from resources.names import CYMBIO_RETURNS_POOL, PROVIDER_TAG_PREFIX, provider_tag
from tests.pg import Cluster, running_cluster
from tests.test_runner import assert_ensure_pool_slots_gives_each_pool_one_slot

# One cluster per session: the module's tests stay on one xdist worker.
pytestmark = pytest.mark.xdist_group("postgres")

PG_VARS = (PG_URL_ENV, *DAGSTER_PG_ENV.values())


@pytest.fixture(scope="session")
def cluster():
    with running_cluster() as c:
        yield c


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch):
    for var in PG_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db(cluster: Cluster) -> str:
    """A fresh database for one test; returns its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    return name


def _use_pg(monkeypatch, cluster: Cluster, db: str, style: str) -> None:
    if style == "url":
        monkeypatch.setenv(PG_URL_ENV, cluster.url(db).replace("postgresql://", f"{PG_DRIVER_SCHEME}://", 1))
    else:
        for key, value in {"username": cluster.user, "password": cluster.password, "hostname": cluster.host,
                           "db_name": db, "port": str(cluster.port)}.items():
            monkeypatch.setenv(DAGSTER_PG_ENV[key], value)


# --- the generated dagster.yaml ------------------------------------------------------------------


def test_without_postgres_variables_the_instance_stays_on_sqlite(tmp_path):
    path = ensure_instance_config(tmp_path / "home")
    config = yaml.safe_load(path.read_text())
    assert not {"storage", "run_storage", "event_log_storage", "schedule_storage", "run_coordinator"} & set(config)
    assert "runs" not in config["concurrency"]
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert not isinstance(instance.run_storage, PostgresRunStorage)


@pytest.mark.parametrize("style", ["url", "dagster_pg"])
def test_the_generated_config_opens_postgres_and_holds_no_password(tmp_path, monkeypatch, cluster, db, style):
    _use_pg(monkeypatch, cluster, db, style)
    home = tmp_path / "home"
    text = ensure_instance_config(home).read_text()
    assert cluster.password not in text
    assert cluster.url(db).split("://")[1] not in text
    config = yaml.safe_load(text)
    # Only variable names: Dagster reads their values when it opens the instance.
    pg = config["storage"]["postgres"]
    sources = [pg["postgres_url"]] if "postgres_url" in pg else \
        [value for key, value in pg["postgres_db"].items() if key != "scheme"]
    assert sources and all(set(source) == {"env"} for source in sources), pg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        run_id = str(uuid.uuid4())
        instance.add_run(DagsterRun(job_name="probe", run_id=run_id))
    # ... and it is in that database, read without Dagster.
    assert cluster.query(db, f"select run_id from runs where run_id = '{run_id}'") == [(run_id,)]


def test_an_operator_storage_block_and_run_queue_win(monkeypatch, cluster, db):
    _use_pg(monkeypatch, cluster, db, "url")
    theirs = {"storage": {"postgres": {"postgres_db": {"username": "ops", "password": {"env": "OPS_PG_PASSWORD"},
                                                         "hostname": "pg.internal", "db_name": "dagster"}}},
              "concurrency": {"runs": {"max_concurrent_runs": 3}}}
    config = instance_config(theirs)
    assert config["storage"] == theirs["storage"]
    assert config["concurrency"]["runs"] == theirs["concurrency"]["runs"]
    assert config["concurrency"]["pools"]["default_limit"] == 1  # marquee's pool limit is still enforced


def test_a_run_queue_written_by_the_first_release_is_rewritten_with_compliant_tag_keys(monkeypatch, cluster, db):
    _use_pg(monkeypatch, cluster, db, "url")
    old = {"concurrency": {"runs": {"max_concurrent_runs": 6, "tag_concurrency_limits": [
        {"key": "marquee/provider/" + p.name, "limit": 1} for p in PROVIDERS]}}}
    keys = [limit["key"] for limit in instance_config(old)["concurrency"]["runs"]["tag_concurrency_limits"]]
    assert keys == [provider_tag(p.name) for p in PROVIDERS]
    # Dagster's tag-key rule: one namespace, then letters, digits, `_`, `-`, `.`.
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+", key) for key in keys), keys


def test_generated_blocks_follow_the_environment_back_to_sqlite(tmp_path, monkeypatch, cluster, db):
    home = tmp_path / "home"
    _use_pg(monkeypatch, cluster, db, "url")
    assert "storage" in yaml.safe_load(ensure_instance_config(home).read_text())
    monkeypatch.delenv(PG_URL_ENV)
    _use_pg(monkeypatch, cluster, db, "dagster_pg")
    switched = yaml.safe_load(ensure_instance_config(home).read_text())
    assert "postgres_db" in switched["storage"]["postgres"]
    for var in DAGSTER_PG_ENV.values():
        monkeypatch.delenv(var)
    # Variables gone: marquee's own blocks go too, or Dagster would fail on an unset variable.
    back = yaml.safe_load(ensure_instance_config(home).read_text())
    assert "storage" not in back and "runs" not in back["concurrency"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not isinstance(instance.run_storage, PostgresRunStorage)


def test_bad_settings_fail_naming_the_variable_never_the_secret(monkeypatch):
    monkeypatch.setenv(PG_URL_ENV, "postgres://ops:s3cr3t-pw@pg.internal:5432/dagster")
    with pytest.raises(ValueError) as bad_scheme:
        postgres_storage()
    assert PG_URL_ENV in str(bad_scheme.value) and PG_DRIVER_SCHEME in str(bad_scheme.value)
    assert "s3cr3t-pw" not in str(bad_scheme.value)
    monkeypatch.delenv(PG_URL_ENV)
    monkeypatch.setenv(DAGSTER_PG_ENV["hostname"], "pg.internal")
    monkeypatch.setenv(DAGSTER_PG_ENV["password"], "s3cr3t-pw")
    with pytest.raises(ValueError) as partial:
        postgres_storage()
    message = str(partial.value)
    assert DAGSTER_PG_ENV["username"] in message and DAGSTER_PG_ENV["db_name"] in message
    assert "s3cr3t-pw" not in message


# --- the run queue -------------------------------------------------------------------------------


def test_the_run_queue_limits_every_provider_to_one_run(tmp_path, monkeypatch, cluster, db):
    _use_pg(monkeypatch, cluster, db, "url")
    home = tmp_path / "home"
    ensure_instance_config(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
    limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
    assert set(limits) == {provider_tag(p.name) for p in PROVIDERS}
    assert set(limits.values()) == {1}
    assert queue.max_concurrent_runs > 1  # providers do load in parallel runs


def test_every_job_that_calls_a_provider_carries_its_queue_tag():
    from assets.providers import provider_of
    from pipelines.definitions import defs
    from pipelines.schedules import JOBS

    repo = defs.get_repository_def()
    for job in JOBS:
        definition = repo.get_job(job.name)
        called = {p.name for key in definition.asset_layer.selected_asset_keys
                  if (p := provider_of(key.path[-1])) is not None}
        tagged = {k[len(PROVIDER_TAG_PREFIX):] for k in definition.tags if k.startswith(PROVIDER_TAG_PREFIX)}
        assert tagged == called, job.name


# --- pools and the reaper on PostgreSQL ----------------------------------------------------------


def _pg_home(tmp_path: Path, monkeypatch, cluster: Cluster, db: str) -> Path:
    _use_pg(monkeypatch, cluster, db, "url")
    home = tmp_path / "home"
    ensure_instance_config(home)
    return home


def test_every_pool_gets_exactly_one_slot_in_postgres(tmp_path, monkeypatch, cluster, db):
    home = _pg_home(tmp_path, monkeypatch, cluster, db)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert_ensure_pool_slots_gives_each_pool_one_slot(instance)
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        assert instance.event_log_storage.claim_concurrency_slot(DUCKDB_POOL, first, "dbt").is_claimed
        assert not instance.event_log_storage.claim_concurrency_slot(DUCKDB_POOL, second, "dbt").is_claimed
    rows = cluster.query(db, f"select run_id from concurrency_slots where concurrency_key = '{DUCKDB_POOL}'")
    assert rows == [(first,)]


@pytest.mark.pipeline
def test_two_processes_take_turns_in_the_duckdb_pool_held_in_postgres(tmp_path, monkeypatch, cluster, db):
    """The SQLite test of tests/test_schedules.py, with the instance in PostgreSQL: the slot is a row
    there, and with the lake in object storage the build lock is a PostgreSQL advisory lock, so the
    same holds for processes on different machines. (The lock is all the writers share: nothing
    reads or writes the bucket here.)"""
    from tests.test_schedules import _overlaps, race_two_runs

    home = _pg_home(tmp_path, monkeypatch, cluster, db)
    monkeypatch.setenv("MARQUEE_LAKE_URL", "s3://marquee-race/lake")
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(tmp_path / "no-local-lock"))
    spans = race_two_runs(home, tmp_path)
    assert len(spans["duckdb"]) == 2 and not _overlaps(spans["duckdb"]), spans
    assert _overlaps(spans["landing"]), "landing should not be serialized by the pool"
    assert not (tmp_path / "no-local-lock" / "locks").exists()  # the writers waited in PostgreSQL
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2  # both runs were recorded in PostgreSQL
        assert not [s for s in instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots
                    if s.run_id]


def test_the_reaper_frees_a_dead_local_run_and_never_touches_another_machines(tmp_path, monkeypatch, cluster, db):
    home = _pg_home(tmp_path, monkeypatch, cluster, db)
    owner = subprocess.Popen(["sleep", "60"])
    dead_tags = owner_tags(owner.pid)
    owner.kill()
    owner.wait()
    assert process_identity(owner.pid) is None
    # A worker on another machine: its host is not ours (a pod, another VM).
    elsewhere = {HOST_TAG: "worker-on-another-node", PID_TAG: "1", PROCESS_TAG: "linux:aaaa:bbbb:pid:[1]:100"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ensure_pool_slots(instance)
        storage = instance.event_log_storage
        dead, remote = str(uuid.uuid4()), str(uuid.uuid4())
        instance.add_run(DagsterRun(job_name="dead", run_id=dead, status=dg.DagsterRunStatus.STARTED, tags=dead_tags))
        instance.add_run(DagsterRun(job_name="remote", run_id=remote, status=dg.DagsterRunStatus.STARTED,
                                    tags=elsewhere))
        assert storage.claim_concurrency_slot(DUCKDB_POOL, remote, "dbt").is_claimed
        assert storage.claim_concurrency_slot(CYMBIO_RETURNS_POOL, dead, "returns").is_claimed

        reaped = reap_dead_runs(instance)

        assert len(reaped) == 1 and dead in reaped[0]
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(remote).status == dg.DagsterRunStatus.STARTED
        assert [s.run_id for s in storage.get_concurrency_info(DUCKDB_POOL).claimed_slots] == [remote]
        assert not [s for s in storage.get_concurrency_info(CYMBIO_RETURNS_POOL).claimed_slots if s.run_id]


def test_a_run_of_another_machine_with_our_hostname_and_no_machine_id_is_not_judged_dead():
    """Two containers with one hostname on two machines share a PostgreSQL instance: without a machine
    id, the other's boot id must not read as "this host rebooted"."""
    from pipelines.reaper import judge

    me = owner_tags()
    if not me[PROCESS_TAG].startswith("linux:"):
        pytest.skip("process identities with machine and boot ids are Linux-only")
    parts = me[PROCESS_TAG].split(":")
    parts[1], parts[2] = "", "boot-of-another-machine"
    assert not judge({**me, PROCESS_TAG: ":".join(parts)}).dead
    parts[1] = me[PROCESS_TAG].split(":")[1]  # the same machine id: then it is this host, rebooted
    assert judge({**me, PROCESS_TAG: ":".join(parts)}).dead == bool(parts[1])

