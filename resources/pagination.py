"""Paginators for the four schemes the providers use. Each is a generator of pages.

They yield one page of records at a time, so memory stays flat whatever the size of the sync,
and they always ask for the largest page the API allows (fewest requests). `fetch(params)` does
the HTTP (with the core's retries) and returns the parsed body; the paginators only decide what
to ask next and when to stop, which keeps them testable without a server.

De-duplication: an API whose list shifts while we read it (a record inserted in front of the
cursor) shows the previous page's last record again at the top of the next page. Each paginator
drops records whose id it saw on the previous page (or earlier on the same page). Only two pages
of ids are kept, not every id ever seen, so a million-record sync does not grow a million-id set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from resources.errors import ProviderResponseError

Fetch = Callable[[dict[str, Any]], Any]


class _BoundaryDedup:
    def __init__(self, id_key: str) -> None:
        self.id_key = id_key
        self._previous: set[Any] = set()

    def filter(self, records: list[dict]) -> list[dict]:
        current: set[Any] = set()
        kept: list[dict] = []
        for record in records:
            rid = record.get(self.id_key) if isinstance(record, dict) else None
            if rid is not None:
                if rid in self._previous or rid in current:
                    continue
                current.add(rid)
            kept.append(record)
        self._previous = current
        return kept


def _records(body: Any, data_key: str | None, provider: str, what: str) -> list[dict]:
    records = body.get(data_key) if (data_key and isinstance(body, dict)) else body
    if records is None:
        return []
    if not isinstance(records, list):
        raise ProviderResponseError(
            f"{provider}: {what} replied with {type(records).__name__} where the docs promise a list"
            f"{f' under {data_key!r}' if data_key else ''}.", provider=provider, endpoint=what)
    return records


def cursor_pages(fetch: Fetch, params: Mapping[str, Any], *, limit: int, provider: str, what: str,
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
        body = fetch(query)
        raw = _records(body, data_key, provider, what)
        page = dedup.filter(raw)
        if page:
            yield page
        links = body.get("links") if isinstance(body, dict) else None
        if not raw or not isinstance(links, dict) or not links.get("next"):
            return
        last = raw[-1].get(id_key)
        if last is None or last == cursor:
            raise ProviderResponseError(
                f"{provider}: {what} pagination did not advance past {cursor!r}; stopping instead of looping.",
                provider=provider, endpoint=what)
        cursor = last


def page_number_pages(fetch: Fetch, params: Mapping[str, Any], *, page_size: int, provider: str, what: str,
                      size_param: str = "page_size", id_key: str = "id", data_key: str = "data",
                      has_next: Callable[[Any], bool] | None = None) -> Iterator[list[dict]]:
    """`page` + has-next flag (Sympla: `pagination.has_next`)."""
    has_next = has_next or (lambda body: bool((body.get("pagination") or {}).get("has_next")))
    dedup = _BoundaryDedup(id_key)
    page_no = 1
    while True:
        body = fetch({**params, size_param: page_size, "page": page_no})
        raw = _records(body, data_key, provider, what)
        page = dedup.filter(raw)
        if page:
            yield page
        # A full page of nothing new means the API ignores `page`: stop rather than loop forever.
        if not raw or not page or not has_next(body):
            return
        page_no += 1


def short_page_pages(fetch: Fetch, params: Mapping[str, Any], *, per_page: int, provider: str, what: str,
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
        body = fetch({**params, size_param: per_page, "page": page_no})
        raw = _records(body, data_key, provider, what)
        page = dedup.filter(raw)
        if page:
            yield page
        full = _positive_int(echoed_size(body)) or per_page
        if len(raw) < full or not page:
            return
        page_no += 1


def offset_pages(fetch: Fetch, params: Mapping[str, Any], *, limit: int, provider: str, what: str,
                 id_key: str = "id", data_key: str | None = None) -> Iterator[list[dict]]:
    """`limit` + `offset` (Cymbio): offset advances by `limit`; a page shorter than `limit` is the last."""
    dedup = _BoundaryDedup(id_key)
    offset = 0
    while True:
        body = fetch({**params, "limit": limit, "offset": offset})
        raw = _records(body, data_key, provider, what)
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
