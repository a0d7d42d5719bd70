"""The read side of statusd: filters, paging, page and resume tokens, multipart reads.

:class:`Reader` is everything the servicers read through; the store behind it stays private.

**Filters.** :func:`message_filter` validates a List or Watch request's filter into the
store's :class:`~statusd.storage.base.MessageFilter`.

**Paging (AIP-158).** The store pages in first-seen order, which never changes, and hands back
an opaque cursor (where the next page starts). A page token wraps that cursor with a
:func:`fingerprint` of the filter in a signed token (:mod:`statusd.cursors`), so a token
altered, or used with another filter, is INVALID_ARGUMENT instead of a silently wrong listing.
Because the order is immutable and new messages sort after every existing one, paging while
reports keep arriving never skips or repeats a message. Quarantined items page the same way,
by id.

**Multipart reads.** A Get of a parent id with no report of its own reads the parent's parts
(every page of them, up to :data:`MAX_PARTS`) and answers the status
:func:`statusd.multipart.parent_status` computes from them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import model, multipart, stats
from statusd.cursors import CursorCodec
from statusd.errors import InvalidArgument
from statusd.status_fields import FIELDS
from statusd.storage.base import MessageFilter, Store

#: Page size when the request says 0.
DEFAULT_PAGE_SIZE = 100
#: Larger requests are clamped to this.
MAX_PAGE_SIZE = 1000
MAX_FIELD_LENGTH = 1024
#: Most parts read for one parent (an SMS has at most 255 parts).
MAX_PARTS = 256
PARTS_PAGE = 128
PAGE_KIND = "page"
RESUME_KIND = "resume"
QUARANTINE_KIND = "quarantine"
#: The status fields List and Watch requests filter on.
REQUEST_FIELDS = tuple(field.name for field in FIELDS if field.in_requests)

FilterRequest = status_pb.ListMessageStatusesRequest | status_pb.WatchMessageStatusesRequest


def message_filter(request: FilterRequest) -> MessageFilter:
    """The request's filter fields; raises :class:`InvalidArgument` naming a bad field.

    An empty ``account`` selects every account (the proto cannot say "the default account
    only"); an empty ``statuses`` selects every status.
    """
    for name in ("provider", "account", *REQUEST_FIELDS):
        if len(getattr(request, name)) > MAX_FIELD_LENGTH:
            raise InvalidArgument(f"{name}: at most {MAX_FIELD_LENGTH} characters")
    statuses = set()
    for index, status in enumerate(request.statuses):
        if status not in pb.DeliveryStatus.values() or status == pb.DELIVERY_STATUS_UNSPECIFIED:
            raise InvalidArgument(
                f"statuses[{index}]: must be a DeliveryStatus other than UNSPECIFIED"
            )
        statuses.add(int(status))
    start = end = None
    if isinstance(request, status_pb.ListMessageStatusesRequest):
        if request.HasField("update_time_start"):
            start = model.micros(request.update_time_start)
        if request.HasField("update_time_end"):
            end = model.micros(request.update_time_end)
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("update_time_end: must be after update_time_start")
    return MessageFilter(
        provider=request.provider,
        account=request.account or None,
        statuses=frozenset(statuses),
        fields={name: getattr(request, name) for name in REQUEST_FIELDS},
        update_time_start=start,
        update_time_end=end,
        awaiting_report=isinstance(request, status_pb.ListMessageStatusesRequest)
        and request.awaiting_report,
    )


def page_size(requested: int) -> int:
    """0 → the default; above the maximum → the maximum; negative → InvalidArgument."""
    if requested < 0:
        raise InvalidArgument("page_size: must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def fingerprint(query: MessageFilter) -> str:
    """A short digest of every field of the filter (equal filters, equal digests).

    The order: provider, account, statuses, the request's status fields, the time range, the
    internal status fields (each group in table order), then ``awaiting_report`` when set."""
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
        # Only when set: tokens issued before the filter existed stay valid.
        *(["awaiting_report"] if query.awaiting_report else []),
    ]
    canonical = json.dumps(fields, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


class Reader:
    """Reads the store for the servicers (see the module docstring)."""

    def __init__(
        self, store: Store, codec: CursorCodec, multipart_policy: multipart.Policy = "worst"
    ) -> None:
        self._store = store
        self.codec = codec
        self.multipart_policy = multipart_policy

    async def delivery_stats(
        self, request: status_pb.GetDeliveryStatsRequest
    ) -> status_pb.GetDeliveryStatsResponse:
        """GetDeliveryStats: the store aggregates, :mod:`statusd.stats` makes the answer."""
        query = stats.stats_query(request)
        return stats.stats_response(query, await self._store.delivery_stats(query))

    async def get(self, key: pb.MessageKey, *, full: bool) -> pb.MessageStatus | None:
        """A message's status; for a multipart message's parent id, its parts' aggregate."""
        found = await self._store.get(key, full=full)
        if found is None:
            found = await self.read_parent(key, full=full)
        return found

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool
    ) -> list[pb.MessageStatus]:
        return await self._store.batch_get(keys, full=full)

    async def read_parent(self, key: pb.MessageKey, *, full: bool) -> pb.MessageStatus | None:
        """The aggregated status of ``key`` as a parent id, or None when it has no parts."""
        query = MessageFilter(
            provider=key.provider,
            account=key.account,
            fields={"parent_message_id": key.message_id},
        )
        parts: list[pb.MessageStatus] = []
        after: str | None = None
        while len(parts) < MAX_PARTS:
            page = await self._store.list_messages(query, after=after, limit=PARTS_PAGE, full=full)
            parts.extend(page.items)
            if page.cursor is None:
                break
            after = page.cursor
        if not parts:
            return None
        return multipart.parent_status(
            key.message_id, parts[:MAX_PARTS], self.multipart_policy, full=full
        )

    async def page(
        self, query: MessageFilter, *, token: str, size: int, full: bool
    ) -> tuple[list[pb.MessageStatus], str]:
        """One page of a listing and the next page's token ("" after the last page)."""
        limit = page_size(size)
        after = self._page_cursor(query, token)
        found = await self._store.list_messages(query, after=after, limit=limit, full=full)
        if found.cursor is None:
            return found.items, ""
        payload = {"c": found.cursor, "f": fingerprint(query)}
        return found.items, self.codec.encode(PAGE_KIND, payload)

    def _page_cursor(self, query: MessageFilter, token: str) -> str | None:
        """The store cursor a page token carries (None for the first page)."""
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

    async def quarantined_page(
        self, *, token: str, size: int
    ) -> tuple[list[pb.QuarantinedItem], str]:
        """One page of quarantined items, oldest first, and the next page's token."""
        limit = page_size(size)
        after = None
        if token:
            cursor = self.codec.decode(QUARANTINE_KIND, token, "page_token")
            after = cursor.get("after")
            if not isinstance(after, str):
                raise InvalidArgument("page_token: not a valid token")
        items = await self._store.quarantined(after=after, limit=limit + 1)
        if len(items) <= limit:
            return items, ""
        return items[:limit], self.codec.encode(QUARANTINE_KIND, {"after": items[limit - 1].id})

    def resume_position(self, token: str) -> str | None:
        """The change position a Watch resume token carries (None: from the first change)."""
        payload = self.codec.decode(RESUME_KIND, token, "resume_token")
        position = payload.get("p")
        if position is not None and not isinstance(position, str):
            raise InvalidArgument("resume_token: not a valid token")
        return position

    def resume_token(self, position: str | None) -> str:
        return self.codec.encode(RESUME_KIND, {"p": position})
