"""`marquee demo` for a week, run once in a fresh directory as a newcomer runs it, and everything that
can be checked on its result:

- end to end: every mart row equals the ground truth the sandbox computes from its own dataset (in
  Python, not SQL), to the cent; after the whole run no file holds the PII key or a secret;
- the terminal: the phase lines and the figures, and no dbt node line (those go to the run's log);
- the analysts' first hour: the README's analyst commands as written, `marquee sql` with and without
  a query, and the published catalog opened by the older DuckDB clients analysts really have (PyPI's
  `duckdb-cli` 1.5, installed with marquee, and Python DuckDB 1.2 in an environment of its own).

One demo serves them all (the suite runs each module on one worker). The same week under faults is
tests/test_end_to_end.py."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import venv
from datetime import date
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import pytest

from resources import settings
from sandbox import truth
from sandbox import world as sandbox_world

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
OLD_PYTHON_DUCKDB = "duckdb>=1.2,<1.3"

# The week of tests/test_end_to_end.py: the sandbox anchored on its last day, so the data is the same
# on every run of the suite, whatever the date.
START = date(2026, 3, 9)
END = date(2026, 3, 15)
PII_KEY = "e2e-pii-key-7f3a9c0b5d"
# Every credential the sandbox hands out (sandbox/world.py), as the demo's environment carries them.
SECRETS = {name: getattr(sandbox_world, name) for name in (
    "TICKETTAILOR_API_KEY", "SYMPLA_TOKEN", "CYMBAL_API_KEY", "CYMBIO_CLIENT_ID", "CYMBIO_CLIENT_SECRET",
    "CORDIAL_API_KEY")}


def newcomer_env() -> dict[str, str]:
    """A shell that has run nothing but `make demo`: no MARQUEE_* variable, no DAGSTER_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARQUEE_", "DAGSTER_"))}
    env["DO_NOT_TRACK"] = "1"
    return env


def run(args: list[str], cwd: Path, timeout: float = 120, env: dict[str, str] | None = None,
        **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env or newcomer_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_marquee_sql_without_a_warehouse_says_what_to_do(tmp_path: Path) -> None:
    result = run([str(BIN / "marquee"), "sql", "select 1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "no warehouse found" in result.stderr and "make demo" in result.stderr
    result = run([str(BIN / "marquee"), "sql", "--db", str(tmp_path / "nope.duckdb"), "select 1"], cwd=tmp_path)
    assert result.returncode == 2 and "nope.duckdb" in result.stderr


def test_marquee_demo_refuses_a_bad_end_or_days_before_starting_anything(tmp_path: Path) -> None:
    result = run([str(BIN / "marquee"), "demo", "--end", "2026-13-01"], cwd=tmp_path)
    assert result.returncode == 2 and "--end '2026-13-01' is not a date" in result.stderr
    result = run([str(BIN / "marquee"), "demo", "--days", "0"], cwd=tmp_path)
    assert result.returncode == 2 and "--days must be at least 1" in result.stderr
    assert not (tmp_path / "data").exists()


# Every test of the demo fixture runs on one worker, so the demo runs once (`--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("test_demo")

DEMO_OUTPUT = "demo-output.txt"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where `marquee demo --end 2026-03-15` (a week) ran as a newcomer runs it (cwd = that
    directory; stdout a pipe, not a terminal), with a PII key set as an operator would. Its output is
    kept in `demo-output.txt`."""
    cwd = tmp_path_factory.mktemp("newcomer")
    result = run([str(BIN / "marquee"), "demo", "--end", END.isoformat(), "--days", str((END - START).days + 1)],
                 cwd=cwd, timeout=600, env={**newcomer_env(), "MARQUEE_PII_HASH_KEY": PII_KEY})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Loading {START} .. {END} into" in result.stdout
    assert (cwd / "data" / "demo" / "warehouse.duckdb").exists()
    (cwd / DEMO_OUTPUT).write_text(result.stdout)
    (cwd / ".venv").symlink_to(BIN.parent)  # the README's `.venv/bin/...` paths, as in the repository
    return cwd


def secret_forms(value: str) -> set[bytes]:
    """A secret as it could be written: as is, in a Basic auth header, URL-encoded, as UTF-16."""
    texts = {value, base64.b64encode(f"{value}:".encode()).decode(), base64.b64encode(value.encode()).decode(),
             quote(value, safe=""), quote_plus(value)}
    return {t.encode() for t in texts} | {value.encode("utf-16-le")}


@pytest.mark.pipeline
def test_marts_match_ground_truth_and_no_file_holds_a_secret(demo: Path) -> None:
    data = demo / "data" / "demo"
    marts = truth.read_marts(data / "warehouse.duckdb")
    assert marts["revenue"], "the sandbox week must produce revenue rows"
    assert {r["currency"] for r in marts["revenue"]} >= {"BRL", "JPY"}
    # The demo's sandbox: default seed, anchored on the last day loaded.
    truth.assert_marts_match(None, sandbox_world.World(anchor=END), START, END, marts=marts)

    # After a whole run (landing, dbt, exports, catalog, sync log, Dagster's own storage), no file of
    # the data directory, nor dbt's target/ and logs/, holds the PII key or any secret, in any form.
    wanted = {"MARQUEE_PII_HASH_KEY": secret_forms(PII_KEY)} | {n: secret_forms(v) for n, v in SECRETS.items()}
    scanned = 0
    for root in (data, settings.DBT_PROJECT_DIR / "target", settings.DBT_PROJECT_DIR / "logs"):
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            blob = path.read_bytes()
            scanned += 1
            for name, forms in wanted.items():
                assert not any(f in blob for f in forms), f"{name} found in {path}"
    assert scanned > 100

    # The sync's inputs (personal data) were exported for it, and are not in the analysts' catalog.
    assert (data / "lake" / "models" / "sync" / "sync_contacts.parquet").exists()
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("select distinct schema_name from duckdb_views() where not internal")
                   .fetchall()}
    finally:
        con.close()
    assert {"raw", "staging", "marts", "reference"} <= schemas and "sync" not in schemas


DBT_NODE_LINE = re.compile(r"\b\d+ of \d+ (START|OK|PASS|ERROR|FAIL|WARN)\b")


@pytest.mark.pipeline
def test_the_demo_prints_its_phases_and_figures_and_dbt_talks_to_the_run_log(demo: Path) -> None:
    out = (demo / DEMO_OUTPUT).read_text()
    for phase in ("raw", "models", "sync"):
        assert re.search(rf"^\[{phase}\] materializing \d+ asset\(s\)", out, flags=re.M), out
        assert re.search(rf"^\[{phase}\] done in [\d.]+s$", out, flags=re.M), out
    for figure in ("Attendance (events that have started):", "Revenue by provider and currency",
                   "Campaign attribution", "Reverse sync: the sandbox received"):
        assert figure in out
    assert not DBT_NODE_LINE.search(out), DBT_NODE_LINE.search(out)
    # dbt's node lines are not lost: they are in the run's log file, which the output names.
    (log_line,) = [line for line in out.splitlines() if line.startswith("Run log")]
    log = Path(log_line.split(": ", 1)[1].split("  (")[0])
    assert log.is_file() and log.is_relative_to(demo / "data" / "demo" / "logs")
    assert DBT_NODE_LINE.search(log.read_text())


def marts(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("select view_name from duckdb_views() where schema_name = 'marts' order by 1").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def readme_analyst_blocks() -> list[tuple[str, str]]:
    """The fenced code blocks of the README's analysts' "Opening it" section: (language, code)."""
    text = README.read_text()
    section = text[text.index("### Opening it"):]
    section = section[: section.index("**A BI tool**")]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


@pytest.mark.pipeline
def test_readme_analyst_commands_run_as_written_after_the_demo(demo: Path) -> None:
    blocks = readme_analyst_blocks()
    assert [lang for lang, _ in blocks].count("bash") >= 2 and any(lang == "python" for lang, _ in blocks)
    for lang, code in blocks:
        if lang == "python":
            result = run([str(BIN / "python"), "-c", code], cwd=demo)
            assert result.returncode == 0, code + result.stderr[-2000:]
            assert "event_id" in result.stdout  # the frame it printed
            continue
        for line in code.splitlines():
            command = line.split("  #")[0].strip()
            if not command:
                continue
            # stdin closed: the interactive shell (`marquee sql` alone) reads it and ends at once
            result = run(["bash", "-c", command], cwd=demo, stdin=subprocess.DEVNULL)
            assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            assert "Error" not in result.stdout + result.stderr, command


@pytest.mark.pipeline
def test_marquee_sql_prints_a_table_and_opens_a_read_only_shell(demo: Path) -> None:
    warehouse = demo / "data" / "demo" / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        expected = con.execute("select count(*) from marts.revenue").fetchone()[0]
    finally:
        con.close()
    assert expected > 0

    # With a query: the result as a table, from the demo's warehouse found by itself.
    result = run([str(BIN / "marquee"), "sql", "select count(*) as n from marts.revenue"], cwd=demo)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"│\s+{expected}\s+│", result.stdout), result.stdout
    # A failing statement is a failing command, with DuckDB's message.
    result = run([str(BIN / "marquee"), "sql", "select * from marts.no_such_mart"], cwd=demo)
    assert result.returncode != 0 and "no_such_mart" in result.stdout + result.stderr

    # Without a query: DuckDB's own shell on the warehouse, read-only (it reads stdin here).
    script = "select count(*) as n from marts.revenue;\ncreate table marts.mine as select 1;\n"
    result = run([str(BIN / "marquee"), "sql"], cwd=demo, input=script)
    out = result.stdout + result.stderr
    assert re.search(rf"\b{expected}\b", out), out
    assert "read-only" in out.lower(), out  # the write was refused: the shell is read-only


@pytest.mark.pipeline
def test_the_duckdb_1_5_cli_queries_every_mart(demo: Path) -> None:
    cli = BIN / "duckdb"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v1.5"), version  # an older client than the DuckDB 2 that wrote the file
    warehouse = demo / "data" / "demo" / "warehouse.duckdb"
    names = marts(warehouse)
    assert {"attendance", "revenue", "campaign_attribution"} <= set(names)
    for name in names:
        result = run([str(cli), "-readonly", str(warehouse), "-bail", "-csv", "-c",
                      f"select count(*) from marts.{name}; select * from marts.{name} limit 3"], cwd=demo)
        assert result.returncode == 0, f"marts.{name}: {result.stderr}"


def old_duckdb_python() -> Path:
    """A Python with DuckDB 1.2, in its own venv, kept between runs (it is a download)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "marquee-tests" / "duckdb-1.2"
    python = cache / "bin" / "python"
    probe = [str(python), "-c", "import duckdb, pytz; assert duckdb.__version__.startswith('1.2')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    venv.create(cache, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", OLD_PYTHON_DUCKDB,
                    "pytz"], check=True, timeout=600)
    subprocess.run(probe, check=True)
    return python


@pytest.mark.pipeline
def test_python_duckdb_1_2_queries_every_mart(demo: Path) -> None:
    python = old_duckdb_python()
    warehouse = demo / "data" / "demo" / "warehouse.duckdb"
    names = marts(warehouse)
    script = (
        "import sys, duckdb\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "for name in sys.argv[2:]:\n"
        "    n = con.execute(f'select count(*) from marts.{name}').fetchone()[0]\n"
        "    con.execute(f'select * from marts.{name} limit 3').fetchall()\n"
        "    print(name, n)\n"
        "print('version', duckdb.__version__)\n"
    )
    result = run([str(python), "-c", script, str(warehouse), *names], cwd=demo)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["version"].startswith("1.2")
    expected = {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for name in names:
            expected[name] = str(con.execute(f"select count(*) from marts.{name}").fetchone()[0])
    finally:
        con.close()
    assert {n: lines[n] for n in names} == expected
