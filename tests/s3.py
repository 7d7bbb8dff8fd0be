"""A real S3-compatible server for the tests: moto's standalone server on a free loopback port.

Not a mock at the storage boundary: marquee's pyarrow S3 client, DuckDB and dbt talk HTTP to it as
they would to AWS or MinIO. moto >= 5.2.5 (5.2.1's server breaks pyarrow's writer). Its buckets are
held in this process's memory, so `stop()` then `start()` on the same port brings the same objects
back: what a store that went away and came back looks like.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

from resources.lake import SINGLE_HOST_ENV

REGION = "us-east-1"
ACCESS_KEY = "marquee-test-key"
SECRET_KEY = "marquee-test-secret-6b1f"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    port: int = field(default_factory=_free_port)
    _server: object | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def create_bucket(self, name: str) -> None:
        self.filesystem().create_dir(name)

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                                 endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 allow_bucket_creation=True)

    def keys(self, prefix: str) -> list[str]:
        """Every object under `bucket/prefix`, as `bucket/key` paths."""
        import pyarrow.fs as pafs

        infos = self.filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def env(self, lake_url: str, single_host: bool = True) -> dict[str, str]:
        """The variables a marquee process needs to use `lake_url` on this server. `single_host`
        declares this machine the lake's only writer (its locks are then flocks); a test that gives
        the processes PostgreSQL for their locks passes False."""
        env = {"MARQUEE_LAKE_URL": lake_url, "MARQUEE_S3_ENDPOINT_URL": self.endpoint,
               "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}
        if single_host:
            env[SINGLE_HOST_ENV] = "1"
        return env


@contextlib.contextmanager
def running_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
