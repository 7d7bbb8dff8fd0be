"""The provider registry (sandbox/providers.py): the five vendors, each served, each with the
environment that points marquee at it, and the truth reading the ticketing ones."""

from __future__ import annotations

from datetime import date

import httpx

from sandbox import start_sandbox, truth
from sandbox import world as w
from sandbox.providers import PROVIDERS

FIVE = {"tickettailor", "sympla", "cymbal", "cymbio", "cordial"}


def test_the_registry_holds_exactly_the_five_providers_once_each():
    names = [p.name for p in PROVIDERS]
    assert sorted(names) == sorted(FIVE) and len(names) == len(set(names))
    assert {p.name for p in PROVIDERS if p.facts is not None} == {"tickettailor", "sympla"}
    assert [p.name for p in PROVIDERS if p.campaign_analytics is not None] == ["cymbal"]


def test_the_env_has_a_base_url_and_credentials_for_every_provider():
    with start_sandbox(anchor=date(2026, 3, 15)) as sb:
        env = sb.env
        assert set(sb.providers) == FIVE  # the server serves what the registry lists
        for p in PROVIDERS:
            own = p.env(sb.url(p.name))
            assert own[f"{p.name.upper()}_BASE_URL"] == sb.url(p.name) == env[f"{p.name.upper()}_BASE_URL"]
            assert len(own) >= 2  # a base URL and at least one credential
            assert all(k.startswith(p.name.upper() + "_") for k in own)
            assert {k: env[k] for k in own} == own
            # The base URL reaches the provider itself, not the server's "no provider" 404.
            reply = httpx.get(env[f"{p.name.upper()}_BASE_URL"] + "/", timeout=10)
            assert "no provider at" not in reply.text
        # Nothing else, and no provider overwrites another's variable.
        assert sum(len(p.env("x")) for p in PROVIDERS) == len(env)
        assert env["CYMBIO_RETAILER_ID"] == w.CYMBIO_RETAILER_ID and env["SYMPLA_TOKEN"] == w.SYMPLA_TOKEN


def test_the_truth_reads_every_ticketing_provider():
    world = w.World(anchor=date(2026, 3, 15))
    assert {f.provider for f in truth.event_facts(world)} == {"tickettailor", "sympla"}
    assert {f.provider for f in truth.ticket_facts(world)} == {"tickettailor", "sympla"}
    assert {f.provider for f in truth.order_facts(world)} == {"tickettailor", "sympla"}
    campaign = world.campaigns[0]
    assert truth.campaign_analytics(world, campaign)["id"] == campaign.id
