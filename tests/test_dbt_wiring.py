"""The dbt project as Dagster assets: lineage from the raw assets, groups, checks, pool, run vars,
and one materialization through Dagster that exports the models and publishes the catalog."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_dbt_marts import PII_KEY, _rows, write_lake

from assets.dbt import (
    DUCKDB_POOL,
    KEEP_DBT_TARGETS,
    DbtBuildConfig,
    _window_from_run,
    build_args,
    dbt_resource,
    dbt_targets_dir,
    dbt_vars,
    invocation_target,
    marquee_dbt_models,
    window_env,
)
from assets.dbt_project import dbt_project
from assets.providers import entities as provider_entities
from resources import lake

# How long the other build holds the lock: longer than this test's run takes to reach its build.
BUILD_LOCK_HOLD_SECONDS = 4.0


def _manifest() -> dict:
    return json.loads(Path(dbt_project.manifest_path).read_text())


def test_every_raw_entity_has_a_source_and_one_staging_model():
    manifest = _manifest()
    sources = {s["name"]: s for s in manifest["sources"].values()}
    staging = {
        n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["fqn"][1] == "staging"
    }
    for name, spec in {e.name: e for e in provider_entities()}.items():
        assert name in sources, f"raw entity {name} has no dbt source"
        assert sources[name]["schema"] == "raw"
        assert sources[name]["meta"]["dagster"]["asset_key"] == [name]
        assert f"stg_{spec.provider}__{spec.entity}" in staging, name


def test_every_model_column_is_documented():
    for node in _manifest()["nodes"].values():
        if node["resource_type"] != "model":
            continue
        assert node["description"].strip(), node["name"]
        for col in node["columns"].values():
            assert col["description"].strip(), (node["name"], col["name"])


def test_lineage_groups_checks_and_pool():
    specs = {s.key: s for s in marquee_dbt_models.specs}
    stg = specs[dg.AssetKey(["staging", "stg_tickettailor__orders"])]
    assert {d.asset_key for d in stg.deps} == {dg.AssetKey("tickettailor_orders")}
    assert stg.group_name == "staging"
    revenue = specs[dg.AssetKey(["marts", "revenue"])]
    assert revenue.group_name == "marts"
    assert {d.asset_key for d in revenue.deps} == {dg.AssetKey(["intermediate", "int_orders"])}
    assert specs[dg.AssetKey(["intermediate", "int_tickets"])].group_name == "intermediate"
    # contract marts exist under their names
    for mart in ("attendance", "revenue", "campaign_attribution"):
        assert dg.AssetKey(["marts", mart]) in specs
    checks = {(c.asset_key, c.name) for c in marquee_dbt_models.check_specs}
    assert any(
        k == dg.AssetKey(["marts", "revenue"]) and n.startswith("unique_combination_of_columns") for k, n in checks
    )
    assert any(k == dg.AssetKey(["marts", "attendance"]) and n.startswith("not_greater_than") for k, n in checks)
    assert marquee_dbt_models.op.pool == DUCKDB_POOL
    assert dbt_resource().project_dir


def test_dbt_vars_and_args():
    assert dbt_vars() == {}
    assert dbt_vars("2026-03-01", "2026-03-08") == {"min_date": "2026-03-01", "max_date": "2026-03-08"}
    assert dbt_vars(min_date="2026-03-01") == {"min_date": "2026-03-01"}
    with pytest.raises(ValueError, match="not a date"):
        dbt_vars("yesterday")
    with pytest.raises(ValueError, match="exclusive"):
        dbt_vars("2026-03-08", "2026-03-08")
    # Production builds never run dbt's unit tests (CI does: tests/test_dbt_unit.py).
    # ... and never pass --vars: the window is in the environment, both bounds always set.
    assert build_args() == ["build", "--exclude-resource-type", "unit_test"]
    assert build_args(full_refresh=True) == ["build", "--exclude-resource-type", "unit_test", "--full-refresh"]
    assert window_env({"min_date": "2026-03-01"}) == {"MARQUEE_DBT_MIN_DATE": "2026-03-01", "MARQUEE_DBT_MAX_DATE": ""}
    tags = {"marquee/min_date": "2026-03-01", "marquee/max_date": "2026-03-08"}
    assert _window_from_run(DbtBuildConfig(), tags) == {"min_date": "2026-03-01", "max_date": "2026-03-08"}
    # run config wins over tags
    assert _window_from_run(DbtBuildConfig(min_date="2026-03-05"), tags)["min_date"] == "2026-03-05"


def _gbp_net_in_catalog(data_dir: Path) -> int:
    """marts.revenue's GBP net, read from the published catalog as an analyst would."""
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT sum(net_cents) FROM marts.revenue WHERE currency = 'GBP'").fetchone()[0]
    finally:
        con.close()


@pytest.mark.pipeline
def test_materialize_through_dagster(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MARQUEE_PII_HASH_KEY", PII_KEY)
    write_lake(data_dir / "lake", _rows())

    # Another build holds the lake's build lock for a while: this one must not start dbt before it
    # is released (the `duckdb` pool can admit two builds at one instant; the lock is the guarantee).
    released: list[float] = []
    holding, release = threading.Event(), threading.Event()

    def other_build() -> None:
        with lake.build_lock():
            holding.set()
            release.wait(BUILD_LOCK_HOLD_SECONDS)
            released.append(time.time())

    holder = threading.Thread(target=other_build)
    holder.start()
    holding.wait(10)
    try:
        result = dg.materialize(
            [marquee_dbt_models],
            resources={"dbt": dbt_resource()},
            tags={"marquee/min_date": "2025-01-01", "marquee/max_date": "2025-02-01"},
        )
    finally:
        release.set()
        holder.join()
    assert result.success
    materialized = {e.asset_key: e.materialization for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["marts", "campaign_attribution"]) in materialized
    revenue_md = materialized[dg.AssetKey(["marts", "revenue"])].metadata
    assert revenue_md["dagster/row_count"].value == 5  # five (provider, event, currency, day) rows by hand
    assert "net_cents" in revenue_md["preview"].value
    assert [c.name for c in revenue_md["dagster/column_schema"].schema.columns][:4] == [
        "provider",
        "event_id",
        "currency",
        "order_date",
    ]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 100 and all(e.passed for e in evaluations)

    # exported to the lake, published in the analysts' catalog, key gone from the build database
    assert (data_dir / "lake" / "models" / "marts" / "revenue.parquet").exists()
    assert _gbp_net_in_catalog(data_dir) == 300 + 3000 + 1200
    # ... and the same figure is in the materialization, as a number Dagster plots run over run
    assert revenue_md["net_cents GBP"] == dg.MetadataValue.int(300 + 3000 + 1200)
    # dbt's per-invocation files (manifest, run results, log) went under the data dir, not the project
    targets = [p for p in (data_dir / "build" / "dbt-target").iterdir() if p.name.endswith("-build")]
    assert len(targets) == 1 and (targets[0] / "run_results.json").exists()
    # ... named by the second dbt started, which came after the other build let go of the lock
    started = datetime.strptime(targets[0].name[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    assert started >= int(released[0]), (targets[0].name, released)
    con = duckdb.connect(str(data_dir / "build" / "dbt.duckdb"), read_only=True)
    try:
        assert con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '_marquee'"
        ).fetchone() == (0,)
    finally:
        con.close()

    # A windowed build next (the first was a full refresh: the database was new). Its window reaches
    # the incremental models through the environment, and it reuses the parse state of the first
    # build instead of parsing the project again; the marts stay what they were.
    assert (data_dir / "build" / "dbt-state" / "partial_parse.msgpack").exists()
    second = dg.materialize([marquee_dbt_models], resources={"dbt": dbt_resource()},
                            tags={"marquee/min_date": "2025-01-05", "marquee/max_date": "2025-01-10"})
    assert second.success
    build = max((p for p in (data_dir / "build" / "dbt-target").iterdir() if p.name.endswith("-build")),
                key=lambda p: p.stat().st_mtime)
    log = (build / "dbt.log").read_text()
    assert "Partial parsing enabled" in log and "Starting full parse" not in log
    compiled = (build / "compiled" / "marquee" / "models" / "intermediate" / "int_orders.sql").read_text()
    assert "cast('2025-01-05' as date)" in compiled and "cast('2025-01-10' as date)" in compiled, compiled
    assert any("delete from" in line and "int_orders" in line and "cast('2025-01-05' as date)" in line
               for line in log.splitlines())  # the pre-hook that clears the window got it too
    assert _gbp_net_in_catalog(data_dir) == 300 + 3000 + 1200
    assert "MARQUEE_DBT_MIN_DATE" not in os.environ  # the window left with the build


def test_only_the_newest_dbt_invocation_directories_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(tmp_path))
    base = dbt_targets_dir()
    for i in range(KEEP_DBT_TARGETS + 5):
        (base / f"old-{i:02d}").mkdir(parents=True)
        os.utime(base / f"old-{i:02d}", (1_000_000 + i, 1_000_000 + i))

    class Run:
        run_id = "abcdef0123456789"

    class Context:
        run = Run()

    fresh = invocation_target(Context(), "build")  # type: ignore[arg-type]
    fresh.mkdir()
    left = {p.name for p in base.iterdir()}
    # the newest KEEP - 1 old ones and the new one; the oldest went first
    assert left == {fresh.name, *(f"old-{i:02d}" for i in range(6, KEEP_DBT_TARGETS + 5))}


def test_the_dbt_resource_learns_its_version_without_running_dbt(monkeypatch):
    # dagster-dbt runs `dbt --version`, which asks PyPI for the newest release: never from here.
    import importlib.metadata

    import dagster_dbt.core.resource as dagster_dbt_resource

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dbt was run to learn its version: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)
    assert str(dbt_resource()._cli_version) == importlib.metadata.version("dbt-core")
