"""The deployment files, as far as they can be checked without a cluster or Docker.

deploy/values.yaml must parse and use only keys of Dagster's Helm chart (deploy/chart-keys.txt, a
trimmed copy of the chart's values schema), hold no secret, and say what marquee's own dagster.yaml
says about the run queue and run monitoring. The Dockerfile must serve the code location the
chart's user deployment names. Rendering the chart and building the image were not run here
(deploy/README.md); deploy/try-image-steps.sh runs the image's install steps in a scratch venv.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipelines.instance import _RUN_MONITORING, run_queue

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "values.yaml"
CHART_KEYS = ROOT / "deploy" / "chart-keys.txt"


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _paths(node: Any, prefix: str = "") -> list[str]:
    """Every key path in `node` (`a.b`, list items as `[]`), leaves and inner keys alike."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out += _paths(value, path)
    elif isinstance(node, list):
        for item in node:
            out += _paths(item, f"{prefix}[]")
    return out


def _allowed(path: str, known: set[str]) -> bool:
    if path in known or f"{path}[]" in known:
        return True
    # An inner key on the way to a known leaf (`postgresql` for `postgresql.enabled`) ...
    if any(k.startswith(f"{path}.") or k.startswith(f"{path}[]") for k in known):
        return True
    # ... or anything below a free-form key (`env.*`, `volumes[].*`).
    parts = re.split(r"(?=\.)|(?=\[\])", path)
    return any(f"{''.join(parts[:i])}.*" in known for i in range(1, len(parts) + 1))


def test_values_parse_and_use_only_keys_of_the_dagster_chart():
    known = {line.strip() for line in CHART_KEYS.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    unknown = [path for path in _paths(_values()) if not _allowed(path, known)]
    assert unknown == []


def test_the_key_check_catches_a_misspelt_key():
    known = {"postgresql.postgresqlHost", "dagster-user-deployments.deployments[].env.*"}
    assert not _allowed("postgresql.postgresqlHostname", known)
    assert _allowed("dagster-user-deployments.deployments[].env.ANY_NAME", known)
    assert not _allowed("dagster-user-deployments.deployments[].envs", known)


def test_values_hold_no_secret_and_take_every_credential_from_a_secret():
    values = _values()
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = deployment["env"]
    from assets.providers import PROVIDERS

    secret_vars = {var for p in PROVIDERS for var in p.resource.required if not var.endswith(("_BASE_URL", "_ID"))}
    secret_vars.add("MARQUEE_PII_HASH_KEY")
    assert not secret_vars & set(env), "a credential must come from a Secret, not from values.yaml"
    assert deployment["envSecrets"] and values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]


def test_values_match_marquees_own_run_queue_and_monitoring():
    values = _values()
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    ours = run_queue()
    assert queue["maxConcurrentRuns"] == ours["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == ours["tag_concurrency_limits"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    camel = {re.sub(r"_(\w)", lambda m: m.group(1).upper(), key): value for key, value in _RUN_MONITORING.items()}
    assert monitoring == camel


def test_the_image_serves_the_code_location_the_chart_names():
    values = _values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("-m") + 1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "'.[postgres,k8s,s3]'" in dockerfile and "DO_NOT_TRACK=1" in dockerfile
    assert f'"-m", "{module}"' in dockerfile and f'"-p", "{deployment["port"]}"' in dockerfile
    assert module == (yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"])
