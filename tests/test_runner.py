"""`marquee run` as an operator meets it: what it says about unconfigured providers, and how it
fails when a provider rejects its key (named asset, non-zero exit, the other providers still land)."""

from __future__ import annotations

import argparse
from datetime import date

import duckdb
import pytest

from assets.providers import PROVIDERS
from pipelines.cli.run import main as run_main
from pipelines.runner import run_range
from sandbox import start_sandbox

ANCHOR = date(2026, 3, 15)
PROVIDER_VARS = [var for p in PROVIDERS for var in p.resource.required]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv("MARQUEE_START_DATE", "2026-01-01")
    for var in PROVIDER_VARS:
        monkeypatch.delenv(var, raising=False)
    return data


@pytest.mark.pipeline
def test_unconfigured_providers_are_named_once_each_and_the_run_succeeds(data_dir, capsys):
    lines: list[str] = []
    run_range(ANCHOR, ANCHOR, progress=lines.append)
    skipped = [line.strip() for line in lines if line.strip().startswith("skipped")]
    assert "skipped tickettailor: credentials not configured (set TICKETTAILOR_API_KEY); " \
           "5 asset(s) not materialized" in skipped
    assert any(line.startswith("skipped sympla:") and "SYMPLA_TOKEN" in line for line in skipped)
    assert any(line.startswith("skipped cordial:") and "CORDIAL_API_KEY" in line for line in skipped)
    # one line per provider and phase, never one per asset (Cymbal is pulled and pushed to)
    assert sum(line.startswith("skipped tickettailor:") for line in skipped) == 1
    assert sum(line.startswith("skipped cymbal:") for line in skipped) == 2
    assert any("No provider is configured" in line for line in lines)
    # The marts exist, empty, so an analyst's query works rather than failing on a missing view.
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.revenue").fetchone() == (0,)
    con.close()


def assert_ensure_pool_slots_gives_each_pool_one_slot(instance) -> None:
    """ensure_pool_slots, run twice (it is idempotent), leaves every declared pool one slot, limit 1."""
    from pipelines.instance import MARQUEE_POOLS, ensure_pool_slots

    ensure_pool_slots(instance)
    ensure_pool_slots(instance)
    for pool in MARQUEE_POOLS:
        info = instance.event_log_storage.get_concurrency_info(pool)
        assert (info.slot_count, info.limit) == (1, 1), pool


def test_every_declared_pool_gets_its_slot_row_and_monitoring_is_on(data_dir):
    import dagster as dg

    from pipelines.instance import MARQUEE_POOLS, ensure_instance_config

    assert "cymbio_returns" in MARQUEE_POOLS and "duckdb" in MARQUEE_POOLS
    home = data_dir / "dagster_home"
    ensure_instance_config(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert_ensure_pool_slots_gives_each_pool_one_slot(instance)
        # Dagster's run monitoring (in the dagster dev daemon) frees the slots of ended runs.
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


@pytest.mark.pipeline
def test_revoked_key_fails_the_command_naming_the_asset_but_others_land(data_dir, monkeypatch, capsys):
    with start_sandbox(anchor=ANCHOR) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CYMBAL_API_KEY", "revoked-key-0000")
        code = run_main(argparse.Namespace(start=ANCHOR.isoformat(), end=ANCHOR.isoformat(), select=None,
                                           verbose=False))
    captured = capsys.readouterr()
    assert code == 1
    failure = captured.err[captured.err.index("marquee run FAILED"):]
    assert "cymbal_campaign_analytics" in failure
    assert "revoked" in failure.lower()
    assert "revoked-key-0000" not in captured.out + captured.err  # never echo the secret
    # Its key was set (and rejected): never reported as "credentials not configured".
    assert "skipped cymbal" not in captured.out + captured.err
    assert "credentials not configured" not in captured.out + captured.err
    assert "cymbal: 1 asset(s) not materialized (failed or skipped" in captured.out
    # Ticket Tailor still landed and the marts were still built from it.
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.revenue where provider = 'tickettailor'").fetchone()[0] > 0
    con.close()
