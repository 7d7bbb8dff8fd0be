"""Sandbox for the Cymbal Partners API (provider-docs/000, DESIGN.md points 3 and 4).

Endpoints (below the `/cymbal` prefix):

- `GET /v1/partners/campaigns/analytics?page=&per_page=&type=` -> `{"data", "page", "per_page", "total"}`.
  `page` is 1-based (default 1), `per_page` defaults to 10 and may be at most `MAX_PER_PAGE` (100); a
  larger value is a 400 rather than a silent clamp, because a client that stops on a short page would
  otherwise stop after the first clamped page. Campaigns are listed newest `sent_at` first (id breaks
  ties); only campaigns sent before `world.end` (the sandbox's "now") are listed.
- `POST /v1/partners/events` `{"events": [Event, ...]}`, `POST /v1/partners/orders` `{"orders": [...]}`,
  `POST /v1/partners/contact` `{"contact": {...}}` (one object, as the doc says) -> `201 {"status": "queued"}`.
  A batch is all-or-nothing: one invalid item rejects the request with 422 and nothing is recorded.
  The doc states no batch-size limit, so none is enforced. Bodies that are not the documented
  wrapper object are 400.

Auth: header `Cymbal-Partner-API-Key`. Missing -> 401; any other value -> 403, which the doc
defines as "the key was revoked, generate a new one".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
CAMPAIGN_TYPES = ("email", "sms")
# The doc's only stated datetime format: "2024-03-02T15:30:00Z in UTC".
UTC_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
EVENT_STATUSES = ("live", "canceled")
WRITE_KINDS = ("events", "orders", "contact")
# Campaign index (id cmp1000 + i) that nobody clicked: the mart's conversion_rate must be NULL for it.
ZERO_CLICK_INDEX = 3


def _iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def campaign_analytics(world: w.World, campaign: w.Campaign) -> dict[str, Any]:
    """The API record for one campaign: a pure function of the world, so the ground truth can call it."""
    rng = world.rng("cymbal", campaign.id)
    recipients = rng.randint(800, 6000) if campaign.type == "email" else rng.randint(300, 2000)
    delivered = recipients - rng.randint(0, recipients // 20)
    # SMS opens are not observable, so an SMS campaign reports none.
    opened = int(delivered * rng.uniform(0.2, 0.5)) if campaign.type == "email" else 0
    clicks = int(delivered * rng.uniform(0.02, 0.1))
    if int(campaign.id.removeprefix("cmp")) - 1000 == ZERO_CLICK_INDEX:
        clicks = 0
    unsubscribed = int(delivered * rng.uniform(0.0, 0.01))
    # Attributed revenue in the currency's minor units; yen have no minor unit, so amounts look larger.
    per_click = rng.randint(40, 400) * (2 if campaign.currency_code == "JPY" else 1)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "type": campaign.type,
        "sent_at": _iso_z(campaign.sent_at),
        "num_recipients": recipients,
        "num_delivered": delivered,
        "num_opened": opened,
        "num_links_clicked": clicks,
        "num_unsubscribed": unsubscribed,
        "attributed_revenue": clicks * per_click,
        "currency_code": campaign.currency_code,
    }


def listed_campaigns(world: w.World, campaign_type: str | None = None) -> list[w.Campaign]:
    """The campaigns the analytics endpoint lists, in its order (newest first)."""
    out = [c for c in world.campaigns if c.sent_at < world.end and (campaign_type is None or c.type == campaign_type)]
    out.sort(key=lambda c: (-c.sent_at.timestamp(), c.id))
    return out


def stored(ctx: SandboxContext, kind: str) -> dict[str, dict[str, Any]]:
    """Latest accepted version of each pushed record of `kind` (events | orders | contact), by id."""
    with ctx.lock:
        return dict(_state(ctx)[kind])


def _state(ctx: SandboxContext) -> dict[str, dict[str, dict[str, Any]]]:
    # Caller holds ctx.lock or accepts a benign race on first creation.
    return ctx.state.setdefault("cymbal", {k: {} for k in WRITE_KINDS})


def _error(status: int, message: str, errors: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    return json_response(body, status)


def _int_arg(request: Request, name: str, default: int) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _has_id(value: Any) -> bool:
    return _nonempty_str(value) or (isinstance(value, int) and not isinstance(value, bool))


def _check_datetimes(item: dict[str, Any], where: str, errors: list[str]) -> None:
    for key, value in item.items():
        if key.endswith("_datetime") and value is not None and (
            not isinstance(value, str) or not UTC_DATETIME.match(value) or not _parses(value)
        ):
            errors.append(f"{where}.{key} must be a UTC datetime like 2024-03-02T15:30:00Z, got {value!r}")


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_contact_channels(person: Any, where: str, errors: list[str]) -> None:
    if not isinstance(person, dict):
        errors.append(f"{where} must be an object")
        return
    email, phone = person.get("email"), person.get("phone")
    if not (_nonempty_str(email) or _nonempty_str(phone)):
        errors.append(f"{where} needs an email or a phone")
    if _nonempty_str(email) and "@" not in email:
        errors.append(f"{where}.email is not an email address")


def _check_opt_ins(value: Any, where: str, errors: list[str]) -> None:
    # true subscribes, false unsubscribes, null leaves the subscription unchanged (doc, "Create a contact").
    if not isinstance(value, dict):
        errors.append(f"{where} must be an object like {{\"email\": true, \"sms\": null}}")
        return
    for channel, flag in value.items():
        if flag is not None and not isinstance(flag, bool):
            errors.append(f"{where}.{channel} must be true, false or null")


def validate_event(item: Any, where: str) -> list[str]:
    errors: list[str] = []
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    if not _has_id(item.get("id")):
        errors.append(f"{where}.id is required")
    for field in ("url", "name", "image_url", "start_datetime"):
        if not _nonempty_str(item.get(field)):
            errors.append(f"{where}.{field} is required")
    location = item.get("location")
    if not (_nonempty_str(location) or (isinstance(location, dict) and location)):
        errors.append(f"{where}.location is required")
    status = item.get("status")
    if status is not None and status not in EVENT_STATUSES:
        errors.append(f"{where}.status must be one of {', '.join(EVENT_STATUSES)}")
    _check_datetimes(item, where, errors)
    return errors


def validate_order(item: Any, where: str) -> list[str]:
    errors: list[str] = []
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    if not _has_id(item.get("id")):
        errors.append(f"{where}.id is required")
    if not _has_id(item.get("event_id")):
        errors.append(f"{where}.event_id is required")
    if "customer" not in item:
        errors.append(f"{where}.customer is required")
    else:
        _check_contact_channels(item["customer"], f"{where}.customer", errors)
    if "marketing_opt_ins" not in item:
        errors.append(f"{where}.marketing_opt_ins is required")
    else:
        _check_opt_ins(item["marketing_opt_ins"], f"{where}.marketing_opt_ins", errors)
    items = item.get("items")
    if not isinstance(items, list) or not items:
        errors.append(f"{where}.items must be a non-empty list")
    else:
        for i, line in enumerate(items):
            if not isinstance(line, dict):
                errors.append(f"{where}.items[{i}] must be an object")
                continue
            currency = line.get("currency_code")
            if currency is not None and not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
                errors.append(f"{where}.items[{i}].currency_code must be an ISO-4217 code like USD")
    _check_datetimes(item, where, errors)
    return errors


def validate_contact(item: Any, where: str) -> list[str]:
    errors: list[str] = []
    _check_contact_channels(item, where, errors)
    if isinstance(item, dict) and item.get("opt_ins") is not None:
        _check_opt_ins(item["opt_ins"], f"{where}.opt_ins", errors)
    return errors


def contact_key(contact: dict[str, Any]) -> str:
    """Contacts may come without an id; then the email (case-folded), else the phone, identifies them."""
    if _has_id(contact.get("id")):
        return str(contact["id"])
    if _nonempty_str(contact.get("email")):
        return contact["email"].strip().lower()
    return str(contact.get("phone")).strip()


class CymbalSandbox(Provider):
    name = "cymbal"

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"CYMBAL_BASE_URL": base_url, "CYMBAL_API_KEY": w.CYMBAL_API_KEY}

    def error(self, status: int, message: str) -> Response:
        return _error(status, message)

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        key = request.headers.get("cymbal-partner-api-key", "").strip()
        if not key:
            return _error(401, "Missing Cymbal-Partner-API-Key header")
        if key != w.CYMBAL_API_KEY:
            return _error(403, "API key is invalid or has been revoked; generate a new API token in the Cymbal manager")
        route = (request.method, request.path)
        if route == ("GET", "/v1/partners/campaigns/analytics"):
            return self._analytics(request, ctx)
        if request.method == "POST" and request.path in (
            "/v1/partners/events", "/v1/partners/orders", "/v1/partners/contact",
        ):
            return self._write(request, ctx, request.path.rsplit("/", 1)[1])
        if request.path in ("/v1/partners/campaigns/analytics", "/v1/partners/events", "/v1/partners/orders",
                            "/v1/partners/contact"):
            return _error(405, f"{request.method} not allowed on {request.path}")
        return _error(404, f"no such endpoint: {request.path}")

    def _analytics(self, request: Request, ctx: SandboxContext) -> Response:
        page = _int_arg(request, "page", 1)
        per_page = _int_arg(request, "per_page", DEFAULT_PER_PAGE)
        if page is None or page < 1:
            return _error(400, "page must be an integer >= 1")
        if per_page is None or not 1 <= per_page <= MAX_PER_PAGE:
            return _error(400, f"per_page must be an integer between 1 and {MAX_PER_PAGE}")
        campaign_type = request.arg("type") or None
        if campaign_type is not None and campaign_type not in CAMPAIGN_TYPES:
            return _error(400, "type must be email or sms")
        campaigns = listed_campaigns(ctx.world, campaign_type)
        start = (page - 1) * per_page
        chosen = campaigns[start:start + per_page]
        # The "repeat" fault mimics a record inserted between page reads: the page also carries the
        # previous page's last record. It is prepended rather than shifted in, so nothing is lost and
        # a client that de-duplicates by id still sees every campaign exactly once.
        if page >= 2 and start <= len(campaigns) and ctx.faults.hit("repeat", f"cymbal {request.key}"):
            chosen = [campaigns[start - 1], *chosen]
        return json_response({
            "data": [campaign_analytics(ctx.world, c) for c in chosen],
            "page": page,
            "per_page": per_page,
            "total": len(campaigns),
        })

    def _write(self, request: Request, ctx: SandboxContext, kind: str) -> Response:
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return _error(400, "request body is not valid JSON")
        if kind == "contact":
            if not isinstance(body, dict) or not isinstance(body.get("contact"), dict):
                return _error(400, 'body must be {"contact": {...}} with one contact object')
            items = [body["contact"]]
            errors = validate_contact(body["contact"], "contact")
        else:
            if not isinstance(body, dict) or not isinstance(body.get(kind), list):
                return _error(400, f'body must be {{"{kind}": [...]}} with a list of {kind}')
            items = body[kind]
            check = validate_event if kind == "events" else validate_order
            errors = [e for i, item in enumerate(items) for e in check(item, f"{kind}[{i}]")]
        if errors:
            return _error(422, errors[0], errors)
        with ctx.lock:
            bucket = _state(ctx)[kind]
            for item in items:
                # Ids are idempotent (DESIGN.md point 4): a second post of the same id replaces the first.
                bucket[contact_key(item) if kind == "contact" else str(item["id"])] = item
        for item in items:
            ctx.recorder.record("cymbal", kind, item)
        return json_response({"status": "queued"}, 201)
