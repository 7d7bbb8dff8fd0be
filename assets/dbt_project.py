"""Where the dbt project lives and how its manifest is prepared, offline.

`DbtProject.prepare_if_dev()` only parses under `dagster dev`; the CLI, the tests and CI load the
Definitions without it, so the manifest is (re)built here whenever it is missing or older than any
model, macro or project file. `dbt parse` needs no network and no database connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from resources import settings
from resources.files import exclusive_lock


def dbt_database_path() -> Path:
    """The pipeline-private DuckDB file dbt builds into."""
    return settings.data_dir() / "build" / "dbt.duckdb"


def dbt_env() -> dict[str, str]:
    """Environment for every dbt invocation: offline, untracked, pointed at our database."""
    env = dict(os.environ)
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(settings.DBT_PROJECT_DIR),
            "MARQUEE_DBT_DATABASE": str(dbt_database_path()),
            "MARQUEE_DATA_DIR": str(settings.data_dir()),
        }
    )
    return env


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for sub in ("models", "macros", "tests", "seeds", "snapshots"):
        for path in (project_dir / sub).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    for name in ("dbt_project.yml", "profiles.yml"):
        newest = max(newest, (project_dir / name).stat().st_mtime)
    return newest


def _manifest_is_fresh(manifest: Path, project_dir: Path) -> bool:
    return manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project_dir)


def ensure_manifest(project_dir: Path = settings.DBT_PROJECT_DIR) -> Path:
    """The project's manifest, parsed again when any model, macro or project file is newer.

    Several processes load the code location at once (the webserver and the daemon, parallel test
    workers), so the parse runs under a lock and writes into a private target directory; its manifest
    is renamed into place, and a reader never sees a half-written one."""
    target = project_dir / "target"
    manifest = target / "manifest.json"
    if _manifest_is_fresh(manifest, project_dir):
        return manifest
    with exclusive_lock(target / ".parse.lock"):
        if _manifest_is_fresh(manifest, project_dir):
            return manifest  # another process parsed while this one waited
        private = target / f".parse-{os.getpid()}"
        dbt = Path(sys.executable).with_name("dbt")
        try:
            result = subprocess.run(
                [str(dbt), "parse", "--quiet", "--project-dir", str(project_dir),
                 "--profiles-dir", str(project_dir), "--target-path", str(private)],
                env=dbt_env(), capture_output=True, text=True, check=False,
            )
            if result.returncode != 0 or not (private / "manifest.json").exists():
                raise RuntimeError(
                    "dbt could not parse dbt_project/ (fix the model named below, then reload):\n"
                    + result.stdout[-4000:] + result.stderr[-4000:]
                )
            os.replace(private / "manifest.json", manifest)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    return manifest


os.environ.update({k: v for k, v in dbt_env().items() if k.startswith(("DO_NOT", "DBT_", "MARQUEE_DBT"))})
ensure_manifest()
dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROJECT_DIR)
