"""``DlrhubClient``: StatusService over one asyncio channel, with retries and resumable Watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc

from dlrhub.client.connection import TLSConfig, bearer_metadata, open_channel
from dlrhub.client.retry import RESUMABLE, RETRYABLE, Backoff
from dlrhub.client.status_names import status_from_label
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc

#: The most keys one BatchGetMessageStatuses call takes; batch_get splits larger requests.
BATCH_LIMIT = 1000
#: The most registrations one RegisterMessages call takes; register_messages splits more.
REGISTER_LIMIT = 1000

_T = TypeVar("_T")
Status = int | str
Key = pb.MessageKey | tuple[str, str, str]


class DlrhubError(Exception):
    """A call failed with a gRPC status other than OK (after any retries)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> DlrhubError:
        return cls(error.code(), error.details() or "")


def _statuses(values: Iterable[Status]) -> list[pb.DeliveryStatus.ValueType]:
    """Enum values or names (``delivered``, ``DELIVERY_STATUS_DELIVERED``) as enum values."""
    found = []
    for value in values:
        if isinstance(value, str):
            try:
                found.append(status_from_label(value))
            except KeyError:
                raise ValueError(f"unknown status {value!r}") from None
        else:
            found.append(pb.DeliveryStatus.ValueType(value))
    return found


def _key(key: Key) -> pb.MessageKey:
    if isinstance(key, pb.MessageKey):
        return key
    provider, account, message_id = key
    return pb.MessageKey(provider=provider, account=account, message_id=message_id)


def registration(
    provider: str,
    message_id: str,
    *,
    account: str = "",
    client_ref: str = "",
    recipient: str = "",
    submit_time: datetime | None = None,
    report_timeout: timedelta | None = None,
) -> pb.MessageRegistration:
    """A ``MessageRegistration``: ``submit_time`` None is when statusd stores it,
    ``report_timeout`` None is statusd's default for the provider. A naive ``submit_time``
    is taken as UTC."""
    made = pb.MessageRegistration(
        provider=provider,
        account=account,
        message_id=message_id,
        client_ref=client_ref,
        recipient=recipient,
    )
    if submit_time is not None:
        made.submit_time.FromDatetime(submit_time)
    if report_timeout is not None:
        made.report_timeout.FromTimedelta(report_timeout)
    return made


def _view(full: bool) -> pb.MessageStatusView.ValueType:
    return pb.MESSAGE_STATUS_VIEW_FULL if full else pb.MESSAGE_STATUS_VIEW_BASIC


#: Statistics dimensions by name: ``provider``, ``account``, ``country``, ``status``,
#: ``error_code`` (or the ``StatsDimension`` values themselves).
DIMENSIONS: dict[str, status_pb.StatsDimension.ValueType] = {
    name.removeprefix("STATS_DIMENSION_").lower(): value
    for name, value in status_pb.StatsDimension.items()
    if value != status_pb.STATS_DIMENSION_UNSPECIFIED
}
#: Statistics time bases by name: ``submit``, ``first-seen`` (or ``StatsTimeBasis`` values).
BASES: dict[str, status_pb.StatsTimeBasis.ValueType] = {
    "submit": status_pb.STATS_TIME_BASIS_SUBMIT_TIME,
    "first-seen": status_pb.STATS_TIME_BASIS_FIRST_SEEN_TIME,
}
Dimension = str | int
Basis = str | int


def _dimension(value: Dimension) -> status_pb.StatsDimension.ValueType:
    if isinstance(value, int):
        return value  # type: ignore[return-value]
    try:
        return DIMENSIONS[value.lower().replace("-", "_")]
    except KeyError:
        raise ValueError(f"not a dimension: {value!r}; one of {', '.join(DIMENSIONS)}") from None


def _basis(value: Basis) -> status_pb.StatsTimeBasis.ValueType:
    if isinstance(value, int):
        return value  # type: ignore[return-value]
    try:
        return BASES[value.lower().replace("_", "-")]
    except KeyError:
        raise ValueError(f"not a time basis: {value!r}; one of {', '.join(BASES)}") from None


class DlrhubClient:
    """Reads message statuses from statusd, and registers sent messages.

    ``target`` is ``host:port``; ``token`` is sent as ``authorization: Bearer <token>``;
    ``tls`` turns on TLS (with a client certificate for mTLS). Unary calls get ``timeout``
    seconds each and are retried on UNAVAILABLE as ``backoff`` says; :meth:`watch`
    reconnects and resumes on its own.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: TLSConfig | None = None,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.metadata = bearer_metadata(token)
        self.channel = open_channel(target, tls=tls, options=channel_options)
        self.stub = status_grpc.StatusServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> DlrhubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, call: Callable[[], Awaitable[_T]]) -> _T:
        delays = self.backoff.delays()
        attempt = 1
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or attempt >= self.backoff.attempts:
                    raise DlrhubError.of(exc) from None
            attempt += 1
            await asyncio.sleep(next(delays))

    async def get(
        self, provider: str, message_id: str, *, account: str = "", full: bool = False
    ) -> pb.MessageStatus | None:
        """One message's status (with its history when ``full``), or None when unknown."""
        request = status_pb.GetMessageStatusRequest(
            provider=provider, message_id=message_id, account=account, view=_view(full)
        )
        try:
            response = await self._unary(
                lambda: self.stub.GetMessageStatus(
                    request, timeout=self.timeout, metadata=self.metadata
                )
            )
        except DlrhubError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.message_status

    async def batch_get(self, keys: Iterable[Key], *, full: bool = False) -> list[pb.MessageStatus]:
        """The known messages among ``keys`` (``MessageKey`` or ``(provider, account,
        message_id)``), in order; any number of keys (split into calls of 1000)."""
        wanted = [_key(key) for key in keys]
        found: list[pb.MessageStatus] = []
        for start in range(0, len(wanted), BATCH_LIMIT):
            request = status_pb.BatchGetMessageStatusesRequest(
                keys=wanted[start : start + BATCH_LIMIT], view=_view(full)
            )
            response = await self._unary(
                lambda request=request: self.stub.BatchGetMessageStatuses(  # type: ignore[misc]
                    request, timeout=self.timeout, metadata=self.metadata
                )
            )
            found.extend(response.message_statuses)
        return found

    async def register_messages(
        self, registrations: Iterable[pb.MessageRegistration]
    ) -> status_pb.RegisterMessagesResponse:
        """Registers messages the caller has sent (see :func:`registration`), in calls of
        1000; answers once every call was durably committed, with one outcome per
        registration, in order. A call that fails with UNAVAILABLE is retried: registering
        is idempotent, so a registration a lost answer had already stored comes back
        DUPLICATE."""
        given = list(registrations)
        merged = status_pb.RegisterMessagesResponse()
        for start in range(0, len(given), REGISTER_LIMIT):
            request = status_pb.RegisterMessagesRequest(
                registrations=given[start : start + REGISTER_LIMIT]
            )
            response = await self._unary(
                lambda request=request: self.stub.RegisterMessages(  # type: ignore[misc]
                    request, timeout=self.timeout, metadata=self.metadata
                )
            )
            merged.registered += response.registered
            merged.duplicates += response.duplicates
            merged.outcomes.extend(response.outcomes)
        return merged

    async def list(
        self,
        *,
        provider: str = "",
        account: str = "",
        statuses: Iterable[Status] = (),
        recipient: str = "",
        client_ref: str = "",
        update_time_start: datetime | None = None,
        update_time_end: datetime | None = None,
        awaiting_report: bool = False,
        page_size: int = 0,
        full: bool = False,
    ) -> AsyncIterator[pb.MessageStatus]:
        """Every message passing the filter, in first-seen order, page after page;
        ``awaiting_report``: only registered messages still waiting for a final report."""
        request = status_pb.ListMessageStatusesRequest(
            provider=provider,
            account=account,
            statuses=_statuses(statuses),
            recipient=recipient,
            client_ref=client_ref,
            awaiting_report=awaiting_report,
            page_size=page_size,
            view=_view(full),
        )
        if update_time_start is not None:
            request.update_time_start.FromDatetime(update_time_start)
        if update_time_end is not None:
            request.update_time_end.FromDatetime(update_time_end)
        while True:
            response = await self._unary(
                lambda: self.stub.ListMessageStatuses(
                    request, timeout=self.timeout, metadata=self.metadata
                )
            )
            for status in response.message_statuses:
                yield status
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    async def delivery_stats(
        self,
        start: datetime,
        end: datetime,
        *,
        group_by: Iterable[Dimension] = (),
        basis: Basis = "submit",
        provider: str = "",
        account: str = "",
    ) -> status_pb.GetDeliveryStatsResponse:
        """Delivery statistics of the messages whose submit time (``basis="first-seen"``: first
        seen time) is in ``[start, end)``: counts, delivery and NO_REPORT rates and receipt
        latency percentiles, per group of ``group_by`` (``provider``, ``account``,
        ``country``, ``status``, ``error_code``) and in total."""
        request = status_pb.GetDeliveryStatsRequest(
            time_basis=_basis(basis),
            group_by=[_dimension(value) for value in group_by],
            provider=provider,
            account=account,
        )
        request.start_time.FromDatetime(start)
        request.end_time.FromDatetime(end)
        return await self._unary(
            lambda: self.stub.GetDeliveryStats(
                request, timeout=self.timeout, metadata=self.metadata
            )
        )

    def watch(
        self,
        *,
        provider: str = "",
        account: str = "",
        statuses: Iterable[Status] = (),
        recipient: str = "",
        client_ref: str = "",
        resume_token: str = "",
        heartbeats: bool = False,
        max_reconnects: int | None = None,
    ) -> Watch:
        """Follows changes that pass the filter (see :class:`Watch`)."""
        request = status_pb.WatchMessageStatusesRequest(
            provider=provider,
            account=account,
            statuses=_statuses(statuses),
            recipient=recipient,
            client_ref=client_ref,
            resume_token=resume_token,
        )
        return Watch(self, request, heartbeats=heartbeats, max_reconnects=max_reconnects)


class Watch:
    """An endless async iterator of changes that survives disconnects.

    It yields ``WatchMessageStatusesResponse`` changes (and heartbeats when asked). When the
    stream ends with UNAVAILABLE (statusd restarting) or RESOURCE_EXHAUSTED (this consumer
    fell behind), it waits with backoff and resumes from the last token it received, so the
    consumer sees every change once, in order. ``resume_token`` is the token to continue
    from later, in another process: save it after handling a change. ``max_reconnects``
    bounds consecutive failed reconnects (None: no bound); other errors raise
    :class:`DlrhubError`.
    """

    def __init__(
        self,
        client: DlrhubClient,
        request: status_pb.WatchMessageStatusesRequest,
        *,
        heartbeats: bool,
        max_reconnects: int | None,
    ) -> None:
        self.client = client
        self.request = request
        self.heartbeats = heartbeats
        self.max_reconnects = max_reconnects
        self.resume_token = request.resume_token
        self.reconnects = 0  # streams that ended and were resumed, for logs and tests

    def __aiter__(self) -> AsyncIterator[status_pb.WatchMessageStatusesResponse]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[status_pb.WatchMessageStatusesResponse]:
        delays = self.client.backoff.delays()
        failures = 0
        while True:
            self.request.resume_token = self.resume_token
            call = self.client.stub.WatchMessageStatuses(
                self.request, metadata=self.client.metadata
            )
            try:
                async for response in call:
                    failures = 0
                    delays = self.client.backoff.delays()
                    self.resume_token = response.resume_token
                    if self.heartbeats or response.HasField("message_status"):
                        yield response
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RESUMABLE:
                    raise DlrhubError.of(exc) from None
                failures += 1
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise DlrhubError.of(exc) from None
            finally:
                call.cancel()
            self.reconnects += 1
            await asyncio.sleep(next(delays))
