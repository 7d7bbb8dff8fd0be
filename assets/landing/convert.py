"""How one API record becomes one typed row: the conversion helpers every provider's converter uses.

A converter raises `RecordError` for a record that does not fit its schema; the lander quarantines
it with that reason and lands the rest."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from resources.jsonbody import quarantine_json


class RecordError(ValueError):
    """A record that does not fit its entity's schema; the message is the quarantine reason."""


_MISSING = object()


def req(record: Any, *path: str) -> Any:
    """The value at `path`, which must be present (it may be null only if the docs say so)."""
    cur = record
    for i, key in enumerate(path):
        if not isinstance(cur, dict):
            raise RecordError(f"{'.'.join(path[:i]) or 'record'}: expected an object, got {type(cur).__name__}")
        cur = cur.get(key, _MISSING)
        if cur is _MISSING:
            raise RecordError(f"missing key {'.'.join(path)!r}")
    return cur


def opt(record: Any, *path: str) -> Any:
    """The value at `path`, or None when any level is absent or null (Sympla omits nulls)."""
    cur = record
    for i, key in enumerate(path):
        if cur is None:
            return None
        if not isinstance(cur, dict):
            raise RecordError(f"{'.'.join(path[:i]) or 'record'}: expected an object, got {type(cur).__name__}")
        cur = cur.get(key)
    return cur


def to_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RecordError(f"{name}: expected a string, got {type(value).__name__}")


def to_id(value: Any, name: str) -> str:
    """A required identifier (string as the API sends it)."""
    if value is None:
        raise RecordError(f"{name}: null identifier")
    if isinstance(value, str) and value:
        return value
    raise RecordError(f"{name}: expected a non-empty string id, got {type(value).__name__}")


def to_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"{name}: expected an integer, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise RecordError(f"{name}: expected an integer, got {type(value).__name__} {value!r}"[:200])


def to_req_int(value: Any, name: str) -> int:
    out = to_int(value, name)
    if out is None:
        raise RecordError(f"{name}: null identifier")
    return out


def to_money_minor(value: Any, name: str) -> int | None:
    """Money the provider sends in minor units: an integer (an integral float is accepted as one)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"{name}: money is not integral minor units (bool)")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise RecordError(f"{name}: money is not integral minor units ({value!r})"[:200])


def to_decimal(value: Any, name: str, places: int = 2) -> Decimal | None:
    """A decimal amount as sent (Sympla's reais), exactly: `Decimal(str(x))`, never float maths."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RecordError(f"{name}: expected a decimal number, got {type(value).__name__}")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise RecordError(f"{name}: not a decimal number ({value!r})"[:200]) from exc
    if not dec.is_finite():
        raise RecordError(f"{name}: not a finite number")
    if dec != dec.quantize(Decimal(1).scaleb(-places)):
        raise RecordError(f"{name}: more than {places} decimal places ({value!r})"[:200])
    return dec.quantize(Decimal(1).scaleb(-places))


def to_bool(value: Any, name: str) -> bool | None:
    """Booleans as the providers spell them: true/false, "true"/"false", 0/1."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RecordError(f"{name}: expected a boolean, got {value!r}"[:200])


def ts_unix(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{name}: expected a unix timestamp, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise RecordError(f"{name}: unix timestamp out of range ({value!r})") from exc


def ts_text(value: Any, name: str, default_tz: tzinfo | str = UTC) -> datetime | None:
    """A date-time string in UTC. Accepts ISO-8601 (`T` or space, optional fraction, `Z` or offset)
    and bare dates; a value without offset is in `default_tz` (Sympla: the `timezone` asked for)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{name}: expected a date-time string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f"{name}: not a date-time ({value!r})"[:200]) from exc
    if parsed.tzinfo is None:
        zone = ZoneInfo(default_tz) if isinstance(default_tz, str) else default_tz
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def child_list(record: Any, key: str) -> list[Any] | None:
    """A nested list of child records (`line_items`, `returnLines`...): the list, or None when absent
    or null. Anything else is a malformed record: a number or a string there must not be iterated
    (a string would fan out into one bogus child per character)."""
    value = record.get(key) if isinstance(record, dict) else None
    if value is None or isinstance(value, list):
        return value
    raise RecordError(f"{key}: expected a list, got {type(value).__name__}")


def to_str_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(f"{name}: expected a list, got {type(value).__name__}")
    return [to_str(v, f"{name}[]") for v in value]


def questions(value: Any, name: str) -> list[dict[str, str | None]] | None:
    """Ticket Tailor custom questions: [{question, answer}]."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(f"{name}: expected a list, got {type(value).__name__}")
    out = []
    for q in value:
        if not isinstance(q, dict):
            raise RecordError(f"{name}[]: expected an object, got {type(q).__name__}")
        answer = q.get("answer")
        if isinstance(answer, bool | int | float):
            answer = str(answer).lower() if isinstance(answer, bool) else str(answer)
        out.append({"question": to_str(q.get("question"), f"{name}[].question"), "answer": to_str(answer, name)})
    return out


def dumps(record: Any) -> str:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS).decode()


def _quarantine_text(raw: Any) -> str:
    """The raw record as text for the quarantine file, whatever it holds: a record that orjson
    cannot write (lone surrogates, out-of-range numbers) is written as ASCII JSON with escapes."""
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
            return raw
        except UnicodeEncodeError:
            return quarantine_json(raw)
    try:
        return dumps(raw)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return quarantine_json(raw)


def utc_day(ts: datetime | None) -> date:
    if ts is None:
        raise RecordError("no timestamp to place the record in a daily partition")
    return ts.astimezone(UTC).date()


