"""The gRPC servicers: proto in, store calls, proto out.

Handlers raise the expected errors of :mod:`statusd.errors`; the :func:`rpc` decorator turns
them into gRPC status codes through that module's one table.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from dlrhub_common.providers import PROVIDER_NAMES
from dlrhub_common.status_names import status_label
from statusd import errors, metrics, model, tracing
from statusd.committer import GroupCommitter
from statusd.fanout import client_identity
from statusd.reads import MAX_PAGE_SIZE, Reader, message_filter
from statusd.registrations import Registrar
from statusd.storage.base import Change
from statusd.watch import ChangeHub

log = logging.getLogger(__name__)

#: Every status a report may carry (all but UNSPECIFIED, and NO_REPORT, which statusd sets).
VALID_STATUSES = frozenset(pb.DeliveryStatus.values()) - {
    pb.DELIVERY_STATUS_UNSPECIFIED,
    pb.DELIVERY_STATUS_NO_REPORT,
}
MAX_ID_LENGTH = 1024
MAX_NAME_LENGTH = 64
#: The most keys one BatchGetMessageStatuses call may name.
MAX_BATCH_KEYS = 1000

Context = grpc.aio.ServicerContext[Any, Any]
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Handler = Callable[[Any, _Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[_Response]]


def rpc(method: str) -> Callable[[_Handler[_Request, _Response]], _Handler[_Request, _Response]]:
    """Maps a method's expected errors to status codes (its metrics are recorded by
    :class:`statusd.metrics.GrpcMetrics`)."""

    def decorate(handler: _Handler[_Request, _Response]) -> _Handler[_Request, _Response]:
        @functools.wraps(handler)
        async def wrapper(
            self: Any, request: _Request, context: grpc.aio.ServicerContext[Any, Any]
        ) -> _Response:
            try:
                return await handler(self, request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                mapped = errors.grpc_code(exc)
                if mapped is None:
                    log.exception("%s failed", method)
                    code, detail = grpc.StatusCode.INTERNAL, "internal error"
                else:
                    code, detail = mapped, str(exc)
                await context.abort(code, detail)
                raise  # unreachable: abort raises

        return wrapper

    return decorate


def checked_provider(provider: str, where: str) -> None:
    """Refuses a provider the gateway does not serve: its name would become a metric label."""
    if provider not in PROVIDER_NAMES:
        raise errors.InvalidArgument(
            f"{where}.provider: unknown provider {provider[:MAX_NAME_LENGTH]!r}; "
            f"known: {', '.join(sorted(PROVIDER_NAMES))}"
        )


def checked_report(report: pb.DeliveryReport, index: int, now_micros: int) -> pb.DeliveryReport:
    """Validates one incoming report; returns it with its dedupe key and received time set
    (the request is ours to change: they are set in place, without copying)."""
    where = f"reports[{index}]"
    checked_provider(report.provider, where)
    if len(report.account) > MAX_NAME_LENGTH:
        raise errors.InvalidArgument(f"{where}.account: at most {MAX_NAME_LENGTH} characters")
    if not report.message_id or len(report.message_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument(f"{where}.message_id: 1 to {MAX_ID_LENGTH} characters")
    if len(report.event_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument(f"{where}.event_id: at most {MAX_ID_LENGTH} characters")
    if report.status not in VALID_STATUSES:
        raise errors.InvalidArgument(
            f"{where}.status: must be a DeliveryStatus other than UNSPECIFIED and NO_REPORT"
        )
    if report.HasField("registration"):
        raise errors.InvalidArgument(f"{where}.registration: set only by RegisterMessages")
    if report.sequence < 0:
        raise errors.InvalidArgument(f"{where}.sequence: must not be negative")
    if not report.HasField("received_time"):
        report.received_time.FromMicroseconds(now_micros)
    return model.fill_event_id(report)


def checked_key(provider: str, message_id: str, account: str, where: str = "") -> pb.MessageKey:
    """Validates the parts of a message key; ``where`` prefixes field names in errors."""
    if not provider:
        raise errors.InvalidArgument(f"{where}provider: required")
    if not message_id:
        raise errors.InvalidArgument(f"{where}message_id: required")
    if len(message_id) > MAX_ID_LENGTH or len(provider) > MAX_NAME_LENGTH:
        raise errors.InvalidArgument(f"{where}message_id or provider: too long")
    if len(account) > MAX_NAME_LENGTH:
        raise errors.InvalidArgument(f"{where}account: at most {MAX_NAME_LENGTH} characters")
    return pb.MessageKey(provider=provider, account=account, message_id=message_id)


class IngestService(ingest_grpc.IngestServiceServicer):
    """IngestReports: validate, group-commit, answer counts after the commit."""

    def __init__(self, committer: GroupCommitter, reader: Reader) -> None:
        self.committer = committer
        self.reader = reader

    @rpc("IngestReports")
    async def IngestReports(
        self, request: ingest_pb.IngestReportsRequest, context: Context
    ) -> ingest_pb.IngestReportsResponse:
        with self.committer.call():  # Watch writes wait while ingest calls run
            now = time.time_ns() // 1_000
            reports = [checked_report(report, i, now) for i, report in enumerate(request.reports)]
            quarantined = list(request.quarantined_items)
            for index, item in enumerate(quarantined):
                checked_provider(item.provider, f"quarantined_items[{index}]")
                if not item.HasField("received_time"):
                    item.received_time.FromMicroseconds(now)
            outcomes = await self.committer.submit(reports, quarantined)
        metrics.count_final_reports(reports, outcomes)
        counts = Counter(outcomes)
        response = ingest_pb.IngestReportsResponse(
            stored=counts[ingest_pb.INGEST_OUTCOME_STORED],
            duplicates=counts[ingest_pb.INGEST_OUTCOME_DUPLICATE],
            stale=counts[ingest_pb.INGEST_OUTCOME_STALE],
            quarantined=len(quarantined),
            outcomes=outcomes,
        )
        # One metric update per distinct label set, not one per report.
        labelled = Counter(
            (report.provider, report.status, outcome)
            for report, outcome in zip(reports, outcomes, strict=True)
        )
        for (provider, status, outcome), count in labelled.items():
            metrics.REPORTS.labels(
                provider, status_label(status), metrics.outcome_label(outcome)
            ).inc(count)
        for provider, count in Counter(item.provider for item in quarantined).items():
            metrics.QUARANTINED.labels(provider).inc(count)
        return response

    @rpc("ListQuarantinedItems")
    async def ListQuarantinedItems(
        self, request: ingest_pb.ListQuarantinedItemsRequest, context: Context
    ) -> ingest_pb.ListQuarantinedItemsResponse:
        items, next_token = await self.reader.quarantined_page(
            token=request.page_token, size=request.page_size
        )
        return ingest_pb.ListQuarantinedItemsResponse(
            quarantined_items=items, next_page_token=next_token
        )

    @rpc("DeleteQuarantinedItems")
    async def DeleteQuarantinedItems(
        self, request: ingest_pb.DeleteQuarantinedItemsRequest, context: Context
    ) -> ingest_pb.DeleteQuarantinedItemsResponse:
        if len(request.ids) > MAX_PAGE_SIZE:
            raise errors.InvalidArgument(f"ids: at most {MAX_PAGE_SIZE} per call")
        deleted = await self.committer.release(list(request.ids))
        return ingest_pb.DeleteQuarantinedItemsResponse(deleted=deleted)


class StatusService(status_grpc.StatusServiceServicer):
    """Reads for internal services."""

    def __init__(
        self, reader: Reader, hub: ChangeHub, registrar: Registrar, *, heartbeat_seconds: float
    ) -> None:
        self.reader = reader
        self.hub = hub
        self.registrar = registrar
        self.heartbeat_seconds = heartbeat_seconds

    @rpc("RegisterMessages")
    async def RegisterMessages(
        self, request: status_pb.RegisterMessagesRequest, context: Context
    ) -> status_pb.RegisterMessagesResponse:
        return await self.registrar.register(request, time.time_ns() // 1_000)

    @rpc("GetDeliveryStats")
    async def GetDeliveryStats(
        self, request: status_pb.GetDeliveryStatsRequest, context: Context
    ) -> status_pb.GetDeliveryStatsResponse:
        return await self.reader.delivery_stats(request)

    @rpc("GetMessageStatus")
    async def GetMessageStatus(
        self, request: status_pb.GetMessageStatusRequest, context: Context
    ) -> status_pb.GetMessageStatusResponse:
        key = checked_key(request.provider, request.message_id, request.account)
        full = request.view == pb.MESSAGE_STATUS_VIEW_FULL
        found = await self.reader.get(key, full=full)
        if found is None:
            raise errors.NotFound(
                f"no reports for message {request.message_id!r} of provider {request.provider!r}"
                + (f" account {request.account!r}" if request.account else "")
            )
        return status_pb.GetMessageStatusResponse(message_status=found)

    @rpc("BatchGetMessageStatuses")
    async def BatchGetMessageStatuses(
        self, request: status_pb.BatchGetMessageStatusesRequest, context: Context
    ) -> status_pb.BatchGetMessageStatusesResponse:
        if len(request.keys) > MAX_BATCH_KEYS:
            raise errors.InvalidArgument(
                f"keys: at most {MAX_BATCH_KEYS} keys per call (got {len(request.keys)})"
            )
        keys = [
            checked_key(key.provider, key.message_id, key.account, f"keys[{index}].")
            for index, key in enumerate(request.keys)
        ]
        found = await self.reader.batch_get(keys, full=request.view == pb.MESSAGE_STATUS_VIEW_FULL)
        return status_pb.BatchGetMessageStatusesResponse(message_statuses=found)

    @rpc("ListMessageStatuses")
    async def ListMessageStatuses(
        self, request: status_pb.ListMessageStatusesRequest, context: Context
    ) -> status_pb.ListMessageStatusesResponse:
        items, next_token = await self.reader.page(
            message_filter(request),
            token=request.page_token,
            size=request.page_size,
            full=request.view == pb.MESSAGE_STATUS_VIEW_FULL,
        )
        return status_pb.ListMessageStatusesResponse(
            message_statuses=items, next_page_token=next_token
        )

    # A coroutine that writes (context.write) rather than an async generator: a client that
    # leaves cancels it at the awaited write, so the subscription is always cleaned up.
    @rpc("WatchMessageStatuses")
    async def WatchMessageStatuses(  # type: ignore[override]
        self,
        request: status_pb.WatchMessageStatusesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        query = message_filter(request)
        token = request.resume_token
        after = self.reader.resume_position(token) if token else None
        if token and not after:  # "from the first change" would replay the whole log
            raise errors.InvalidArgument(
                "resume_token: names no position; start a stream without one"
            )

        async def send(change: Change | None, position: str | None) -> None:
            response = status_pb.WatchMessageStatusesResponse(
                resume_token=self.reader.resume_token(position)
            )
            if change is not None:
                response.message_status.CopyFrom(change.message_status)
                response.report.CopyFrom(change.report)
            with tracing.delivery(change):
                await context.write(response)

        # Headers go out first, on their own: a stream that ends while its first write is
        # still in flight then only has its status left to send.
        await context.send_initial_metadata(())
        await self.hub.watch(
            query,
            send,
            heartbeat=self.heartbeat_seconds,
            after=after,
            client=client_identity(tuple(context.invocation_metadata() or ()), context.peer()),
        )
