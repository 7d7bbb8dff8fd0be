"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port, removed after.

The real server, not a stand-in: Dagster's PostgreSQL storage is what is under test. PostgreSQL
refuses to run as root, and the tests may run as root (CI containers), so then the cluster belongs
to the `postgres` user and its commands run through `runuser`. Missing binaries fail the tests with
the command that installs them (.ci/run does it), rather than skipping: a skipped storage test
proves nothing.

The cluster has no durability settings (fsync off): it lives for one test session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "marquee"
INSTALL_HINT = "apt-get install -y postgresql (CI's .ci/run does this when initdb is missing)"


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        """A new, empty database `name`; returns its URL."""
        import psycopg2

        con = psycopg2.connect(self.url())
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)

    def query(self, db: str, sql: str) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(self.url(db))
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            con.close()


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) are not installed; install them: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    # RAM when there is one (a cluster's files are throwaway); its parent must be traversable by `postgres`.
    base = Path(tempfile.mkdtemp(prefix="marquee-pg-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"running as root needs the `postgres` system user to own the test cluster: {INSTALL_HINT}")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, sock_dir, log = base / "data", base / "sock", base / "server.log"
    password = secrets.token_urlsafe(18)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_root:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{Path(args[0]).name} failed ({done.returncode}):\n"
                        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    try:
        # Password (scram) over TCP, so a test that forgot the password would fail; trust on the socket.
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        if as_root:
            run("mkdir", "-p", str(sock_dir))
        else:
            sock_dir.mkdir()
        options = (f"-p {port} -k {sock_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        cluster = Cluster("127.0.0.1", port, SUPERUSER, password)
        _wait_ready(cluster)
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(cluster: Cluster, timeout: float = 30.0) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(cluster.url()).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
