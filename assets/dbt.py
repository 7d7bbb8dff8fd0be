"""The dbt models (staging -> intermediate -> marts, and the reverse sync's inputs) as Dagster assets,
downstream of the raw assets.

One `dbt build` materializes the models and runs their dbt tests, which Dagster shows as asset
checks (tests of severity `error` are blocking). Around it:

1. before: the pipeline-private build database (`$MARQUEE_DATA_DIR/build/dbt.duckdb`, in a
   directory only its owner can read) gets fresh `raw.*` views over the lake
   (resources/warehouse.create_raw_views). The PII hash key is never written anywhere: each dbt
   connection gets it as a DuckDB session variable (resources/pii.py);
2. dbt builds, with the window `min_date`/`max_date` when the run names one (run config, or the run
   tags `marquee/min_date`, `marquee/max_date`), so the incremental models only recompute those days.
   The window reaches dbt as environment variables (MARQUEE_DBT_MIN_DATE/MAX_DATE), not --vars, and
   each data directory keeps dbt's parse state (`build/dbt-state`), so a build re-parses the project
   only when a file of it changed. When the dbt project itself changed since the last successful
   build (a new column, a changed rule), the build is a full refresh instead, once: an incremental
   model must never mix rows built by two versions of its SQL;
3. after: every model and seed is exported to `lake/models/{schema}/{name}.parquet` (temp file +
   rename), and the analysts' catalog is republished (schema `sync`, which holds personal data for
   the reverse sync, is exported but never published).

Analysts never open the build database; they read the catalog, so a long query can't block a run.
The asset runs in the "duckdb" pool, which pipelines/instance.py limits to 1, and holds the lake's
build lock (resources/lake.py `build_lock`) for the whole build, so two builds never overlap even
when Dagster admits two at once.
"""

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import dagster_dbt as dg_dbt
import duckdb
from dbt.constants import PARTIAL_PARSE_FILE_NAME  # the file dbt writes and dagster-dbt copies
from packaging import version as packaging_version

from assets import providers
from assets.dbt_project import dbt_database_path, dbt_env, dbt_project
from assets.mart_charts import markdown_image, revenue_per_day_svg
from resources import lake, lakefs, settings
from resources.files import written_atomically
from resources.lake import crash_point
from resources.names import DUCKDB_POOL, MAX_DATE_TAG, MIN_DATE_TAG, MODEL_GROUPS, SEED_GROUP
from resources.pii import development_key_warning, open_build_database
from resources.warehouse import create_raw_views, publish_catalog

log = logging.getLogger(__name__)

DBT_RESOURCE_KEY = "dbt"
# What the build's fingerprint covers: everything that decides what a model holds.
FINGERPRINT_PARTS = ("models", "macros", "seeds", "dbt_project.yml")


def dbt_vars(min_date: str | date | None = None, max_date: str | date | None = None) -> dict[str, str]:
    """The half-open reload window [min_date, max_date) of a build, validated; empty for a full pass."""
    out: dict[str, str] = {}
    parsed: dict[str, date] = {}
    for name, value in (("min_date", min_date), ("max_date", max_date)):
        if value in (None, ""):
            continue
        try:
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
        except ValueError as exc:
            raise ValueError(f"dbt var {name}={value!r} is not a date; use YYYY-MM-DD.") from exc
        parsed[name] = day
        out[name] = day.isoformat()
    if len(parsed) == 2 and parsed["min_date"] >= parsed["max_date"]:
        raise ValueError(
            f"empty dbt window [{out['min_date']}, {out['max_date']}): max_date is exclusive and must be "
            "after min_date."
        )
    return out


def build_args(full_refresh: bool = False) -> list[str]:
    """`dbt build`'s arguments. The window is not among them: it goes in the environment
    (`window_env`), so that it does not void dbt's saved parse state every day as --vars would."""
    # dbt unit tests check the SQL itself, not the data: CI runs them (tests/test_dbt_unit.py); a
    # production build would only pay for them, and a failing one would hold back its model.
    args = ["build", "--exclude-resource-type", "unit_test"]
    if full_refresh:
        args.append("--full-refresh")
    return args


# The environment variables dbt_project/macros/incremental_window.sql reads the window from.
WINDOW_ENV = {"min_date": "MARQUEE_DBT_MIN_DATE", "max_date": "MARQUEE_DBT_MAX_DATE"}


def window_env(window: Mapping[str, str]) -> dict[str, str]:
    """The window (from `dbt_vars`) as environment variables; both always set, empty for no bound,
    so a window of an earlier build in this process never leaks into the next."""
    return {env: window.get(name, "") for name, env in WINDOW_ENV.items()}


def dbt_state_dir() -> Path:
    """Where this data directory keeps dbt's parse state (partial_parse.msgpack) between builds.

    dbt re-parses the whole project (~3 s) unless it finds the state of an earlier parse made with
    the same profile, vars and files, and dagster-dbt copies it from $DBT_TARGET_PATH into each
    invocation's fresh target directory. The profile names this data directory's build database, so
    the state is kept per data directory; dbt itself checks that it still applies."""
    return settings.data_dir() / "build" / "dbt-state"


def keep_parse_state(invocation_target: Path) -> None:
    """Keep the parse state a dbt invocation wrote, for the next build in this data directory."""
    state = invocation_target / PARTIAL_PARSE_FILE_NAME
    if state.exists():
        dbt_state_dir().mkdir(parents=True, exist_ok=True)
        with written_atomically(dbt_state_dir() / PARTIAL_PARSE_FILE_NAME) as tmp:
            shutil.copyfile(state, tmp)


@contextlib.contextmanager
def dbt_process_env(window: Mapping[str, str] | None = None) -> Iterator[None]:
    """Point the dbt subprocess (it inherits os.environ) at this data dir's build database, its
    saved parse state and the build's window."""
    wanted = {k: v for k, v in dbt_env().items() if k.startswith(("DO_NOT", "DBT_", "MARQUEE_DBT", "MARQUEE_DATA"))}
    wanted["DBT_TARGET_PATH"] = str(dbt_state_dir())  # only where dagster-dbt looks for the state
    wanted.update(window_env(window or {}))
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prepare_build_database(db_path: Path | None = None, lake_root: Path | str | None = None) -> list[str]:
    """Create the raw views dbt reads; returns their names. The directory is the owner's alone:
    the build database holds every model, the sync's personal data included."""
    db_path = Path(db_path) if db_path is not None else dbt_database_path()
    db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db_path.parent.chmod(0o700)
    con = duckdb.connect(str(db_path))
    try:
        views = create_raw_views(con, lake_root if lake_root is not None else settings.lake_location(),
                                 entities=providers.entities())
    finally:
        con.close()
    return views


def project_fingerprint(project_dir: Path = settings.DBT_PROJECT_DIR) -> str:
    """A hash of the dbt project's code (models, macros, seeds, dbt_project.yml)."""
    digest = hashlib.sha256()
    for part in FINGERPRINT_PARTS:
        root = project_dir / part
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _fingerprint_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".fingerprint")


def needs_full_refresh(db_path: Path) -> bool:
    """True when the build database was last built by other dbt code, or never fully built."""
    marker = _fingerprint_file(db_path)
    return not marker.exists() or marker.read_text().strip() != project_fingerprint()


def record_fingerprint(db_path: Path) -> None:
    """After a successful build: this database now holds what this code builds."""
    with written_atomically(_fingerprint_file(db_path)) as tmp:
        Path(tmp).write_text(project_fingerprint() + "\n")


def _has_seed(db_path: Path) -> bool:
    if not db_path.exists():
        return False
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return _has_table(con, SEED_GROUP, "currencies")
    finally:
        con.close()


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def _manifest_models(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") in ("model", "seed") and node.get("config", {}).get("materialized") != "ephemeral":
            out.append((node["schema"], node.get("alias") or node["name"]))
    return sorted(out)


def export_models(
    db_path: Path | None = None,
    lake_root: Path | str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Write every built model to `lake/models/{schema}/{name}.parquet`; returns rows per model.

    Each file is written to a temporary name and renamed over the old one, so a reader of the
    catalog sees either the previous export or the new one, never half a file.
    """
    db_path = Path(db_path) if db_path is not None else dbt_database_path()
    root = lake.lake_root(lake_root)
    if manifest is None:
        manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    counts: dict[str, int] = {}
    con = open_build_database(db_path, read_only=True)  # staging views hash with the session's key
    try:
        lakefs.register_duckdb(con, root)
        for schema, name in _manifest_models(manifest):
            if not _has_table(con, schema, name):
                continue  # not built (e.g. a subset run before its first build)
            with lakefs.written_atomically(lake.model_path(schema, name, root)) as tmp:
                path_sql = "'" + str(tmp).replace("'", "''") + "'"
                con.execute(f'COPY (SELECT * FROM "{schema}"."{name}") TO {path_sql} (FORMAT parquet)')
            row = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
            counts[f"{schema}.{name}"] = int(row[0]) if row else 0
    finally:
        con.close()
    return counts


def _is_assetless_source(dbt_resource_props: Mapping[str, Any]) -> bool:
    """A source with `meta.marquee.asset: false` (raw.landed_partitions) is no Dagster asset."""
    return (
        dbt_resource_props.get("resource_type") == "source"
        and dbt_resource_props.get("meta", {}).get("marquee", {}).get("asset") is False
    )


class MarqueeDbtTranslator(dg_dbt.DagsterDbtTranslator):
    """Sources are the raw assets (by their `meta.dagster.asset_key`, i.e. `tickettailor_orders`);
    models and seeds are `{schema}/{name}` (e.g. `marts/revenue`, `sync/sync_orders`,
    `reference/currencies`), grouped by their folder (staging / intermediate / marts / sync) or
    `reference` for seeds. A source marked `meta.marquee.asset: false` is dropped from its models'
    deps, so Dagster does not invent an external asset for it."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        assetless = {
            self.get_asset_key(props)
            for props in manifest.get("sources", {}).values()
            if _is_assetless_source(props)
        }
        if assetless and any(dep.asset_key in assetless for dep in spec.deps):
            spec = spec.replace_attributes(deps=[d for d in spec.deps if d.asset_key not in assetless])
        return spec

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        kind = dbt_resource_props["resource_type"]
        if kind == "source":
            key = dbt_resource_props.get("meta", {}).get("dagster", {}).get("asset_key")
            return dg.AssetKey(key) if key else dg.AssetKey(dbt_resource_props["name"])
        if kind in ("model", "seed") and dbt_resource_props.get("schema"):
            # The relation's own schema: what an analyst types, and where the export lands.
            name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
            return dg.AssetKey([dbt_resource_props["schema"], name])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        kind = dbt_resource_props.get("resource_type")
        if kind == "model" and len(fqn) > 1 and fqn[1] in MODEL_GROUPS:
            return fqn[1]
        if kind == "seed":
            return SEED_GROUP
        return None


class DbtBuildConfig(dg.Config):
    """Run config for the dbt build. Dates are UTC days; max_date is exclusive."""

    min_date: str | None = None
    max_date: str | None = None
    full_refresh: bool = False


# How long dbt gets to stop after SIGINT (it cancels its queries and exits) before it is killed.
# dagster-dbt's own default is 25 s; `marquee run` must end within 10 s of a SIGTERM.
DBT_STOP_SECONDS = 5.0


def _stop_dbt(invocation: dg_dbt.DbtCliInvocation | None) -> None:
    """Make sure the dbt subprocess is gone when the step ends early (signal, error).

    dagster-dbt forwards an interrupt to dbt only when it lands while dbt's output is being read,
    and then waits up to 25 s; an interrupt raised anywhere else in this step would leave dbt
    running, holding the build database's write lock after the step (and its pool slot) is gone.
    """
    process = getattr(invocation, "process", None)
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=DBT_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _window_from_run(config: DbtBuildConfig, tags: Mapping[str, str]) -> dict[str, str]:
    return dbt_vars(config.min_date or tags.get(MIN_DATE_TAG), config.max_date or tags.get(MAX_DATE_TAG))


@dg_dbt.dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=MarqueeDbtTranslator(),
    name="marquee_dbt_models",
    pool=DUCKDB_POOL,
)
def marquee_dbt_models(context: dg.AssetExecutionContext, dbt: dg_dbt.DbtCliResource, config: DbtBuildConfig):
    """Build every dbt model, export them to the lake, republish the analysts' catalog."""
    with lake.build_lock(settings.lake_location()):
        yield from _build_models(context, dbt, config)


def _build_models(context: dg.AssetExecutionContext, dbt: dg_dbt.DbtCliResource,
                  config: DbtBuildConfig) -> Iterator[Any]:
    window = _window_from_run(config, context.run.tags)
    db_path = dbt_database_path()
    full_refresh = config.full_refresh
    if not full_refresh and needs_full_refresh(db_path):
        full_refresh = True
        context.log.info("the dbt project changed since the last build of this database (or it was never "
                         "built): this build is a full refresh, so no incremental model mixes two versions")
    with dbt_process_env({} if full_refresh else window):
        views = prepare_build_database(db_path, settings.lake_location())
        # Once, in the run's Dagster log (UI and terminal); the hashing code then says nothing more.
        development_key = development_key_warning()
        if development_key:
            context.log.warning(development_key)
        context.log.info(
            f"dbt build into {db_path} over {len(views)} raw views; "
            + ("full refresh" if full_refresh else (
                f"window [{window.get('min_date', '-inf')}, {window.get('max_date', '+inf')})"
                if window else "no window"))
        )
        # dbt holds the build database's write lock until it exits, so row counts and previews can
        # only be read afterwards: events are held back and yielded once dbt is done (dbt's own log
        # still streams live). On failure, what succeeded is still reported before the error, and
        # nothing is exported: the reverse sync keeps reading the last export that passed its checks.
        events: list[Any] = []
        invocation = None
        try:
            crash_point("dbt.build")  # test seam: die holding the `duckdb` pool slot
            # (context.assets_def is the subsetted definition in a subset run: compare with the whole.)
            subset = not set(marquee_dbt_models.keys) <= set(context.selected_asset_keys)
            if subset and (full_refresh or not _has_seed(db_path)):
                # The staging models convert money with reference.currencies; a partial selection
                # (`--select group:marts`, one model in the UI) must not fail for lack of it.
                context.log.info("loading the reference seeds first (the selection does not include them)")
                seed_target = invocation_target(context, "seed")
                dbt.cli(["seed"], raise_on_error=True, target_path=seed_target).wait()
                keep_parse_state(seed_target)
            build_target = invocation_target(context, "build")
            invocation = dbt.cli(build_args(full_refresh), context=context, target_path=build_target)
            invocation.termination_timeout_seconds = DBT_STOP_SECONDS
            for event in invocation.stream():
                events.append(event)
            keep_parse_state(build_target)
        except Exception:
            if invocation is not None:
                keep_parse_state(build_target)  # dbt parsed before it failed: the state is sound
            _stop_dbt(invocation)
            yield from events
            raise
        except BaseException:  # an interrupt (SIGTERM/SIGINT): stop dbt, report nothing more
            _stop_dbt(invocation)
            raise
        if not subset:
            record_fingerprint(db_path)  # only a build of every model makes the database current
        counts = export_models(db_path, settings.lake_location())
        yield from _with_table_metadata(context, events, db_path)
    catalog = publish_catalog(entities=providers.entities())
    context.log.info(f"exported {len(counts)} models to {lake.models_dir()}; catalog {catalog}")


# Each dbt invocation writes its manifest, run results and log into a directory of its own: kept
# under the data directory (the project directory may be read-only, e.g. in a container image),
# and only the newest few, for reading after a failure; without pruning, every run left ~5 MB.
KEEP_DBT_TARGETS = 10


def dbt_targets_dir() -> Path:
    return settings.data_dir() / "build" / "dbt-target"


def invocation_target(context: dg.AssetExecutionContext, command: str) -> Path:
    """A fresh target directory for one dbt invocation of this run; older ones beyond the newest
    KEEP_DBT_TARGETS are removed first."""
    base = dbt_targets_dir()
    base.mkdir(parents=True, exist_ok=True)
    old = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for path in old[:max(0, len(old) - KEEP_DBT_TARGETS + 1)]:
        shutil.rmtree(path, ignore_errors=True)
    return base / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{context.run.run_id[:8]}-{command}"


def table_metadata(con: duckdb.DuckDBPyConnection, schema: str, name: str, preview_rows: int = 5) -> dict[str, Any]:
    """Row count, column schema (as built) and a short Markdown preview of one model."""
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    row = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
    sample = con.execute(f'SELECT * FROM "{schema}"."{name}" LIMIT {int(preview_rows)}').fetchall()
    header = "| " + " | ".join(c for c, _ in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in r) + " |" for r in sample]
    return {
        "dagster/row_count": dg.MetadataValue.int(int(row[0]) if row else 0),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(c, t) for c, t in columns]),
        "preview": dg.MetadataValue.md("\n".join([header, rule, *body])),
    }


def mart_figures(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> dict[str, Any]:
    """The numbers the Dagster UI plots across materializations for the headline marts: plain
    numeric metadata (one key per figure, so each becomes a series in the asset's Plots tab), plus
    a per-event table for attendance. Money stays integer minor units, one key per currency."""
    figures: dict[str, Any] = {}
    if (schema, name) == ("marts", "revenue"):
        for currency, orders, gross, refunded, net in con.execute(
                "SELECT currency, sum(orders), sum(gross_cents), sum(refunded_cents), sum(net_cents) "
                'FROM "marts"."revenue" GROUP BY currency ORDER BY currency').fetchall():
            figures[f"orders {currency}"] = dg.MetadataValue.int(int(orders))
            figures[f"gross_cents {currency}"] = dg.MetadataValue.int(int(gross))
            figures[f"refunded_cents {currency}"] = dg.MetadataValue.int(int(refunded))
            figures[f"net_cents {currency}"] = dg.MetadataValue.int(int(net))
        per_day = con.execute('SELECT currency, order_date, sum(net_cents) FROM "marts"."revenue" '
                              "GROUP BY ALL ORDER BY ALL").fetchall()
        figures["net revenue per day"] = dg.MetadataValue.md(
            markdown_image(revenue_per_day_svg(per_day), "net revenue per day, one row per currency"))
    elif (schema, name) == ("marts", "attendance"):
        issued, checked_in = con.execute(
            'SELECT coalesce(sum(tickets_issued), 0), coalesce(sum(tickets_checked_in), 0) FROM "marts"."attendance" '
            "WHERE no_shows IS NOT NULL").fetchone()
        figures["tickets_issued (started events)"] = dg.MetadataValue.int(int(issued))
        figures["tickets_checked_in (started events)"] = dg.MetadataValue.int(int(checked_in))
        if issued:
            figures["attendance_rate (started events)"] = dg.MetadataValue.float(float(checked_in) / issued)
        rows = con.execute(
            "SELECT provider, event_id, tickets_issued, tickets_checked_in, attendance_rate "
            'FROM "marts"."attendance" WHERE no_shows IS NOT NULL ORDER BY starts_at DESC LIMIT 50').fetchall()
        table = ["| provider | event | issued | checked in | rate |", "|---|---|---|---|---|"]
        table += [f"| {p} | {e} | {i} | {c} | {'' if r is None else f'{r:.1%}'} |" for p, e, i, c, r in rows]
        figures["attendance by event (latest 50 started)"] = dg.MetadataValue.md("\n".join(table))
    return figures


def _with_table_metadata(context: dg.AssetExecutionContext, events: list[Any], db_path: Path) -> Iterator[Any]:
    con = open_build_database(db_path, read_only=True)
    try:
        lakefs.register_duckdb(con, settings.lake_location())
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                schema, name = key.path[0], key.path[-1]
                if len(key.path) == 2 and _has_table(con, schema, name):
                    event = dg.Output(
                        value=event.value,
                        output_name=event.output_name,
                        metadata={**event.metadata, **table_metadata(con, schema, name),
                                  **mart_figures(con, schema, name)},
                        data_version=event.data_version,
                        tags=event.tags,
                    )
            yield event
    finally:
        con.close()


class OfflineDbtCliResource(dg_dbt.DbtCliResource):
    """dagster-dbt's resource, minus one network call: it learns the dbt version by running
    `dbt --version`, which asks PyPI for the latest release (2-5 s online, a hang offline, and traffic
    the demo must never make) once per run. Our executable is always this environment's `dbt`, so
    its version is the installed dbt-core's."""

    @functools.cached_property
    def _cli_version(self) -> packaging_version.Version:
        return packaging_version.parse(importlib.metadata.version("dbt-core"))


def dbt_resource() -> dg_dbt.DbtCliResource:
    return OfflineDbtCliResource(
        project_dir=dbt_project,
        profiles_dir=os.fspath(settings.DBT_PROJECT_DIR),
        # The venv's dbt, found without relying on PATH (`dagster dev` may not have it).
        dbt_executable=os.fspath(Path(sys.executable).with_name("dbt")),
    )
