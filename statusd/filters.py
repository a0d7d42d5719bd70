"""The filter of List and Watch requests, validated, as the store's :class:`MessageFilter`."""

from __future__ import annotations

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import model, status_fields
from statusd.errors import InvalidArgument
from statusd.storage.base import MessageFilter

MAX_FIELD_LENGTH = 1024
#: The status fields List and Watch requests filter on.
REQUEST_FIELDS = tuple(field.name for field in status_fields.FIELDS if field.in_requests)


def message_filter(
    request: status_pb.ListMessageStatusesRequest | status_pb.WatchMessageStatusesRequest,
) -> MessageFilter:
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
    )
