"""Paginators for the four schemes the providers use. Each is a generator of pages.

They yield one page of records at a time, so memory stays flat whatever the size of the sync,
and they always ask for the largest page the API allows (fewest requests). Each reads from an
`Endpoint` (one list endpoint of a provider: its HttpCore, path and envelope), whose `get(query)`
does the HTTP with the core's retries; the paginators only decide what to ask next and when to
stop, so a test can hand them any object with the same three members instead of a server.

De-duplication: an API whose list shifts while we read it (a record inserted in front of the
cursor) shows the previous page's last record again at the top of the next page. Each paginator
drops records whose id it saw on the previous page (or earlier on the same page). Only two pages
of ids are kept, not every id ever seen, so a million-record sync does not grow a million-id set.
A record whose id is not a scalar (a list, an object, null) is never dropped for its id: it is
recognised only as the very same record seen again, and the lander quarantines it.

Envelopes: a page is only a page if it has the documented shape. `Envelope` objects describe it
per provider; the clients hand them to the HTTP core (`expect=`), which asks again on a bad reply
and then raises `ProviderResponseError`. `_records` checks the same again, so a paginator can never
read a missing or null `data` as "no records".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson

from resources.errors import ProviderResponseError
from resources.http import Expect, HttpCore


class PageSource(Protocol):
    """What a paginator reads pages from (an `Endpoint`, or a stand-in in tests)."""

    provider: str
    what: str

    def get(self, query: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint of a provider: `GET path` through its core, with the documented envelope
    checked on every page. `what` is how errors name it (`GET /v3/retailers/{id}/returns`, no id)."""

    core: HttpCore
    path: str
    expect: Expect
    what: str = ""

    def __post_init__(self) -> None:
        if not self.what:
            object.__setattr__(self, "what", f"GET {self.path}")

    @property
    def provider(self) -> str:
        return self.core.provider

    def get(self, query: dict[str, Any]) -> Any:
        return self.core.get(self.path, query, expect=self.expect, what=self.what)


def usable_id(value: Any) -> bool:
    """An id that can key a record and travel in a query string: a non-empty string of valid
    Unicode, or an integer. A list, object, bool, float or null id cannot."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, str) and value:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


def _dedup_key(record: Any, id_key: str) -> Any:
    if isinstance(record, dict):
        rid = record.get(id_key)
        if usable_id(rid):
            return ("id", rid)
    # No usable id: only the identical record counts as a repeat, so two different malformed
    # records are both kept (and quarantined), never merged into one.
    try:
        return ("record", orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    except TypeError:  # holds text or numbers orjson cannot write (see resources.jsonbody)
        return ("record", repr(record))


class _BoundaryDedup:
    def __init__(self, id_key: str) -> None:
        self.id_key = id_key
        self._previous: set[Any] = set()

    def filter(self, records: list[dict]) -> list[dict]:
        current: set[Any] = set()
        kept: list[dict] = []
        for record in records:
            key = _dedup_key(record, self.id_key)
            if key in self._previous or key in current:
                continue
            current.add(key)
            kept.append(record)
        self._previous = current
        return kept


def _describe(body: Any) -> str:
    if body is None:
        return "an empty body"
    if isinstance(body, dict):
        keys = list(body)[:6]
        return f"an object with keys {keys}" if keys else "an empty object {}"
    if isinstance(body, list):
        return f"a JSON array of {len(body)}"
    return f"a bare JSON {type(body).__name__}"


@dataclass(frozen=True)
class Envelope:
    """The documented shape of one page of a list endpoint; calling it on a parsed body returns
    None if the body has that shape, else what is wrong with it (for the error message).

    `data_key` None means the page is a bare JSON array (Cymbio). `members` are the other
    members the page must carry, each with a test of its value."""

    shape: str  # as the docs show it, for messages
    data_key: str | None = "data"
    members: tuple[tuple[str, str, Callable[[Any], bool]], ...] = ()  # (name, what it must be, test)

    def __call__(self, body: Any) -> str | None:
        problem = self._problem(body)
        return f"{problem} where the docs promise {self.shape}" if problem else None

    def _problem(self, body: Any) -> str | None:
        if self.data_key is None:
            return None if isinstance(body, list) else _describe(body)
        if not isinstance(body, dict):
            return _describe(body)
        if self.data_key not in body:
            return f"{_describe(body)}, no {self.data_key!r}"
        records = body[self.data_key]
        if records is None:
            return f"{self.data_key!r}: null"
        if not isinstance(records, list):
            return f"{self.data_key!r} holding a {type(records).__name__}, not a list"
        for name, must_be, test in self.members:
            if name not in body:
                return f"no {name!r}"
            if not test(body[name]):
                return f"{name!r} that is not {must_be}"
        return None


def _positive_int_value(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# Ticket Tailor (provider-docs/002, "Pagination"): {"data": [...], "links": {"next": str|null, ...}}.
TICKETTAILOR_PAGE = Envelope(
    '{"data": [...], "links": {"next": ..., "previous": ...}}',
    members=(("links", "an object with 'next' (a link or null)",
              lambda v: isinstance(v, dict) and "next" in v and (v["next"] is None or isinstance(v["next"], str))),))

# Sympla (provider-docs/004, "Pagination"): {"data": [...], "pagination": {"has_next": bool, ...}}.
SYMPLA_PAGE = Envelope(
    '{"data": [...], "pagination": {"has_next": ..., ...}}',
    members=(("pagination", "an object with a boolean 'has_next'",
              lambda v: isinstance(v, dict) and isinstance(v.get("has_next"), bool)),))

# Cymbal campaign analytics (DESIGN.md point 3): {"data": [...], "page": n, "per_page": n, "total": n}.
CYMBAL_PAGE = Envelope(
    '{"data": [...], "page": n, "per_page": n, "total": n}',
    members=(("page", "a positive integer", _positive_int_value),
             ("per_page", "a positive integer", _positive_int_value)))

# Cymbio lists (provider-docs/001, variants and returns): a bare JSON array.
CYMBIO_LIST = Envelope("a JSON array of records", data_key=None)


def _records(body: Any, data_key: str | None, provider: str, what: str) -> list[dict]:
    records = body.get(data_key) if (data_key and isinstance(body, dict)) else body
    if data_key and isinstance(body, dict) and data_key not in body:
        records = _MISSING
    if not isinstance(records, list):
        found = ("no body" if body is None else "no " + repr(data_key) if records is _MISSING
                 else f"{type(records).__name__ if records is not None else 'null'}")
        raise ProviderResponseError(
            f"{provider}: {what} replied with {found} where the docs promise a list"
            f"{f' under {data_key!r}' if data_key else ''}. Not read as \"no records\": nothing from it was "
            f"landed and the partitions already landed are kept; re-run once the API answers normally.",
            provider=provider, endpoint=what)
    return records


_MISSING = object()


def cursor_pages(source: PageSource, params: Mapping[str, Any], *, limit: int,
                 cursor_param: str = "starting_after", id_key: str = "id",
                 data_key: str = "data") -> Iterator[list[dict]]:
    """Id cursor (Ticket Tailor): `starting_after=<last id>`, stop when `links.next` is null.

    The next request is built from our own params plus the cursor rather than by following
    `links.next`, because the documented link carries only the cursor and would drop the filters
    (e.g. `created_at.gte`) and the page size.
    """
    dedup = _BoundaryDedup(id_key)
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({cursor_param: cursor} if cursor else {})}
        body = source.get(query)
        raw = _records(body, data_key, source.provider, source.what)
        page = dedup.filter(raw)
        if page:
            yield page
        links = body.get("links") if isinstance(body, dict) else None
        if not raw or not isinstance(links, dict) or not links.get("next"):
            return
        nxt = _next_cursor(raw, links.get("next"), cursor_param, id_key, cursor)
        if nxt is None:
            raise ProviderResponseError(
                f"{source.provider}: {source.what} pagination cannot advance past {cursor!r}: no record of the "
                f"page has a usable id and links.next names no new cursor. Stopping rather than looping or "
                f"skipping records; nothing from this run was landed for the day. Report the page to the provider.",
                provider=source.provider, endpoint=source.what)
        cursor = nxt


def _next_cursor(raw: list[Any], next_link: Any, cursor_param: str, id_key: str, cursor: Any) -> Any:
    """The cursor after this page, or None if there is no way forward that loses nothing.

    1. The last record's id, the documented rule ("use the last object id").
    2. If that id is unusable (a list, null, broken text), the cursor the API itself put in
       `links.next`: it knows the record's real id.
    3. Failing that, the last record of the page whose id is usable: the records after it are asked
       for again, and the boundary de-duplication drops the ones already seen, so nothing is lost.
    Never the current cursor again: that would ask for the same page forever.
    """
    last = raw[-1].get(id_key) if isinstance(raw[-1], dict) else None
    if usable_id(last) and last != cursor:
        return last
    if isinstance(next_link, str):
        linked = parse_qs(urlsplit(next_link).query).get(cursor_param)
        if linked and usable_id(linked[-1]) and linked[-1] != cursor:
            return linked[-1]
    for record in reversed(raw[:-1]):
        rid = record.get(id_key) if isinstance(record, dict) else None
        if usable_id(rid) and rid != cursor:
            return rid
    return None


def page_number_pages(source: PageSource, params: Mapping[str, Any], *, page_size: int,
                      size_param: str = "page_size", id_key: str = "id", data_key: str = "data",
                      has_next: Callable[[Any], bool] | None = None) -> Iterator[list[dict]]:
    """`page` + has-next flag (Sympla: `pagination.has_next`)."""
    has_next = has_next or (lambda body: bool((body.get("pagination") or {}).get("has_next")))
    dedup = _BoundaryDedup(id_key)
    page_no = 1
    while True:
        body = source.get({**params, size_param: page_size, "page": page_no})
        raw = _records(body, data_key, source.provider, source.what)
        page = dedup.filter(raw)
        if page:
            yield page
        # A full page of nothing new means the API ignores `page`: stop rather than loop forever.
        if not raw or not page or not has_next(body):
            return
        page_no += 1


def short_page_pages(source: PageSource, params: Mapping[str, Any], *, per_page: int,
                     size_param: str = "per_page", id_key: str = "id", data_key: str = "data",
                     echoed_size: Callable[[Any], Any] | None = None) -> Iterator[list[dict]]:
    """`page` + `per_page`, ending on the first page shorter than a full one (Cymbal).

    "Full" is the page size the API says it used (`per_page` in the reply) when it says one, so
    a server that silently caps our requested size cannot make us stop after its first page.
    A page's length is counted before de-duplication: the server filled it to its size whatever
    we had already seen.
    """
    echoed_size = echoed_size or (lambda body: body.get("per_page") if isinstance(body, dict) else None)
    dedup = _BoundaryDedup(id_key)
    page_no = 1
    while True:
        body = source.get({**params, size_param: per_page, "page": page_no})
        raw = _records(body, data_key, source.provider, source.what)
        page = dedup.filter(raw)
        if page:
            yield page
        full = _positive_int(echoed_size(body)) or per_page
        if len(raw) < full or not page:
            return
        page_no += 1


def offset_pages(source: PageSource, params: Mapping[str, Any], *, limit: int,
                 id_key: str = "id", data_key: str | None = None) -> Iterator[list[dict]]:
    """`limit` + `offset` (Cymbio): offset advances by `limit`; a page shorter than `limit` is the last."""
    dedup = _BoundaryDedup(id_key)
    offset = 0
    while True:
        body = source.get({**params, "limit": limit, "offset": offset})
        raw = _records(body, data_key, source.provider, source.what)
        page = dedup.filter(raw)
        if page:
            yield page
        if len(raw) < limit or not page:
            return
        offset += limit


def _positive_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
