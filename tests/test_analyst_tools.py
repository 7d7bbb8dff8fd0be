"""The analysts' first hour, on a real demo warehouse: `marquee demo` in a fresh directory, then the
README's analyst commands as written, `marquee sql` with and without a query, and the published
catalog opened by the older DuckDB clients analysts really have: PyPI's `duckdb-cli` 1.5 (installed
with marquee) and Python DuckDB 1.2 in an environment of its own, each querying every mart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
OLD_PYTHON_DUCKDB = "duckdb>=1.2,<1.3"


def newcomer_env() -> dict[str, str]:
    """A shell that has run nothing but `make demo`: no MARQUEE_* variable, no DAGSTER_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARQUEE_", "DAGSTER_"))}
    env["DO_NOT_TRACK"] = "1"
    return env


def run(args: list[str], cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=newcomer_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_marquee_sql_without_a_warehouse_says_what_to_do(tmp_path: Path) -> None:
    result = run([str(BIN / "marquee"), "sql", "select 1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "no warehouse found" in result.stderr and "make demo" in result.stderr
    result = run([str(BIN / "marquee"), "sql", "--db", str(tmp_path / "nope.duckdb"), "select 1"], cwd=tmp_path)
    assert result.returncode == 2 and "nope.duckdb" in result.stderr


DEMO_OUTPUT = "demo-output.txt"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where `marquee demo --days 2` ran, as a newcomer runs it (cwd = that directory;
    stdout a pipe, not a terminal). Its output is kept in `demo-output.txt`."""
    cwd = tmp_path_factory.mktemp("newcomer")
    result = run([str(BIN / "marquee"), "demo", "--days", "2"], cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (cwd / "data" / "demo" / "warehouse.duckdb").exists()
    (cwd / DEMO_OUTPUT).write_text(result.stdout)
    (cwd / ".venv").symlink_to(BIN.parent)  # the README's `.venv/bin/...` paths, as in the repository
    return cwd


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
