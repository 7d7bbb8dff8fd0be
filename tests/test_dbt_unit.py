"""dbt unit tests (`unit_tests:` in the models' YAML): exact money conversion, campaign tags trimmed
and case-folded, the attribution window's edges, one row per campaign and currency. They run on
hand-written rows, not on a lake: dbt only needs the upstream relations to exist, to read their
column types, so the build database gets empty typed raw views and an `--empty` build first.

Production builds leave them out with `--exclude-resource-type unit_test`; the preparation below is
such a build, so it also shows that the flag keeps every unit test out.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_dbt_marts import dbt_cli

from assets.dbt import prepare_build_database

# runs dbt or the pipeline: left out of `make test-fast`; its module fixture is built once, on one worker
pytestmark = [pytest.mark.pipeline, pytest.mark.xdist_group("test_dbt_unit")]

# What production builds add to `dbt build` so no run pays for the unit tests.
EXCLUDE_UNIT_TESTS = ["--exclude-resource-type", "unit_test"]

# model -> its unit tests, as named in the YAML
UNIT_TESTS = {
    "stg_sympla__orders": [
        "sympla_reais_become_integer_centavos_exactly",
        "sympla_amounts_are_null_when_the_currency_is_unknown",
        "sympla_utm_campaign_is_trimmed_and_case_folded",
    ],
    "stg_tickettailor__orders": ["tickettailor_referral_tag_is_trimmed_and_case_folded"],
    "stg_cymbal__campaign_analytics": ["cymbal_campaign_tag_is_trimmed_and_case_folded"],
    "int_order_campaigns": ["attribution_window_edges", "attribution_window_length_is_the_var"],
    "campaign_attribution": ["campaign_attribution_rows_per_currency"],
}
UNIT_TEST_IDS = {f"unit_test.marquee.{model}.{name}" for model, names in UNIT_TESTS.items() for name in names}


def dbt(data_dir: Path, db_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The dbt CLI against the build database, without asserting success (a test below expects a failure)."""
    return dbt_cli(data_dir, db_path, args)


def results(data_dir: Path) -> dict[str, str]:
    """unique_id -> status of the last dbt invocation (run_results.json)."""
    run = json.loads((data_dir / "dbt_target" / "run_results.json").read_text())
    return {r["unique_id"]: r["status"] for r in run["results"]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("dbt_unit")
    (data_dir / "lake").mkdir()  # no files: every raw view is empty, typed from its entity's schema
    db_path = data_dir / "build" / "dbt.duckdb"
    prepare_build_database(db_path, data_dir / "lake")
    built = dbt(data_dir, db_path, ["build", "--empty", *EXCLUDE_UNIT_TESTS])
    assert built.returncode == 0, built.stdout[-6000:] + built.stderr[-2000:]
    manifest = json.loads((data_dir / "dbt_target" / "manifest.json").read_text())
    return {"data_dir": data_dir, "db": db_path, "build": results(data_dir), "manifest": manifest}


def test_the_project_defines_these_unit_tests(prepared):
    assert set(prepared["manifest"]["unit_tests"]) == UNIT_TEST_IDS


def test_a_production_build_runs_no_unit_test(prepared):
    ran = prepared["build"]
    assert not [uid for uid in ran if uid.startswith("unit_test.")]
    # ... while it did build the seed and every model, and ran the data tests
    assert ran["seed.marquee.currencies"] == "success"
    assert ran["model.marquee.int_order_campaigns"] == "success"
    assert ran["model.marquee.campaign_attribution"] == "success"
    assert any(uid.startswith("test.marquee.") for uid in ran)


def test_every_unit_test_passes(prepared):
    result = dbt(prepared["data_dir"], prepared["db"], ["test", "--select", "test_type:unit"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert results(prepared["data_dir"]) == dict.fromkeys(UNIT_TEST_IDS, "pass")
    for model, names in UNIT_TESTS.items():
        for name in names:
            assert re.search(rf" PASS {re.escape(model)}::{re.escape(name)} ", result.stdout), (model, name)


def test_a_wrong_window_fails_the_edges_test(prepared):
    # With an 8-day window, the order created exactly at sent_at + 7 days is attributed: the unit
    # test's expectation no longer holds, and dbt says so (it is not vacuous).
    result = dbt(
        prepared["data_dir"],
        prepared["db"],
        ["test", "--select", "attribution_window_edges", "--vars", json.dumps({"attribution_window_days": 8})],
    )
    assert result.returncode != 0
    assert results(prepared["data_dir"]) == {"unit_test.marquee.int_order_campaigns.attribution_window_edges": "fail"}
    assert "at_end" in result.stdout  # dbt's diff names the extra row
