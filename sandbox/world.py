"""The sandbox's synthetic world: one seed, one scale, one anchor date, shared by every provider.

Everything is a pure function of (seed, scale, anchor) so two sandboxes with the same arguments
serve byte-identical data. Providers generate records lazily from indices; nothing here holds a
whole dataset in memory, which is what lets `--scale` reach millions of orders.

The facts at the bottom are the providers' own, normalised view of their data. `truth.py` turns
them into the expected marts without any SQL, so end-to-end tests check the pipeline against an
independent computation.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

# Credentials the sandbox accepts. Anything else gets the provider's documented 401/403.
TICKETTAILOR_API_KEY = "sk_sandbox_tickettailor_0001"
SYMPLA_TOKEN = "sandbox-sympla-token-0001"
CYMBAL_API_KEY = "sandbox-cymbal-key-0001"
CYMBIO_CLIENT_ID = "sandbox-cymbio-client"
CYMBIO_CLIENT_SECRET = "sandbox-cymbio-secret-0001"
CYMBIO_RETAILER_ID = "4242"
CORDIAL_API_KEY = "sandbox-cordial-key-0001"

CAMPAIGN_CURRENCIES = ("USD", "USD", "GBP", "BRL", "JPY")


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    type: str  # "email" | "sms"
    sent_at: datetime  # UTC
    currency_code: str


@dataclass(frozen=True)
class World:
    seed: int = 7
    scale: int = 1
    anchor: date = field(default_factory=_today)
    history_days: int = 30  # orders are created in [anchor - history_days, anchor]

    def rng(self, *namespace: object) -> random.Random:
        """An independent, reproducible random stream for one namespace (e.g. ("tt", "order", 17))."""
        digest = hashlib.blake2b(repr((self.seed, *namespace)).encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    @property
    def start(self) -> datetime:
        """First instant of the order history (UTC)."""
        return datetime.combine(self.anchor - timedelta(days=self.history_days), datetime.min.time(), UTC)

    @property
    def end(self) -> datetime:
        """End (exclusive) of the order history: the end of the anchor day, UTC."""
        return datetime.combine(self.anchor + timedelta(days=1), datetime.min.time(), UTC)

    @cached_property
    def campaigns(self) -> list[Campaign]:
        """Cymbal campaigns. Ticketing orders carry their ids as UTM / referral tags."""
        rng = self.rng("campaigns")
        out = []
        for i in range(8):
            sent = self.start + timedelta(days=2 + i * 3, hours=rng.randint(8, 20), minutes=rng.randint(0, 59))
            out.append(Campaign(
                id=f"cmp{1000 + i}",
                name=f"Campaign {i + 1}: {rng.choice(['Early bird', 'Last call', 'VIP', 'Weekend', 'Flash sale'])}",
                type="sms" if i % 3 == 2 else "email",
                sent_at=sent,
                currency_code=CAMPAIGN_CURRENCIES[i % len(CAMPAIGN_CURRENCIES)],
            ))
        return out


# --- Normalised facts each ticketing provider exposes for the ground truth -------------------------

@dataclass(frozen=True)
class EventFact:
    provider: str  # "tickettailor" | "sympla"
    event_id: str
    name: str
    starts_at: datetime  # UTC


@dataclass(frozen=True)
class OrderFact:
    provider: str
    order_id: str
    event_id: str
    currency: str  # ISO-4217, upper case
    created_at: datetime  # UTC
    counts_as_revenue: bool  # TT status completed / Sympla approved
    gross_cents: int
    refunded_cents: int
    campaign_tag: str | None  # the raw tag as the API shows it (untrimmed, any case)


@dataclass(frozen=True)
class TicketFact:
    provider: str
    event_id: str
    issued: bool  # counts in tickets_issued per DESIGN.md
    checked_in: bool
