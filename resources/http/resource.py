"""ProviderResource: the Dagster resource every provider client is, and what it declares about itself.

A client declares its configuration once, on its class: which field is read from which
environment variable (`env`), which of them are secrets (`secrets`, bound as `dg.EnvVar` so their
values never show in the UI or a log), and which must be set for the provider to count as
configured (`required`). `from_env()` builds the resource from that declaration, and every message
that tells an operator what to set (`credential_hint()`) reads the same declaration.

An unset variable must not break anything: Dagster raises at run time when it resolves an `EnvVar`
whose variable is missing, and that would fail every asset of a run, other providers' included. So
a secret is bound as `EnvVar` only when its variable is set when definitions load (which happens
again in each run worker, so a run sees the environment it starts in); otherwise the field is None,
`configured()` is False, and the assets log one "not configured" line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.errors import (
    ProviderNotConfiguredError,
)
from resources.http.budget import RATE_LIMIT_ENV, parse_rate_limit
from resources.http.core import MAX_PAGE_BYTES_ENV, HttpCore
from resources.http.retry import RetryPolicy


def secret_value(value: Any) -> str | None:
    """A secret field's value, whether it holds a plain string or a still-unresolved `dg.EnvVar`.

    Inside a Dagster run, EnvVar fields arrive resolved. Called directly (tests, the CLI), a
    resource built by `from_env()` still holds the EnvVar; resolve it here so the resource behaves
    the same both ways. An unset variable resolves to None: "not configured".
    """
    if isinstance(value, dg.EnvVar):
        value = value.get_value()
    return value or None


class ProviderResource(dg.ConfigurableResource):
    """Shared fields and lifecycle of the five provider clients.

    The httpx client lives in a PrivateAttr, created on first use (frozen pydantic models cannot
    hold it as a field), and is closed in `teardown_after_execution`, so the same object works
    inside Dagster and when called directly in tests.
    """

    timeout_seconds: float = Field(default=30.0, description="Read timeout of one HTTP request.")
    max_retry_seconds: float = Field(default=300.0, description="Give up retrying a request after this long.")
    backoff_base_seconds: float = Field(default=0.5, description="First exponential back-off step.")
    backoff_max_seconds: float = Field(default=30.0, description="Longest single back-off step.")
    max_page_bytes: int | None = Field(
        default=None, description=f"Largest reply body (one page) read, in bytes; past it the request fails. "
                                  f"Unset: {MAX_PAGE_BYTES_ENV}, else 64 MiB.")
    rate_limit: str | None = Field(
        default=None, description="Client-side cap on requests, N per window: `100/10s` (also `100/10`, `50/1m`, "
                                  "`2000/1h`), shared by every thread using this resource; from "
                                  "`<PROVIDER>_RATE_LIMIT`. Unset: only the API's own rate-limit headers pace it.")

    _core: HttpCore | None = PrivateAttr(default=None)
    _core_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # - subclasses declare ---------------------------------------------------------------------------
    provider_name: ClassVar[str] = ""
    env: ClassVar[Mapping[str, str]] = {}  # field -> environment variable it is read from
    secrets: ClassVar[frozenset[str]] = frozenset()  # fields among them that hold secrets
    required: ClassVar[tuple[str, ...]] = ()  # variables that must be set for `configured()`

    def configured(self) -> bool:
        raise NotImplementedError

    def _make_core(self, policy: RetryPolicy) -> HttpCore:
        raise NotImplementedError

    # - shared -----------------------------------------------------------------------------------------

    @classmethod
    def from_env(cls) -> ProviderResource:
        """The resource as the environment configures it (see the module docstring)."""
        values: dict[str, Any] = {}
        for field_name, var in cls.env.items():
            raw = os.environ.get(var)
            if field_name in cls.secrets:
                values[field_name] = dg.EnvVar(var) if raw else None
            elif raw:
                values[field_name] = raw
        rate = (os.environ.get(cls.rate_limit_var()) or "").strip()
        if rate:
            # Checked now: a typo fails loading with a ValueError naming the variable, not every run.
            parse_rate_limit(rate, cls.rate_limit_var())
            values["rate_limit"] = rate
        return cls(**values)

    @classmethod
    def credential_hint(cls) -> str:
        """The variables to set, for a "not configured" message: "A, B and C"."""
        names = list(cls.required)
        if not names:
            return "its credentials"
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    @classmethod
    def rate_limit_var(cls) -> str:
        """The environment variable `rate_limit` is read from: `CORDIAL_RATE_LIMIT`, ..."""
        return RATE_LIMIT_ENV.format(PROVIDER=cls.provider_name.upper())

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(backoff_base=self.backoff_base_seconds, backoff_max=self.backoff_max_seconds,
                           max_elapsed=self.max_retry_seconds)

    def _http(self) -> HttpCore:
        if not self.configured():
            raise ProviderNotConfiguredError(
                f"{self.provider_name} is not configured: set {self.credential_hint()} (see README, Configuration).",
                provider=self.provider_name)
        with self._core_lock:
            if self._core is None:
                core = self._make_core(self._policy())
                if self.max_page_bytes is not None:
                    if self.max_page_bytes <= 0:
                        raise ValueError(f"{self.provider_name}: max_page_bytes must be positive")
                    core.max_body_bytes = self.max_page_bytes
                if self.rate_limit:
                    core.budget.set_limit(*parse_rate_limit(self.rate_limit, self.rate_limit_var()))
                self._core = core
            return self._core

    def close(self) -> None:
        with self._core_lock:
            if self._core is not None:
                self._core.close()
                self._core = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[ProviderResource]:
        """`with resource.session() as r:` closes the pooled client afterwards (direct use)."""
        try:
            yield self
        finally:
            self.close()


def require_utc(value: datetime, name: str) -> datetime:
    """Windows are instants: a naive datetime is ambiguous, so refuse it rather than guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


