"""ListMessageStatuses paging (AIP-158): page sizes and opaque page tokens.

The store pages in first-seen order, which never changes, and hands back an opaque cursor
(where the next page starts). A page token wraps that cursor with a fingerprint of the filter
in a signed token (:mod:`statusd.tokens`), so a token altered, or used with another filter,
is INVALID_ARGUMENT instead of a silently wrong listing. Because the order is immutable and
new messages sort after every existing one, paging while reports keep arriving never skips
or repeats a message.
"""

from __future__ import annotations

import hashlib
import json

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.errors import InvalidArgument
from statusd.status_fields import FIELDS
from statusd.storage.base import MessageFilter, Store
from statusd.tokens import TokenCodec

#: Page size when the request says 0.
DEFAULT_PAGE_SIZE = 100
#: Larger requests are clamped to this.
MAX_PAGE_SIZE = 1000
PAGE_KIND = "page"


def page_size(requested: int) -> int:
    """0 → the default; above the maximum → the maximum; negative → InvalidArgument."""
    if requested < 0:
        raise InvalidArgument("page_size: must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def fingerprint(query: MessageFilter) -> str:
    """A short digest of every field of the filter (equal filters, equal digests).

    The order: provider, account, statuses, the request's status fields, the time range, the
    internal status fields (each group in table order)."""
    requested = [query.value(field.name) for field in FIELDS if field.in_requests]
    internal = [query.value(field.name) for field in FIELDS if not field.in_requests]
    fields = [
        query.provider,
        query.account,
        sorted(query.statuses),
        *requested,
        query.update_time_start,
        query.update_time_end,
        *internal,
    ]
    canonical = json.dumps(fields, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


class Paginator:
    """Reads one page of a listing and makes the token of the next."""

    def __init__(self, store: Store, codec: TokenCodec) -> None:
        self.store = store
        self.codec = codec

    def encode(self, query: MessageFilter, cursor: str) -> str:
        return self.codec.encode(PAGE_KIND, {"c": cursor, "f": fingerprint(query)})

    def decode(self, query: MessageFilter, token: str) -> str | None:
        """The store cursor a token carries (None for the first page)."""
        if not token:
            return None
        payload = self.codec.decode(PAGE_KIND, token, "page_token")
        cursor = payload.get("c")
        if not isinstance(cursor, str):
            raise InvalidArgument("page_token: not a valid token")
        if payload.get("f") != fingerprint(query):
            raise InvalidArgument(
                "page_token: was issued for a different filter; repeat the filter fields of "
                "the first request, or start again without a page_token"
            )
        return cursor

    async def page(
        self, query: MessageFilter, *, token: str, size: int, full: bool
    ) -> tuple[list[pb.MessageStatus], str]:
        """One page and the next page's token ("" after the last page)."""
        limit = page_size(size)
        after = self.decode(query, token)
        found = await self.store.list_messages(query, after=after, limit=limit, full=full)
        return found.items, "" if found.cursor is None else self.encode(query, found.cursor)
