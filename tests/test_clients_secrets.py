"""No configured secret ever appears in log output, error messages or reprs.

Runs every client through a Dagster materialization built by `registry.build_resources()` from
the environment (so secrets travel as `dg.EnvVar`), with faults and with rejected credentials,
capturing every log record at DEBUG (ours, httpx's, httpcore's, Dagster's event log) and stdout.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets.providers import build_resources
from resources.errors import ProviderError
from sandbox import start_sandbox
from sandbox import world as w

SECRETS = (w.TICKETTAILOR_API_KEY, w.SYMPLA_TOKEN, w.CYMBAL_API_KEY, w.CYMBIO_CLIENT_SECRET, w.CORDIAL_API_KEY)
BAD = {"TICKETTAILOR_API_KEY": "bad-tt-key-000111", "SYMPLA_TOKEN": "bad-sympla-000222",
       "CYMBAL_API_KEY": "bad-cymbal-000333", "CYMBIO_CLIENT_SECRET": "bad-cymbio-000444",
       "CORDIAL_API_KEY": "bad-cordial-000555"}


def _exercise(context, resources: dict) -> None:  # noqa: ANN001
    tt, sy, cy, cb, co = (resources[k] for k in ("tickettailor", "sympla", "cymbal", "cymbio", "cordial"))
    events = next(iter(tt.iter_events()))
    since = datetime.fromtimestamp(events[0]["created_at"], UTC)
    sum(len(p) for p in tt.iter_orders(since, since + timedelta(days=3)))
    sy_events = next(iter(sy.iter_events()))
    sum(len(p) for p in sy.iter_orders(sy_events[0]["id"]))
    sum(len(p) for p in cy.iter_campaign_analytics())
    cy.create_contacts([{"email": "fan@example.com"}])
    sum(len(p) for p in cb.iter_variants())
    co.upsert_contact({"identifiers": {"email": "fan@example.com"}})
    for res in resources.values():
        context.log.info(f"resource {res!r}")


def test_no_secret_in_any_log_error_or_repr(monkeypatch, caplog, capsys, request):
    with start_sandbox(anchor=date(2026, 3, 15), faults="5xx:0.2,expire:0.5,repeat:0.3") as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        good = build_resources()  # EnvVar-backed: resolved by Dagster inside the run
        messages: list[str] = []

        @dg.asset(required_resource_keys=set(good))
        def sync_everything(context) -> None:  # noqa: ANN001 - dagster rejects string annotations here
            resolved = {k: getattr(context.resources, k) for k in good}
            _exercise(context, resolved)

        @dg.asset
        def rejected_credentials(context) -> None:  # noqa: ANN001
            calls = {
                "tickettailor": lambda r: list(r.iter_events()), "sympla": lambda r: list(r.iter_events()),
                "cymbal": lambda r: list(r.iter_campaign_analytics()), "cymbio": lambda r: list(r.iter_variants()),
                "cordial": lambda r: r.upsert_contact({"identifiers": {"email": "x@example.com"}}),
            }
            for key, call in calls.items():
                try:
                    call(bad_direct[key])
                except ProviderError as exc:
                    messages.append(str(exc) + repr(exc))
                    context.log.error(f"{key} refused: {exc}")
                    logging.getLogger("marquee.test").exception("refused")

        from resources.cordial import CordialResource
        from resources.cymbal import CymbalResource
        from resources.cymbio import CymbioResource
        from resources.sympla import SymplaResource
        from resources.tickettailor import TicketTailorResource
        env = sb.env
        bad_direct = {
            "tickettailor": TicketTailorResource(api_key=BAD["TICKETTAILOR_API_KEY"],
                                                 base_url=env["TICKETTAILOR_BASE_URL"]),
            "sympla": SymplaResource(token=BAD["SYMPLA_TOKEN"], base_url=env["SYMPLA_BASE_URL"]),
            "cymbal": CymbalResource(api_key=BAD["CYMBAL_API_KEY"], base_url=env["CYMBAL_BASE_URL"]),
            "cymbio": CymbioResource(client_id=env["CYMBIO_CLIENT_ID"], client_secret=BAD["CYMBIO_CLIENT_SECRET"],
                                     retailer_id=env["CYMBIO_RETAILER_ID"], base_url=env["CYMBIO_BASE_URL"]),
            "cordial": CordialResource(api_key=BAD["CORDIAL_API_KEY"], base_url=env["CORDIAL_BASE_URL"]),
        }

        # Everything at DEBUG for this test only: the levels are restored at the end, so later tests
        # (which rely on httpx/httpcore staying quiet, resources/http/core.py) see the real setup.
        for name in ("", "httpx", "httpcore", "dagster", "marquee"):
            logger = logging.getLogger(name)
            request.addfinalizer(lambda logger=logger, level=logger.level: logger.setLevel(level))
            logger.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG):
            instance = dg.DagsterInstance.ephemeral()
            result = dg.materialize([sync_everything, rejected_credentials], resources=good, instance=instance)
            assert result.success
            event_log = "\n".join(
                str(e.user_message) + str(e.dagster_event) for e in instance.all_logs(result.run_id)
            )
        out = capsys.readouterr()
        everything = caplog.text + event_log + out.out + out.err + "\n".join(messages)
        everything += "".join(repr(r) + str(r) for r in list(good.values()) + list(bad_direct.values()))
        assert len(messages) == 5  # every rejected credential produced an error we could inspect
        assert "resource TicketTailorResource(" in everything and "refused" in everything  # capture worked
        assert "GET /v1/events" in caplog.text
        for secret in SECRETS + tuple(BAD.values()):
            assert secret not in everything, "a configured secret leaked into the logs"
