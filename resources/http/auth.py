"""How a request is authenticated: static keys in a header or HTTP Basic, and refreshed OAuth2 tokens."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

from resources.errors import (
    ProviderAuthError,
)

# --- auth -----------------------------------------------------------------------------------------

class Auth:
    """How a request is authenticated. Static keys never refresh; tokens can."""

    def headers(self) -> dict[str, str]:
        return {}

    def secrets(self) -> tuple[str, ...]:
        """The secret values this auth sends or has just sent (a minted token included), for
        redaction: an API may echo any of them back in an error."""
        return ()

    def on_unauthorized(self) -> bool:
        """Called on a 401. True means fresh credentials were obtained and one resend is worthwhile."""
        return False


class HeaderAuth(Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    def headers(self) -> dict[str, str]:
        return {self._name: self._value}

    def secrets(self) -> tuple[str, ...]:
        return (self._value,)

    def __repr__(self) -> str:
        return f"HeaderAuth({self._name}=***)"


class BasicUsernameAuth(Auth):
    """HTTP Basic with the API key as the username and an empty password (Ticket Tailor, Cordial)."""

    def __init__(self, username: str) -> None:
        self._username = username
        self._header = "Basic " + base64.b64encode(f"{username}:".encode()).decode()

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    def secrets(self) -> tuple[str, ...]:
        return (self._username,)  # its base64 forms are derived by `errors.secret_forms`

    def __repr__(self) -> str:
        return "BasicUsernameAuth(***)"


class ClientCredentialsAuth(Auth):
    """OAuth2 client-credentials bearer token, cached and refreshed before it expires.

    Thread-safe: one lock guards the cache, so parallel readers share one token and only one of
    them fetches a new one. The token is refreshed `margin` seconds before `expires_in` runs out
    (Cymbio's tokens live 6 minutes, so a long paginated read crosses several), and a 401 drops
    the cached token so the core re-authenticates and resends.
    """

    def __init__(self, provider: str, fetch_token: Callable[[], dict[str, Any]], margin: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._provider = provider
        self._fetch = fetch_token
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0  # how many tokens were minted: tests assert caching on it
        # The last few tokens minted, newest first: a 401 may echo the token just dropped. A tuple
        # swapped whole, so `secrets()` never needs the lock, which `token()` holds while the core
        # fetches (and may build an error message that asks for these).
        self._recent: tuple[str, ...] = ()

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def token(self) -> str:
        with self._lock:
            if not self._valid():
                reply = self._fetch()
                token = reply.get("access_token") if isinstance(reply, dict) else None
                if not token:
                    raise ProviderAuthError(f"{self._provider}: the token endpoint replied without an "
                                            "access_token; check the client credentials and scope.",
                                            provider=self._provider)
                lifetime = float(reply.get("expires_in") or 300)
                # Never plan to use a token for less than half its life, whatever the margin says.
                margin = min(self._margin, lifetime / 2)
                self._token, self._expires_at = token, self._clock() + lifetime - margin
                self._recent = (str(token), *self._recent[:3])
                self.fetches += 1
            assert self._token is not None
            return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token, self._expires_at = None, 0.0

    def on_unauthorized(self) -> bool:
        self.invalidate()
        return True

    def secrets(self) -> tuple[str, ...]:
        return self._recent

    def __repr__(self) -> str:
        return "ClientCredentialsAuth(***)"


