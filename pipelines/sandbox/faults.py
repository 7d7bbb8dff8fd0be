"""Seeded, reproducible fault injection for the sandbox.

Spec grammar (the `--faults` flag): comma-separated `name:rate[:param]`, e.g.
`429:0.1,5xx:0.05,reset:0.02,truncate:0.02,slow:0.05:1.5,expire:0.2,repeat:0.1`, or `all:0.05`.

| name     | effect                                                                 | param            |
|----------|------------------------------------------------------------------------|------------------|
| 429      | `429 Too Many Requests` with `Retry-After`                             | seconds (1)      |
| 5xx      | one of 500 / 502 / 503, no work done                                   |                  |
| reset    | the TCP connection is reset before any reply                           |                  |
| truncate | the full Content-Length is announced, half the body sent, then closed  |                  |
| slow     | the reply is delayed                                                    | seconds (1.0)    |
| expire   | Cymbio: a valid access token is treated as expired (401)               |                  |
| repeat   | paginated lists: the page starts with the previous page's last record  |                  |

A decision is a pure function of (seed, fault, request key, attempt number for that key), so
the same run sees the same faults whatever the thread interleaving. A key is never faulted more
than `MAX_CONSECUTIVE` times in a row, so a client that retries always gets through.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

FAULT_NAMES = ("429", "5xx", "reset", "truncate", "slow", "expire", "repeat")
DEFAULT_PARAMS = {"429": 1.0, "slow": 1.0}
MAX_CONSECUTIVE = 2


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    _attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    _streak: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    injected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> FaultPlan:
        plan = cls(seed=seed)
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            bits = part.split(":")
            name = bits[0].strip().lower()
            names = [n for n in FAULT_NAMES] if name == "all" else [name]
            if name != "all" and name not in FAULT_NAMES:
                raise FaultSpecError(
                    f"unknown fault {name!r} in --faults; use one of {', '.join(FAULT_NAMES)} or 'all'"
                )
            try:
                rate = float(bits[1]) if len(bits) > 1 else 0.1
                param = float(bits[2]) if len(bits) > 2 else None
            except ValueError as exc:
                raise FaultSpecError(f"bad fault spec {part!r}: expected name:rate[:param]") from exc
            if not 0 <= rate <= 1:
                raise FaultSpecError(f"fault rate in {part!r} must be between 0 and 1")
            for n in names:
                plan.rates[n] = rate
                if param is not None:
                    plan.params[n] = param
        return plan

    def param(self, name: str) -> float:
        return self.params.get(name, DEFAULT_PARAMS.get(name, 0.0))

    def hit(self, name: str, key: str) -> bool:
        """Should fault `name` strike the request identified by `key` (method + path + query)?"""
        rate = self.rates.get(name, 0.0)
        if rate <= 0:
            return False
        with self._lock:
            attempt = self._attempts.get((name, key), 0)
            self._attempts[(name, key)] = attempt + 1
            streak = self._streak.get((name, key), 0)
            if streak >= MAX_CONSECUTIVE:
                self._streak[(name, key)] = 0
                return False
            digest = hashlib.blake2b(f"{self.seed}|{name}|{key}|{attempt}".encode(), digest_size=8).digest()
            strike = int.from_bytes(digest, "big") / 2**64 < rate
            self._streak[(name, key)] = streak + 1 if strike else 0
            if strike:
                self.injected[name] = self.injected.get(name, 0) + 1
            return strike

    @property
    def active(self) -> bool:
        return any(r > 0 for r in self.rates.values())
