"""`marquee sandbox`: serve the five provider APIs on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from types import FrameType

from sandbox.faults import FaultPlan, FaultSpecError
from sandbox.ratelimit import RateLimitSpecError, format_limits, parse_rate_limits


def main(args: argparse.Namespace) -> int:
    faults = getattr(args, "faults", "") or ""
    try:
        plan = FaultPlan.parse(faults, seed=args.seed)
    except FaultSpecError as exc:
        print(f"marquee sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        rate_limits = parse_rate_limits(getattr(args, "rate_limit", "") or "")
    except RateLimitSpecError as exc:
        print(f"marquee sandbox: --rate-limit: {exc}", file=sys.stderr)
        return 2
    if args.scale < 1:
        print("marquee sandbox: --scale must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("marquee sandbox: --port must be between 0 and 65535", file=sys.stderr)
        return 2

    from sandbox import start_sandbox  # imported late: `marquee --help` stays fast

    try:
        sandbox = start_sandbox(seed=args.seed, scale=args.scale, faults=faults, port=args.port,
                                rate_limits=rate_limits)
    except OSError as exc:
        print(f"marquee sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGTERM (docker stop, kill) shuts down as cleanly as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        spec = plan.spec.replace(",", ", ")
        print(f"marquee sandbox listening on {sandbox.base_url}", flush=True)
        print(f"seed={args.seed} scale={args.scale} anchor={sandbox.world.anchor.isoformat()}", flush=True)
        print(f"faults: {spec or 'none'}", flush=True)
        print(f"rate limits: {format_limits(rate_limits).replace(',', ', ') or 'none'}", flush=True)
        print("# point marquee at the sandbox (paste into your shell):", flush=True)
        for name, value in sandbox.env.items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
    print("marquee sandbox stopped.", flush=True)
    return 0
