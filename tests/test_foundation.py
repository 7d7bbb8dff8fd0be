"""The project loads, the CLI answers, the code is lint-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_definitions_load():
    from pipelines.definitions import defs

    assert isinstance(defs, dg.Definitions)
    defs.get_repository_def().load_all_definitions()


@pytest.mark.pipeline  # loads the whole code location, which parses the dbt project
def test_workspace_validates():
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_help_lists_subcommands():
    result = subprocess.run([str(BIN / "marquee"), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in ("sandbox", "demo", "run", "dev"):
        assert name in result.stdout


def test_cli_unknown_command_fails():
    result = subprocess.run([str(BIN / "marquee"), "nope"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_no_dagster_table_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.dagster]" not in text and "[tool.dg]" not in text


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(BIN)) or "ruff"
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def test_every_provider_has_a_sandbox_and_staging_folder_and_the_sandbox_configures_it():
    """The product's declarations (assets/providers.py) and the sandbox's own list (sandbox/providers.py)
    name the same providers, and the sandbox's environment sets exactly the variables each resource
    reads, so `marquee demo` configures every provider there is."""
    from assets.providers import PROVIDERS
    from sandbox.providers import PROVIDERS as SANDBOXES

    sandboxes = {s.name: s for s in SANDBOXES}
    assert {p.name for p in PROVIDERS} == set(sandboxes)
    for p in PROVIDERS:
        env = sandboxes[p.name].env("http://127.0.0.1:1/x")
        assert set(p.resource.required) <= set(env), p.name
        assert set(env) <= set(p.resource.env.values()), p.name  # nothing the resource would not read
        assert (sandboxes[p.name].sandbox.__module__ + ".").startswith(p.sandbox_module + "."), p.name
        if p.entities:
            assert (ROOT / p.staging_folder).is_dir(), p.staging_folder
