"""Decoding reply bodies that strict JSON (orjson) rejects, and telling which records cannot be landed.

orjson is the fast path and stays so. It refuses a whole page for one bad spot: a lone surrogate
escape (`"\\ud800"`), bytes that are not UTF-8, a number a double cannot hold (`1e400`). Refusing
the page would fail the entity on every run for one record, so the core decodes such a page once
more with `tolerant_loads`, which keeps every record and marks the bad spots in a way the landing
code can see:

- text that is not valid Unicode stays as Python text holding lone surrogates (an invalid byte
  becomes U+DC80..U+DCFF, the standard `surrogateescape` mapping), so no character is invented;
- a number out of range becomes an `OutOfRangeNumber` that keeps the literal as sent.

Neither can be written as JSON by orjson (which `_raw` uses) nor stored faithfully in Parquet, so
`unrepresentable(record)` names the first such spot, and the lander quarantines the record with
that reason while the rest of the page lands. `quarantine_json` writes such a record as ASCII JSON
(escapes instead of the bad characters) so the quarantine file itself never fails.

The stdlib `json` module is the fallback because it is the one well-kept decoder that accepts lone
surrogate escapes and lets us intercept number parsing; it is only used on the rare page that
orjson rejected.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class OutOfRangeNumber:
    """A JSON number that no float64 / int64 can hold (`1e400`), or a non-JSON constant (`NaN`)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutOfRangeNumber) and other.literal == self.literal

    def __hash__(self) -> int:
        return hash(("OutOfRangeNumber", self.literal))


def _parse_float(text: str) -> float | OutOfRangeNumber:
    value = float(text)
    return value if math.isfinite(value) else OutOfRangeNumber(text)


def _parse_int(text: str) -> int | OutOfRangeNumber:
    # Also sidesteps Python's 4300-digit int-parsing guard, which would raise ValueError mid-page.
    if len(text) > 20:
        return OutOfRangeNumber(text)
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else OutOfRangeNumber(text)


def tolerant_loads(content: bytes) -> Any:
    """Decode a body orjson refused. Raises `json.JSONDecodeError` if it is not JSON even so."""
    text = content.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    return json.loads(text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=OutOfRangeNumber)


def cut_short(content: bytes, error: json.JSONDecodeError) -> bool:
    """True when the decoder ran out of input: the body is a prefix of a document, i.e. it was cut
    on the way (worth another request), as opposed to a body that is wrong where it stands."""
    if error.msg.startswith("Unterminated string"):
        return True
    rest = error.doc[error.pos:].rstrip()
    # Cut inside a literal or a number (`tr`, `nul`, `-`, `1.`, `2e`): the decoder stops at its start.
    return (not rest or any(word.startswith(rest) for word in ("true", "false", "null"))
            or re.fullmatch(r"-?[0-9]*(\.[0-9]*)?([eE][+-]?[0-9]*)?", rest) is not None)


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unrepresentable(value: Any, path: str = "$") -> str | None:
    """Why `value` cannot be landed as JSON text, naming the first bad spot by its path; None if it can.

    The reason never carries the offending text itself (it may be personal data), only where it is."""
    if isinstance(value, str):
        return f"text that is not valid Unicode (lone surrogate or invalid UTF-8 byte) at {path}" \
            if _bad_text(value) else None
    if isinstance(value, OutOfRangeNumber):
        return f"number out of range ({value.literal[:40]}) at {path}"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else f"integer out of 64-bit range at {path}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"non-finite number at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _bad_text(key):
                return f"a key that is not valid Unicode in {path}"
            reason = unrepresentable(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]")
            if reason:
                return reason
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            reason = unrepresentable(item, f"{path}[{i}]")
            if reason:
                return reason
        return None
    return f"a value of type {type(value).__name__} at {path}"


def quarantine_json(value: Any) -> str:
    """JSON text for a record that orjson cannot write: ASCII only, bad characters as `\\uXXXX`
    escapes, out-of-range numbers as their literal in a string."""
    return json.dumps(value, ensure_ascii=True, default=lambda v: repr(v) if isinstance(v, OutOfRangeNumber)
                      else f"<{type(v).__name__}>")
