"""dbt-duckdb plugin: what every connection and cursor dbt opens needs before it runs a model.
Declared in dbt_project/profiles.yml under `plugins`.

- The PII hash key, as a session variable (see resources/pii.py). A plugin rather than a table the
  build writes: a table's bytes stay in the database file (and its WAL) after a DROP, and survive a
  crash in between; a session variable never reaches the file.
- The lake's filesystem, when the lake is in object storage (resources/lakefs.py): the raw views
  read `s3://` paths. This does what dbt-duckdb's `filesystems:` profile key does, but with the same
  pyarrow S3 client as the rest of marquee (the key builds its filesystems with fsspec's registry,
  which would need s3fs and its aiobotocore pins, a second S3 stack).
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from resources import lakefs, settings
from resources.pii import set_session_key


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:  # noqa: ANN001 - dbt-duckdb's signature
        set_session_key(conn)
        lakefs.register_duckdb(conn, settings.lake_location())

    def configure_cursor(self, cursor) -> None:  # noqa: ANN001
        set_session_key(cursor)
