"""Sandbox for Cordial's Asynchronous API (provider-docs/003, DESIGN.md point 5).

Endpoints (below the `/cordial` prefix), one JSON object per request:

- `POST /upsertContact`: requires `identifiers`, a non-empty object (`customId`/`customID`, `email`,
  `channels.phone.address`, ...). Optional `identifiersPriority` (list of strings), `attributes` (object),
  `forceSubscribe` (boolean), `mergeOptions` (object), `source` (string).
- `POST /upsertOrder`: requires `contact.identifiers`, `orderID`, `purchaseDate` (ISO-8601 with an explicit
  offset), `status` and a non-empty `items` list whose items carry `productID`, `sku` and `name`.
  Amounts (`totalAmount`, `tax`, `itemPrice`) are decimal numbers in this API, not minor units.

Both reply `202 {"accepted": true, "requestId": "<uuid4>"}`: the API is asynchronous, so acceptance
is all the caller learns. Invalid JSON or a non-object body -> 400; a failed field check -> 422 with the
reasons. Auth: HTTP Basic with the API key as username; missing or wrong -> 401.

The other documented actions (contact activities, lists, supplements, carts) are not used by marquee and
answer 501 here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from sandbox import world as w
from sandbox.http import Provider, SandboxContext
from sandbox.messages import Request, Response, json_response

UPSERT_KINDS = ("upsertContact", "upsertOrder")
UNSIMULATED = ("createContactactivities", "addContactsToList", "removeContactsFromList",
               "upsertSupplementRecords", "addProductsToCart", "removeProductsFromCart")
CONTACT_KEY_ORDER = ("email", "customId", "customID", "custom_id", "channels.phone.address")


def _error(status: int, message: str, errors: list[str] | None = None, headers: dict[str, str] | None = None
           ) -> Response:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["messages"] = errors
    return json_response(body, status, headers)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_identifiers(identifiers: Any, where: str, errors: list[str]) -> None:
    if not isinstance(identifiers, dict) or not identifiers:
        errors.append(f"{where} is required: an object such as {{\"email\": \"a@example.com\"}}")
        return
    usable = [k for k, v in identifiers.items() if _nonempty_str(v) or (_is_number(v) and not isinstance(v, float))]
    if not usable:
        errors.append(f"{where} has no non-empty identifier value")
    email = identifiers.get("email")
    if email is not None and not (_nonempty_str(email) and "@" in email):
        errors.append(f"{where}.email is not an email address")


def _check_priority(value: Any, where: str, errors: list[str]) -> None:
    if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        errors.append(f"{where} must be a list of identifier names")


def validate_contact(body: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    _check_identifiers(body.get("identifiers"), "identifiers", errors)
    _check_priority(body.get("identifiersPriority"), "identifiersPriority", errors)
    if body.get("attributes") is not None and not isinstance(body["attributes"], dict):
        errors.append("attributes must be an object")
    if body.get("forceSubscribe") is not None and not isinstance(body["forceSubscribe"], bool):
        errors.append("forceSubscribe must be a boolean")
    if body.get("mergeOptions") is not None and not isinstance(body["mergeOptions"], dict):
        errors.append("mergeOptions must be an object")
    return errors


def _check_iso_datetime(value: Any, where: str, errors: list[str]) -> None:
    if not _nonempty_str(value):
        errors.append(f"{where} is required (ISO-8601, e.g. 2022-04-29T09:00:23+00:00)")
        return
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.append(f"{where} is not an ISO-8601 date-time: {value!r}")
        return
    if parsed.tzinfo is None:
        errors.append(f"{where} needs an explicit UTC offset, e.g. 2022-04-29T09:00:23+00:00")


def validate_order(body: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    contact = body.get("contact")
    if not isinstance(contact, dict):
        errors.append("contact is required: an object with identifiers")
    else:
        _check_identifiers(contact.get("identifiers"), "contact.identifiers", errors)
        _check_priority(contact.get("identifiersPriority"), "contact.identifiersPriority", errors)
    if not _nonempty_str(body.get("orderID")):
        errors.append("orderID is required (a string)")
    _check_iso_datetime(body.get("purchaseDate"), "purchaseDate", errors)
    if not _nonempty_str(body.get("status")):
        errors.append("status is required (a string)")
    for field in ("totalAmount", "tax"):
        if body.get(field) is not None and not _is_number(body[field]):
            errors.append(f"{field} must be a number")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        errors.append("items is required: a non-empty list")
        return errors
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"items[{i}] must be an object")
            continue
        for field in ("productID", "sku", "name"):
            if not _nonempty_str(item.get(field)):
                errors.append(f"items[{i}].{field} is required (a string)")
        if item.get("itemPrice") is not None and not _is_number(item["itemPrice"]):
            errors.append(f"items[{i}].itemPrice must be a number")
        qty = item.get("qty")
        if qty is not None and not (_is_number(qty) and qty >= 0):
            errors.append(f"items[{i}].qty must be a non-negative number")
    return errors


def contact_key(identifiers: dict[str, Any]) -> str:
    for name in CONTACT_KEY_ORDER:
        value = identifiers.get(name)
        if value not in (None, ""):
            return str(value).strip().lower() if name == "email" else str(value)
    return orjson.dumps(identifiers, option=orjson.OPT_SORT_KEYS).decode()


def stored(ctx: SandboxContext, kind: str) -> dict[str, dict[str, Any]]:
    """Latest accepted payload per contact (email, else customId, else phone) or per orderID."""
    with ctx.lock:
        return dict(ctx.state.get("cordial", {}).get(kind, {}))


class CordialSandbox(Provider):
    name = "cordial"

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"CORDIAL_BASE_URL": base_url, "CORDIAL_API_KEY": w.CORDIAL_API_KEY}

    def error(self, status: int, message: str) -> Response:
        return _error(status, message)

    def handle(self, request: Request, ctx: SandboxContext) -> Response:
        if request.basic_username() != w.CORDIAL_API_KEY:
            # Same answer for missing and wrong keys: the API does not say which.
            return _error(401, "Unauthorized: use HTTP Basic with your Cordial API key as the username",
                          headers={"WWW-Authenticate": 'Basic realm="cordial"'})
        action = request.path.lstrip("/")
        if action in UNSIMULATED:
            return _error(501, f"{action} is documented but not simulated by the marquee sandbox")
        if action not in UPSERT_KINDS:
            return _error(404, f"no such action: {request.path}")
        if request.method != "POST":
            return _error(405, f"use POST /{action}")
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be one JSON object")
        errors = validate_contact(body) if action == "upsertContact" else validate_order(body)
        if errors:
            return _error(422, errors[0], errors)
        key = contact_key(body["identifiers"]) if action == "upsertContact" else body["orderID"]
        with ctx.lock:
            ctx.state.setdefault("cordial", {k: {} for k in UPSERT_KINDS})[action][key] = body
        ctx.recorder.record("cordial", action, body)
        return json_response({"accepted": True, "requestId": str(uuid.uuid4())}, 202)
