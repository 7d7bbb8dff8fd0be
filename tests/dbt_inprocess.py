"""dbt for the model tests, run inside the test process with a parsed project kept between calls.

Why: each `dbt` subprocess paid ~4 s of imports and ~4 s of parsing the project before its first
query, and the model tests call dbt about twenty times. dbt's own programmatic entry point
(`dbtRunner`) takes an already parsed manifest and skips parsing. A manifest is reused only for
calls that would parse to the same thing: the same `--vars`, the same database name (dbt names
every relation's database after the file's stem) and the same environment variables the project
reads (the consent label). Production runs are untouched: dagster-dbt keeps its dbt subprocess,
which tests/test_dbt_wiring.py and the pipeline tests exercise.

`dbt(args, env)` mirrors `subprocess.run([dbt, *args], env=env)`: it returns an object with
`returncode`, `stdout` (dbt's info-level lines, e.g. `Done. PASS=...`) and `stderr`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources import settings

# Environment variables the dbt project reads while parsing (profiles.yml and `env_var()` calls).
_PARSE_ENV = ("MARQUEE_CONSENT_LABEL",)
_manifests: dict[tuple[str, ...], Any] = {}


@dataclass
class DbtResult:
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1] if name in args else ""


def _close_adapter_connection() -> None:
    # dbt-duckdb keeps the database open in a class attribute after an invocation; a test then
    # opening the same file (read-only) in this process would be refused, so it is closed here.
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()


def dbt(args: list[str], env: Mapping[str, str]) -> DbtResult:
    """Run `dbt *args` (project and profiles: dbt_project/) with exactly `env` as the environment."""
    from dbt.cli.main import dbtRunner

    project = str(settings.DBT_PROJECT_DIR)
    full_args = [*args, "--project-dir", project, "--profiles-dir", project]
    key = (_option(args, "--vars"), Path(env.get("MARQUEE_DBT_DATABASE", "")).stem,
           *(env.get(name, "") for name in _PARSE_ENV))
    lines: list[str] = []

    def collect(event: Any) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            lines.append(str(event.info.msg))

    with _environment(env):
        try:
            manifest = _manifests.get(key)
            if manifest is None:
                parsed = dbtRunner().invoke(["parse", "--project-dir", project, "--profiles-dir", project,
                                             *(["--vars", key[0]] if key[0] else [])])
                if not parsed.success:
                    return DbtResult(2, "", f"dbt parse failed: {parsed.exception}")
                manifest = _manifests[key] = parsed.result
            result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(full_args)
        finally:
            _close_adapter_connection()
    stderr = "" if result.exception is None else repr(result.exception)
    return DbtResult(0 if result.success else (1 if result.exception is None else 2), "\n".join(lines), stderr)
