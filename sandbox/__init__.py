"""The provider sandbox: all five vendor APIs on one loopback port, with synthetic data and faults.

    from sandbox import start_sandbox
    with start_sandbox(seed=7, faults="429:0.1", rate_limits={"cordial": (100, 10.0)}) as sb:
        os.environ.update(sb.env)   # base URLs + credentials for every provider
        ...
        sb.ctx.recorder.items("cordial")   # what the push endpoints received
        sb.set_rate_limits({"cordial": (50, 2.0)})   # change the limits of the running sandbox
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sandbox import world as w
from sandbox.faults import FaultPlan, FaultSpecError
from sandbox.http import SandboxContext, SandboxServer
from sandbox.messages import Request, Response, json_response
from sandbox.providers import PROVIDERS
from sandbox.ratelimit import RateLimits, RateLimitSpecError, format_limits, parse_rate_limits

__all__ = ["Sandbox", "start_sandbox"]


class Sandbox(SandboxServer):
    @property
    def world(self) -> w.World:
        return self.ctx.world

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point every marquee resource at this sandbox: each
        registered provider's base URL and credentials (`sandbox/providers.py`)."""
        env: dict[str, str] = {}
        for provider in PROVIDERS:
            env.update(provider.env(self.url(provider.name)))
        return env

    def set_faults(self, spec: str) -> FaultPlan:
        """Replace the fault plan of the running sandbox (same seed); returns the new plan."""
        plan = FaultPlan.parse(spec, seed=self.ctx.faults.seed)
        self.ctx.faults = plan
        return plan

    def set_rate_limits(self, limits: Mapping[str, tuple[int, float]]) -> None:
        """Replace the generic rate limits of the running sandbox: {"cordial": (100, 10.0)} is 100
        requests per 10 s; a provider left out is no longer limited. The windows start empty; the
        429 counts (`stats["rate_limited"]`) carry on."""
        self.ctx.rate_limits.set(limits)

    @property
    def rate_limits(self) -> dict[str, tuple[int, float]]:
        return self.ctx.rate_limits.limits


def _internal(request: Request, ctx: SandboxContext) -> Response:
    """`/_sandbox/*`: introspection for tests and humans (received pushes, request counts)."""
    if request.path == "/received":
        items = ctx.recorder.items(request.arg("provider"), request.arg("endpoint"))
        return json_response([{"provider": i.provider, "endpoint": i.endpoint, "payload": i.payload} for i in items])
    if request.path == "/stats":
        with ctx.lock:
            requests, paths = dict(ctx.request_counts), dict(ctx.paths)
        return json_response({"requests": requests, "faults_injected": ctx.faults.injected,
                              "rate_limited": dict(ctx.rate_limits.rejected), "paths": paths})
    if request.path == "/rate_limits":
        # GET: the limits in force. PUT ?spec=cordial=100/10,...: replace them (empty: no limits).
        if request.method == "PUT":
            try:
                ctx.rate_limits.set(parse_rate_limits(request.arg("spec", "") or ""))
            except RateLimitSpecError as exc:
                return json_response({"error": str(exc)}, 400)
        limits = ctx.rate_limits.limits
        return json_response({"spec": format_limits(limits), "limits": {p: list(v) for p, v in limits.items()}})
    if request.path == "/faults":
        # GET: the plan in force. PUT ?spec=...: replace it (an empty spec clears every fault).
        if request.method == "PUT":
            try:
                ctx.faults = FaultPlan.parse(request.arg("spec", "") or "", seed=ctx.faults.seed)
            except FaultSpecError as exc:
                return json_response({"error": str(exc)}, 400)
        return json_response({"spec": ctx.faults.spec, "seed": ctx.faults.seed})
    return json_response({"error": "unknown sandbox endpoint"}, 404)


def start_sandbox(seed: int = 7, scale: int = 1, faults: str = "", anchor: date | None = None,
                  port: int = 0, host: str = "127.0.0.1",
                  rate_limits: Mapping[str, tuple[int, float]] | None = None, **world_kwargs: object) -> Sandbox:
    """Start a sandbox in a background thread on `host:port` (0 = a free port) and return it.

    `rate_limits` caps any provider at N requests per trailing W seconds, `{"cordial": (100, 10.0)}`
    (sandbox/ratelimit.py); Ticket Tailor's documented hourly budget applies regardless."""
    world = w.World(seed=seed, scale=scale, **({"anchor": anchor} if anchor else {}), **world_kwargs)
    ctx = SandboxContext(world=world, faults=FaultPlan.parse(faults, seed=seed),
                         rate_limits=RateLimits(rate_limits or {}))
    providers = [provider.sandbox() for provider in PROVIDERS]
    return Sandbox(providers, ctx, _internal, host=host, port=port).start()
