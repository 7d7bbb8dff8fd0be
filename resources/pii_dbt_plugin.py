"""dbt-duckdb plugin: every connection and cursor dbt opens gets the PII hash key as a session
variable (see resources/pii.py). Declared in dbt_project/profiles.yml under `plugins`.

A plugin rather than a table the build writes: a table's bytes stay in the database file (and its
WAL) after a DROP, and survive a crash in between; a session variable never reaches the file."""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from resources.pii import set_session_key


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:  # noqa: ANN001 - dbt-duckdb's signature
        set_session_key(conn)

    def configure_cursor(self, cursor) -> None:  # noqa: ANN001
        set_session_key(cursor)
