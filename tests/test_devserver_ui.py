"""`marquee dev` for real: sandbox + pre-load + `dagster dev`, then the UI's GraphQL endpoint.

One process tree, started the way a newcomer starts it, and asked what the UI would show: the raw
and mart assets in the graph, a materialization with rows, the schedules and sensors, the asset
checks. Then Ctrl-C (SIGINT) must bring the whole tree down.
"""

from __future__ import annotations

import contextlib
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


def test_dev_environment_points_at_the_sandbox_and_never_at_the_real_lake(tmp_path):
    from pipelines.cli.dev import dev_environment

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


# --- stopping ------------------------------------------------------------------------------------


def _dev(tmp_path: Path, port: int, *extra: str, ignore_sigint: bool = True) -> tuple[subprocess.Popen, Path]:
    dev_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MARQUEE_"))}
    env.update({"MARQUEE_DEV_DIR": str(dev_dir), "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "dev.log"
    cmd = [sys.executable, "-m", "pipelines.cli.dev", "--port", str(port), *extra]
    if ignore_sigint:
        # What a shell's background job, nohup or some supervisors do: start with SIGINT ignored.
        # That disposition is inherited across exec; it is how `marquee dev` used to ignore both
        # SIGINT and SIGTERM (dagster dev maps SIGTERM to SIGINT's handler) for 60 s.
        cmd = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, dev_dir


def _stop_and_check(proc: subprocess.Popen, signum: int, dev_dir: Path, log: Path, port: int | None) -> None:
    import dagster as dg
    import psutil

    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree, "marquee dev started no child process"
    t0 = time.monotonic()
    os.kill(proc.pid, signum)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        for child in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        pytest.fail(f"marquee dev still running 10 s after {signal.Signals(signum).name}:\n{log.read_text()[-3000:]}")
    assert time.monotonic() - t0 < 10
    time.sleep(0.3)
    alive = [c for c in tree if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [" ".join(c.cmdline())[:120] for c in alive]
    if port is not None:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    with dg.DagsterInstance.from_config(str(dev_dir / "dagster_home")) as instance:
        in_progress = instance.get_run_records(filters=dg.RunsFilter(statuses=[
            dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]))
        assert in_progress == []
        for pool in ("duckdb", "cymbio_returns"):
            info = instance.event_log_storage.get_concurrency_info(pool)
            assert [s for s in info.claimed_slots if s.run_id] == [] and info.pending_steps == []
    assert not [p for p in dev_dir.rglob("*") if ".inprogress" in p.name]


@pytest.mark.pipeline
def test_marquee_dev_serves_the_graph_with_data_schedules_and_checks_then_stops_on_sigint(tmp_path):
    """Started as a newcomer starts it (from a shell that ignores SIGINT in background jobs, the hard
    case), it serves the UI with data; then one SIGINT brings the whole tree down within 10 s."""
    port = _free_port()
    # Two days (yesterday and today) are enough to prove data reaches the UI and keeps the test short.
    proc, dev_dir = _dev(tmp_path, port, "--days", "2")
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

        # Ctrl-C: within 10 s nothing of the tree survives, the UI port is free, no run or slot is left.
        _stop_and_check(proc, signal.SIGINT, dev_dir, tmp_path / "dev.log", port)
        assert proc.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.pipeline
def test_marquee_dev_stops_within_10s_of_sigterm_while_serving(tmp_path):
    signum = signal.SIGTERM
    port = _free_port()
    proc, dev_dir = _dev(tmp_path, port, "--no-load")
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"marquee dev exited early:\n{(tmp_path / 'dev.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the UI never came up"
            time.sleep(0.5)
        time.sleep(2)  # the daemon and code server are up too
        _stop_and_check(proc, signum, dev_dir, tmp_path / "dev.log", port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.pipeline
def test_marquee_dev_stops_within_10s_of_sigterm_during_the_preload(tmp_path):
    import dagster as dg

    port = _free_port()
    # Every sandbox reply takes 2 s, so the pre-load is still landing when the signal comes.
    proc, dev_dir = _dev(tmp_path, port, "--days", "1", "--faults", "slow:1:2")
    home = dev_dir / "dagster_home"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"marquee dev exited early:\n{(tmp_path / 'dev.log').read_text()[-3000:]}")
            # After this line the instance exists (opening it earlier races its first migration).
            if "so the UI has data" in (tmp_path / "dev.log").read_text():
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    if instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                        break
            assert time.monotonic() < deadline, "the pre-load never started"
            time.sleep(0.2)
        time.sleep(1)
        _stop_and_check(proc, signal.SIGTERM, dev_dir, tmp_path / "dev.log", None)
        assert "stopped by SIGTERM in the raw phase" in (tmp_path / "dev.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
