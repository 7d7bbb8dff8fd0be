"""When the sync may assert a subscription, and how contacts are named in the log.

Who consents is decided in SQL (`sync.sync_contacts`: the buyer's latest explicit answer is yes).
What is left here depends on the sync log, one destination at a time:

- An opt-in `true` is sent only when the contact's yes is NEWER than the destination's last
  successful send of that contact. Otherwise the opt-in is null ("leave as is"), so an unsubscribe
  made at the destination after our last send is never overridden by an old answer.
- A contact the destination has never accepted is new to it: their yes is sent as `true`.
- With no sync log at all for the destination (a new deployment, or a lost log), nothing says what
  was sent before, so only answers from the last MARQUEE_CONSENT_FRESH_DAYS days (default 30) may
  send `true`; older ones are sent with a null opt-in.
- Nobody is ever sent `false`.

Changing only the opt-in must not make a contact look changed (it flips from true to null after a
successful send), so a contact's log hash covers its details and the time of its answer, not the
opt-in (`content_hash`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from assets.reverse_sync.payloads import payload_hash
from resources.pii import keyed_id

FRESH_DAYS_ENV = "MARQUEE_CONSENT_FRESH_DAYS"
DEFAULT_FRESH_DAYS = 30
# The subscription fields of each destination's contact payload: left out of the content hash.
OPT_IN_FIELDS = ("opt_ins", "channels.email.subscribeStatus")


def fresh_days() -> int:
    raw = (os.environ.get(FRESH_DAYS_ENV) or "").strip()
    if not raw:
        return DEFAULT_FRESH_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise ValueError(f"{FRESH_DAYS_ENV}={raw!r} must be a whole number of days (0 or more), e.g. 30")
    return days


def may_assert_opt_in(answered_at: datetime, last_sent_at: datetime | None, log_exists: bool,
                      now: datetime, freshness_days: int) -> bool:
    """Whether this contact's yes may be sent as a subscription (`true`) to this destination now."""
    if last_sent_at is not None:
        return answered_at > last_sent_at
    if log_exists:
        return True
    return answered_at >= now - timedelta(days=freshness_days)


def contact_key(identity: str) -> str:
    """The contact's id in the log and in metadata: an HMAC of `email:<email>` / `phone:<digits>`
    under the PII key, so a guessed email cannot be hashed and looked up."""
    return keyed_id("ct_", identity)


def legacy_contact_key(identity: str) -> str:
    """The unkeyed id earlier versions logged contacts under (sha256 of the same identity). Read
    once to carry a contact's history over to its keyed id; never written."""
    return "ct_" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def content_hash(payload: Mapping[str, Any], answered_at: datetime) -> str:
    """What the log compares for a contact: the payload without its subscription fields, and the time
    of the answer (a new answer is a change; an opt-in that fell back to null is not)."""
    details = {k: v for k, v in payload.items() if k not in OPT_IN_FIELDS}
    if isinstance(details.get("attributes"), Mapping):
        details["attributes"] = {k: v for k, v in details["attributes"].items() if k not in OPT_IN_FIELDS}
    return payload_hash({"contact": details, "answered_at": answered_at.isoformat()})
