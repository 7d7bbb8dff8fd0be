"""Per-request CPU of the sandbox's server and of the client core, on small Cordial POSTs.

    .venv/bin/python benchmarks/bench_sandbox_http.py            # both parts, default sizes
    .venv/bin/python benchmarks/bench_sandbox_http.py server 16 5  # 16 keep-alive connections, 5 s
    .venv/bin/python benchmarks/bench_sandbox_http.py client 3000  # 3000 upserts through HttpCore

The sandbox runs in its own process, so its CPU (utime + stime from /proc) is told apart from the
client's (`time.process_time`).

- `server`: T threads, each on one keep-alive socket, send a prebuilt `POST /cordial/upsertOrder`
  and read the reply, for D seconds. The load generator is raw sockets (no HTTP library), so the
  server is what limits the rate. Reports requests/s, server CPU µs per request, and connection
  errors (a listen backlog that is too small shows up as resets when the threads connect at once).
- `client`: one thread sends N upserts through `CordialResource` (the real `HttpCore`: retries,
  budget, redaction) and reports the client's CPU µs per request and the server's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import world as w  # noqa: E402

_SERVE = """
import sys
from datetime import date
from sandbox import start_sandbox
sb = start_sandbox(anchor=date(2026, 3, 15))
print(sb.port, flush=True)
sys.stdin.read()
sb.stop()
"""


def order(i: int) -> dict:
    return {"source": "marquee", "contact": {"identifiers": {"email": f"fan{i}@example.com"}},
            "orderID": f"tickettailor:or_{i}", "purchaseDate": "2026-03-01T10:00:00+00:00",
            "status": "completed", "totalAmount": 25.5,
            "items": [{"productID": "ev_1", "sku": "tt_1", "name": "GA", "qty": 1, "itemPrice": 25.5}]}


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _request_bytes(port: int, i: int) -> bytes:
    import base64

    body = orjson.dumps(order(i))
    auth = base64.b64encode(f"{w.CORDIAL_API_KEY}:".encode()).decode()
    head = (f"POST /cordial/upsertOrder HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def _read_reply(sock: socket.socket, buf: bytearray) -> int:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed")
        rest += chunk
    buf[:] = rest[length:]
    return status


def bench_server(threads: int = 16, seconds: float = 5.0) -> dict:
    srv = Server()
    try:
        payloads = [_request_bytes(srv.port, i) for i in range(64)]
        counts = [0] * threads
        errors: list[str] = []
        statuses: dict[int, int] = {}
        start = threading.Barrier(threads + 1)
        stop = threading.Event()

        def worker(k: int) -> None:
            start.wait()
            try:
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = bytearray()
                n = 0
                while not stop.is_set():
                    sock.sendall(payloads[(k + n) % len(payloads)])
                    status = _read_reply(sock, buf)
                    statuses[status] = statuses.get(status, 0) + 1
                    n += 1
                    counts[k] = n
                sock.close()
            except OSError as exc:
                errors.append(type(exc).__name__)

        pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
        for t in pool:
            t.start()
        cpu0 = srv.cpu()
        start.wait()
        t0 = time.monotonic()
        time.sleep(seconds)
        stop.set()
        for t in pool:
            t.join(timeout=10)
        elapsed = time.monotonic() - t0
        cpu = srv.cpu() - cpu0
        total = sum(counts)
        return {"threads": threads, "requests": total, "req_per_s": total / elapsed,
                "server_cpu_us_per_req": cpu / max(1, total) * 1e6, "connection_errors": errors,
                "statuses": statuses}
    finally:
        srv.close()


def bench_client(n: int = 3000) -> dict:
    from resources.cordial import CordialResource

    srv = Server()
    try:
        res = CordialResource(api_key=w.CORDIAL_API_KEY, base_url=f"http://127.0.0.1:{srv.port}/cordial")
        payloads = [order(i) for i in range(n)]
        with res.session():
            for p in payloads[:200]:  # warm-up: connection, imports, caches
                res.upsert_order(p)
            cpu0, srv0, t0 = time.process_time(), srv.cpu(), time.monotonic()
            for p in payloads:
                res.upsert_order(p)
            cpu, srv_cpu, elapsed = time.process_time() - cpu0, srv.cpu() - srv0, time.monotonic() - t0
        return {"requests": n, "req_per_s": n / elapsed, "client_cpu_us_per_req": cpu / n * 1e6,
                "server_cpu_us_per_req": srv_cpu / n * 1e6}
    finally:
        srv.close()


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "both"
    if what in ("server", "both"):
        threads = int(argv[1]) if len(argv) > 1 and what == "server" else 16
        seconds = float(argv[2]) if len(argv) > 2 and what == "server" else 5.0
        print("server", bench_server(threads, seconds), flush=True)
    if what in ("client", "both"):
        n = int(argv[1]) if len(argv) > 1 and what == "client" else 3000
        print("client", bench_client(n), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
