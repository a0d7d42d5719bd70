"""Traces through the real gateway and statusd on loopback: one webhook makes one trace, from
the gateway's request span through the IngestReports call (its ``traceparent`` in the gRPC
metadata) to statusd's call span, the store commit and the Watch delivery; concurrent
webhooks that share a call are linked to it; no span carries a phone number or a message id;
and with traces off the hooks are the bare handler and metadata."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dlrhub.client import DlrhubClient
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common import tracing as common_tracing
from gateway import routes, tracing
from gateway.coalescer import Coalescer
from gateway.errors import Malformed
from gateway.forwarder import Forwarder
from statusd.server import Statusd
from statusd.tracing import WATCH_SEND
from tests.gateway.conftest import StackFactory
from tests.gateway.test_intake import BASIC, infobip_body
from tests.helpers.reports import report
from tests.helpers.spans import finished, named, one, recorded_spans

JSON = {**BASIC, "Content-Type": "application/json"}
WEBHOOK = "POST /webhooks/{provider}"
PHONE = "41793026727"  # the "to" of infobip_body's reports


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


async def next_change(
    changes: AsyncIterator[status_pb.WatchMessageStatusesResponse],
) -> status_pb.WatchMessageStatusesResponse:
    while not (response := await asyncio.wait_for(anext(changes), 10)).HasField("message_status"):
        pass  # a heartbeat
    return response


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


async def test_one_webhook_is_one_trace_down_to_the_watch_delivery(
    spans: InMemorySpanExporter, make_stack: StackFactory
) -> None:
    async with make_stack() as stack, DlrhubClient(f"127.0.0.1:{stack.statusd.port}") as client:
        changes = aiter(client.watch(provider="infobip", heartbeats=True))
        await asyncio.wait_for(anext(changes), 10)  # the stream's first heartbeat: it is live
        answer = await stack.http.post(
            "/webhooks/infobip", content=infobip_body("t-1"), headers=JSON
        )
        assert answer.status_code == 200
        assert (await next_change(changes)).message_status.message_id == "t-1"
        (send,) = await finished(spans, WATCH_SEND)

    webhook = one(spans, WEBHOOK, SpanKind.SERVER)
    call = one(spans, tracing.INGEST_CALL, SpanKind.CLIENT)
    served = one(spans, tracing.INGEST_CALL, SpanKind.SERVER)
    commit = one(spans, "store.commit")
    assert webhook.parent is None  # the request carried no traceparent
    assert webhook.context is not None
    trace_id = webhook.context.trace_id
    tree = [webhook, call, served, commit, send]
    assert {span.context.trace_id for span in tree if span.context} == {trace_id}
    assert parent_id(call) == webhook.context.span_id
    assert served.parent is not None
    assert served.parent.is_remote  # it came in the call's gRPC metadata
    assert call.context is not None
    assert parent_id(served) == call.context.span_id
    assert served.context is not None
    assert parent_id(commit) == served.context.span_id
    assert parent_id(send) == served.context.span_id
    assert send.kind == SpanKind.PRODUCER

    assert dict(webhook.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/webhooks/{provider}",
        "http.response.status_code": 200,
        "dlrhub.provider": "infobip",
        "dlrhub.account": "",
        "dlrhub.request_id": answer.json()["request_id"],
        "dlrhub.reports": 1,
        "dlrhub.quarantined": 0,
    }
    assert (served.attributes or {})["rpc.grpc.status_code"] == 0
    assert (commit.attributes or {})["dlrhub.store"] == "sqlite"
    assert (commit.attributes or {})["dlrhub.reports"] == 1
    assert dict(send.attributes or {}) == {
        "dlrhub.provider": "infobip",
        "dlrhub.status": "delivered",
    }


async def test_a_refused_webhook_has_its_status_and_no_call(
    spans: InMemorySpanExporter, make_stack: StackFactory
) -> None:
    async with make_stack() as stack:
        refused = await stack.http.post("/webhooks/infobip", content=infobip_body("t-2"))
        assert refused.status_code == 401
    webhook = one(spans, WEBHOOK)
    assert (webhook.attributes or {})["http.response.status_code"] == 401
    assert webhook.status.status_code == StatusCode.UNSET  # a client's error, not ours
    assert not named(spans, tracing.INGEST_CALL)


async def test_a_traceparent_the_request_carries_is_the_parent(
    spans: InMemorySpanExporter, make_stack: StackFactory
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with make_stack() as stack:
        headers = {**JSON, "traceparent": traceparent}
        answer = await stack.http.post(
            "/webhooks/infobip", content=infobip_body("t-3"), headers=headers
        )
        assert answer.status_code == 200
    webhook = one(spans, WEBHOOK)
    assert webhook.context is not None
    assert webhook.parent is not None
    assert f"{webhook.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{webhook.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_no_span_carries_personal_data(
    spans: InMemorySpanExporter, make_stack: StackFactory
) -> None:
    """Phone numbers, message ids and query strings stay out of span names and attributes,
    for accepted and refused webhooks alike (docs/security.md)."""
    async with make_stack() as stack, DlrhubClient(f"127.0.0.1:{stack.statusd.port}") as client:
        changes = aiter(client.watch(provider="infobip", heartbeats=True))
        await asyncio.wait_for(anext(changes), 10)
        url = f"/webhooks/infobip?to={PHONE}&text=secret-body"
        accepted = await stack.http.post(url, content=infobip_body("private-id"), headers=JSON)
        assert accepted.status_code == 200
        refused = await stack.http.post(url, content=infobip_body("private-id"))
        assert refused.status_code == 401
        for path in (f"/webhooks/infobip/{PHONE}", f"/webhooks/{PHONE}"):
            unknown = await stack.http.post(path, content=infobip_body("private-id"), headers=JSON)
            assert unknown.status_code == 404
        await next_change(changes)
        await finished(spans, WATCH_SEND)
    recorded = spans.get_finished_spans()
    assert len(recorded) >= 8
    not_found = [
        ((span.attributes or {})["dlrhub.provider"], (span.attributes or {})["dlrhub.account"])
        for span in named(spans, WEBHOOK) + named(spans, "POST /webhooks/{provider}/{account}")
        if (span.attributes or {})["http.response.status_code"] == 404
    ]
    assert sorted(not_found) == [("infobip", "unknown"), ("unknown", "")]
    for span in recorded:
        texts = [span.name, *map(str, (span.attributes or {}).values())]
        texts += [
            str(value) for event in span.events for value in (event.attributes or {}).values()
        ]
        texts += [str(value) for link in span.links for value in (link.attributes or {}).values()]
        for text in texts:
            for private in (PHONE, "private-id", "secret-body", "?"):
                assert private not in text, (span.name, text)


async def test_webhooks_sharing_a_call_are_linked_to_it(
    spans: InMemorySpanExporter, statusd: Statusd
) -> None:
    forwarder = Forwarder(f"127.0.0.1:{statusd.port}")
    coalescer = Coalescer(forwarder.ingest, max_in_flight=1)
    tracer = common_tracing.tracer
    assert tracer is not None

    async def webhook(name: str) -> None:
        with tracer.start_as_current_span(name):
            await coalescer.submit([report(name)])

    try:
        first = asyncio.create_task(webhook("first"))
        await asyncio.sleep(0)  # its call is out: the next two wait and share one
        await asyncio.gather(first, webhook("second"), webhook("third"))
    finally:
        await forwarder.close()
    assert coalescer.calls == 2
    calls = sorted(
        named(spans, tracing.INGEST_CALL, SpanKind.CLIENT), key=lambda span: span.start_time or 0
    )
    second, third = one(spans, "second"), one(spans, "third")
    shared = calls[1]
    assert (shared.attributes or {})["dlrhub.webhooks"] == 2
    assert second.context is not None
    assert parent_id(shared) == second.context.span_id
    assert [link.context for link in shared.links] == [third.context]
    assert [link.context for link in third.links] == [shared.context]


async def test_a_refused_call_says_only_its_error_type(
    spans: InMemorySpanExporter, statusd: Statusd
) -> None:
    forwarder = Forwarder(f"127.0.0.1:{statusd.port}")
    try:
        with pytest.raises(Malformed):
            await Coalescer(forwarder.ingest).submit([report("m-1", provider="nosuch")])
    finally:
        await forwarder.close()
    call = one(spans, tracing.INGEST_CALL, SpanKind.CLIENT)
    assert (call.status.status_code, call.status.description) == (StatusCode.ERROR, "Malformed")
    assert not call.events  # statusd's details stay in the log


async def test_off_the_hooks_are_the_bare_handler_and_metadata() -> None:
    assert common_tracing.tracer is None
    assert tracing.traced(routes.webhook, "/webhooks/{provider}") is routes.webhook
    metadata = (("authorization", "Bearer x"),)
    assert tracing.outgoing(metadata) is metadata
    assert tracing.submitted(1, 0) is None
    with tracing.ingest_call([None], 1):
        pass
