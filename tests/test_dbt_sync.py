"""The reverse sync's rules, in SQL: who is a contact, which question is consent, one status
vocabulary, what must never be synced. A small lake written by hand, built with the real dbt project;
every expected value below is worked out from the story in `_rows`, not read from a model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_dbt_marts import PII_KEY, keyed_connection, write_lake

from assets.dbt import prepare_build_database
from assets.dbt_project import dbt_env
from tests.dbt_inprocess import dbt

# runs dbt or the pipeline: left out of `make test-fast`; its module fixture is built once, on one worker
pytestmark = [pytest.mark.pipeline, pytest.mark.xdist_group("test_dbt_sync")]

LABEL = "Marketing: keep me posted about future events by email"
NEGATED = "Tick if you do NOT want marketing emails"
SYMPLA_LABEL = "Aceito receber comunicações de marketing?"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def q(questions: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    return [{"question": label, "answer": answer} for label, answer in questions]


def tt_order(oid: str, created: str, email: str | None, questions, *, phone: str | None = None, status="completed",
             currency="gbp", total=1000, raw: dict | None = None) -> tuple[str, datetime, dict[str, Any]]:
    day = created[:10]
    row = {"id": oid, "event_id": "ev_1", "event_name": "Tulip Fest", "status": status, "currency": currency,
           "total": total, "refund_amount": 0, "created_at": ts(created), "buyer_email": email, "buyer_phone": phone,
           "buyer_first_name": oid.upper(), "buyer_custom_questions": q(questions)}
    if raw:
        row["_raw"] = raw
    return (day, ts("2025-01-20 00:00:00"), row)


def _rows() -> dict[str, list]:
    return {
        "tickettailor_orders": [
            # A: yes, then an explicit no -> not a contact.
            tt_order("or_a1", "2025-01-01 10:00:00", "a@example.com", [(LABEL, "Yes")]),
            tt_order("or_a2", "2025-01-03 10:00:00", "A@Example.com ", [(LABEL, "No")]),
            # B: no, then yes -> a contact, answered at or_b2's creation.
            tt_order("or_b1", "2025-01-01 11:00:00", "b@example.com", [(LABEL, "no")]),
            tt_order("or_b2", "2025-01-02 11:00:00", "b@example.com", [(LABEL, " yes ")]),
            # C: yes, then an order without the question -> still a contact, answered at or_c1.
            tt_order("or_c1", "2025-01-01 12:00:00", "c@example.com", [(LABEL, "Yes")]),
            tt_order("or_c2", "2025-01-04 12:00:00", "c@example.com", []),
            # D: only the negated question, ticked -> never consent.
            tt_order("or_d1", "2025-01-02 13:00:00", "d@example.com", [(NEGATED, "Yes")]),
            # E: no email, a phone, answered 1 -> a contact known by the phone's digits.
            tt_order("or_e1", "2025-01-02 14:00:00", None, [(LABEL, "1")], phone="+44 (0) 7000 111222"),
            # F: the label spelt with other case and spacing still matches exactly; a blank answer is none.
            tt_order("or_f1", "2025-01-02 15:00:00", "f@example.com",
                     [("  marketing:  KEEP me posted about future events by email ", "true")]),
            tt_order("or_f2", "2025-01-03 15:00:00", "f@example.com", [(LABEL, "   ")]),
            # Not ISO money, and negative money: never synced.
            tt_order("or_x1", "2025-01-02 16:00:00", "x@example.com", [], currency="xyz"),
            tt_order("or_x2", "2025-01-02 17:00:00", "x@example.com", [], total=-100),
            # Lines in the API's own order: li_9 first, then li_2.
            tt_order("or_l1", "2025-01-02 18:00:00", "l@example.com", [],
                     raw={"line_items": [{"id": "li_9"}, {"id": "li_2"}]}),
        ],
        "tickettailor_order_line_items": [
            ("2025-01-02", ts("2025-01-20 00:00:00"),
             {"id": "li_2", "order_id": "or_l1", "type": "ticket", "description": "Adult", "quantity": 2,
              "total": 800}),
            ("2025-01-02", ts("2025-01-20 00:00:00"),
             {"id": "li_9", "order_id": "or_l1", "type": "transaction_charge", "description": None, "quantity": 1,
              "total": 200}),
        ],
        "sympla_orders": [
            ("2025-01-02", ts("2025-01-20 00:00:00"),
             {"id": "S1", "event_id": "s1", "order_status": "APPROVED", "order_date": ts("2025-01-02 09:00:00"),
              "order_total_sale_price": "10.29", "buyer_email": "g@example.com", "buyer_first_name": "G"}),
            ("2025-01-02", ts("2025-01-20 00:00:00"),
             {"id": "S2", "event_id": "s1", "order_status": "C", "order_date": ts("2025-01-02 10:00:00"),
              "order_total_sale_price": "5", "buyer_email": "h@example.com", "buyer_first_name": "H"}),
        ],
        "sympla_participants": [
            # G's own ticket answers Sim (question id 2); G's guest says Não: G is a contact.
            ("2025-02-01", ts("2025-02-01 00:00:00"),
             {"id": 11, "order_id": "S1", "event_id": "s1", "email": "G@example.com", "ticket_sale_price": "10.29",
              "custom_form": [{"id": 2, "name": SYMPLA_LABEL, "value": "Sim"}]}),
            ("2025-02-01", ts("2025-02-01 00:00:00"),
             {"id": 10, "order_id": "S1", "event_id": "s1", "email": "guest@example.com", "ticket_sale_price": "0",
              "custom_form": [{"id": 2, "name": SYMPLA_LABEL, "value": "Não"}]}),
            # H's only answer is a guest's yes: it does not speak for H.
            ("2025-02-01", ts("2025-02-01 00:00:00"),
             {"id": 12, "order_id": "S2", "event_id": "s1", "email": "guest2@example.com", "ticket_sale_price": "5",
              "custom_form": [{"id": 2, "name": SYMPLA_LABEL, "value": "Sim"}]}),
        ],
    }


def build(data_dir: Path, consent_label: str | None) -> duckdb.DuckDBPyConnection:
    write_lake(data_dir / "lake", _rows())
    db = data_dir / "build" / "dbt.duckdb"
    prepare_build_database(db, data_dir / "lake")
    env = dbt_env()
    env.update({"MARQUEE_DATA_DIR": str(data_dir), "MARQUEE_DBT_DATABASE": str(db), "MARQUEE_PII_HASH_KEY": PII_KEY,
                "DBT_TARGET_PATH": str(data_dir / "dbt_target"), "DBT_LOG_PATH": str(data_dir / "dbt_logs")})
    env.pop("MARQUEE_CONSENT_LABEL", None)
    if consent_label is not None:
        env["MARQUEE_CONSENT_LABEL"] = consent_label
    result = dbt(["build", "--select", "+path:models/sync"], env)
    assert result.returncode == 0, result.stdout[-4000:]
    return keyed_connection(db)


@pytest.fixture(scope="module", params=["auto", "exact"])
def built(request, tmp_path_factory):
    label = None if request.param == "auto" else f"{LABEL}|id:2"
    con = build(tmp_path_factory.mktemp(f"sync_{request.param}"), label)
    yield con
    con.close()


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_a_contact_is_a_buyer_whose_latest_explicit_answer_is_yes(built):
    contacts = dict(rows(built, "select contact_identity, consent_order_key from sync.sync_contacts"))
    assert contacts == {
        "email:b@example.com": "tickettailor:or_b2",     # no, then yes
        "email:c@example.com": "tickettailor:or_c1",     # yes, then unanswered
        "phone:+4407000111222": "tickettailor:or_e1",   # phone only, digits and +
        "email:f@example.com": "tickettailor:or_f1",     # yes, then blank
        "email:g@example.com": "sympla:S1",              # the buyer's own ticket said Sim
    }
    answered = dict(rows(built, "select consent_order_key, consent_answered_at from sync.sync_contacts"))
    assert answered["tickettailor:or_b2"] == ts("2025-01-02 11:00:00")


def test_consent_questions_are_reported_with_what_was_taken(built):
    taken = {(p, label.strip()): ok for p, label, ok in rows(
        built, "select provider, question_label, is_consent_question from sync.sync_consent_questions")}
    assert taken[("tickettailor", NEGATED)] is False
    assert taken[("tickettailor", LABEL)] is True
    assert taken[("sympla", SYMPLA_LABEL)] is True


def test_orders_have_one_status_vocabulary_and_one_revenue_rule(built):
    got = {k: (s, r) for k, s, r in rows(built, "select order_key, status, counts_as_revenue from sync.sync_orders")}
    assert got["sympla:S1"] == ("completed", True)  # APPROVED
    assert got["sympla:S2"] == ("cancelled", False)  # C
    assert got["tickettailor:or_a1"] == ("completed", True)
    guest_only = "select order_key from sync.sync_orders where consent_answer is null and email = 'h@example.com'"
    assert rows(built, guest_only) == [("sympla:S2",)]


def test_what_must_never_be_synced_is_named(built):
    problems = dict(rows(built, "select order_key, sync_problem from sync.sync_orders where sync_problem is not null"))
    assert problems == {"tickettailor:or_x1": "currency XYZ is not an ISO-4217 code",
                        "tickettailor:or_x2": "negative money"}
    exponent = "select currency_exponent from sync.sync_orders where order_key = 'tickettailor:or_x1'"
    assert rows(built, exponent) == [(None,)]


def test_lines_keep_the_order_the_api_gave(built):
    assert rows(built, "select item_id, position, item_name, item_kind, quantity, total_cents "
                       "from sync.sync_order_items where order_key = 'tickettailor:or_l1' order by position") == [
        ("tickettailor:li_9", 1, "transaction_charge", "transaction_charge", 1, 200),
        ("tickettailor:li_2", 2, "Adult", "ticket", 2, 800)]
    assert rows(built, "select item_id, total_cents from sync.sync_order_items where order_key = 'sympla:S1' "
                       "order by position") == [("sympla:10", 0), ("sympla:11", 1029)]


def test_a_substring_label_is_not_the_configured_question(tmp_path):
    con = build(tmp_path, "Marketing emails?")  # not a label any order carries
    try:
        assert rows(con, "select count(*) from sync.sync_contacts") == [(0,)]
    finally:
        con.close()
