"""`marquee dev` for real: sandbox + pre-load + `dagster dev`, then the UI's GraphQL endpoint.

One process tree, started the way a newcomer starts it, and asked what the UI would show: the raw
and mart assets in the graph, a materialization with rows, the schedules and sensors, the asset
checks. Then Ctrl-C (SIGINT) must bring the whole tree down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

ASSETS_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    pools
    assetChecksOrError { ... on AssetChecks { checks { name } } }
    assetMaterializations(limit: 1) { runId timestamp metadataEntries { label ... on IntMetadataEntry { intValue } } }
  }
}
"""

SCHEDULES_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        schedules { name cronSchedule scheduleState { status } }
        sensors { name sensorState { status } }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _wait_for_assets(port: int, proc: subprocess.Popen, deadline: float) -> list[dict]:
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"marquee dev exited early with {proc.returncode}")
        try:
            nodes = _graphql(port, ASSETS_QUERY)["assetNodes"]
            if nodes:
                return nodes
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last_error = repr(exc)
        time.sleep(1)
    pytest.fail(f"the Dagster UI did not answer in time ({last_error})")


def test_marquee_dev_serves_the_graph_with_data_schedules_and_checks(tmp_path):
    port = _free_port()
    dev_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MARQUEE_"))}
    env.update({"MARQUEE_DEV_DIR": str(dev_dir), "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    log = (tmp_path / "dev.log").open("w+")
    # Two days (yesterday and today) are enough to prove data reaches the UI and keeps the test short.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.devserver", "--port", str(port), "--days", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        nodes = _wait_for_assets(port, proc, time.monotonic() + 150)
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}

        # raw and mart assets are in the graph, in their groups
        assert by_key["tickettailor_orders"]["groupName"] == "tickettailor"
        assert by_key["sympla_participants"]["groupName"] == "sympla"
        marts = [n for n in nodes if n["groupName"] == "marts"]
        assert {n["assetKey"]["path"][-1] for n in marts} >= {"attendance", "revenue", "campaign_attribution"}
        # the dbt models sit in the DuckDB pool; landing does not
        assert all("duckdb" in (n["pools"] or []) for n in marts)
        assert "duckdb" not in (by_key["tickettailor_orders"]["pools"] or [])

        # the pre-load materialized raw and mart assets, and the raw one reported rows
        orders = by_key["tickettailor_orders"]["assetMaterializations"]
        assert orders, "no materialization of tickettailor_orders reached the UI"
        rows = {e["label"]: e.get("intValue") for e in orders[0]["metadataEntries"]}
        assert rows.get("dagster/row_count", 0) > 0
        assert all(n["assetMaterializations"] for n in marts), "a mart was never built"

        # asset checks: the anomaly check on orders, and the landing checks
        checks = {c["name"] for c in by_key["tickettailor_orders"]["assetChecksOrError"]["checks"]}
        assert "row_count_anomaly" in checks and len(checks) >= 2

        # schedules and sensors, with the documented default states
        (repo,) = _graphql(port, SCHEDULES_QUERY)["repositoriesOrError"]["nodes"]
        schedules = {s["name"]: s for s in repo["schedules"]}
        assert schedules["raw_orders_daily"]["scheduleState"]["status"] == "RUNNING"
        assert schedules["raw_orders_daily"]["cronSchedule"] == "0 1 * * *"
        assert schedules["cymbio_returns_daily"]["scheduleState"]["status"] == "STOPPED"
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["marts_after_raw"] == "RUNNING"
        assert sensors["reverse_sync_after_marts"] == "STOPPED"

        # the instance dagster dev runs on caps the duckdb pool
        config = yaml.safe_load((dev_dir / "dagster_home" / "dagster.yaml").read_text())
        assert config["concurrency"]["pools"]["default_limit"] == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal Ctrl-C does
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 0, output[-3000:]
    # nothing of the tree survives: the UI port is free again
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_dev_environment_points_at_the_sandbox_and_never_at_the_real_lake(tmp_path):
    from pipelines.devserver import dev_environment

    sandbox = {"TICKETTAILOR_BASE_URL": "http://127.0.0.1:1/tickettailor", "TICKETTAILOR_API_KEY": "sandbox"}
    real = {"TICKETTAILOR_BASE_URL": "https://api.tickettailor.com", "TICKETTAILOR_API_KEY": "sk_real",
            "MARQUEE_DATA_DIR": "/srv/marquee"}
    # MARQUEE_DATA_DIR from .env is the real lake: ignored
    env = dev_environment(sandbox, base=real, dotenv={"MARQUEE_DATA_DIR": "/srv/marquee"})
    assert env["TICKETTAILOR_API_KEY"] == "sandbox"
    assert env["TICKETTAILOR_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["MARQUEE_DATA_DIR"] == str((Path.cwd() / "data" / "dev").resolve())
    assert env["DAGSTER_HOME"] == str(Path(env["MARQUEE_DATA_DIR"]) / "dagster_home")
    # one given in the shell (e.g. to open `marquee demo`'s data) is honoured
    shell = dev_environment(sandbox, base={"MARQUEE_DATA_DIR": str(tmp_path / "demo")}, dotenv={})
    assert shell["MARQUEE_DATA_DIR"] == str(tmp_path / "demo")
    # MARQUEE_DEV_DIR wins over both
    dev = dev_environment(sandbox, base={**real, "MARQUEE_DEV_DIR": str(tmp_path / "d")}, dotenv={})
    assert dev["MARQUEE_DATA_DIR"] == str(tmp_path / "d")
