"""Building framework-free InboundRequests for provider unit tests."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from gateway.providers.base import InboundRequest, SampleRequest

RECEIVED_MICROS = 1_767_225_600_000_000


def inbound(
    url: str,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    form: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> InboundRequest:
    """A request as the gateway would build it (``form`` also becomes the body)."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    if form is not None:
        body = urlencode(list(form.items())).encode("utf-8")
        content_type = content_type or "application/x-www-form-urlencoded"
    if content_type is not None:
        lowered.setdefault("content-type", content_type)
    mime = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    form_pairs: tuple[tuple[str, str], ...] = ()
    if method == "POST" and mime == "application/x-www-form-urlencoded":
        form_pairs = tuple(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    parts = urlsplit(url)
    return InboundRequest(
        method=method,
        url=url,
        path=parts.path,
        headers=lowered,
        body=body,
        content_type=mime,
        query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
        form=form_pairs,
        received_micros=RECEIVED_MICROS,
        request_id="test-request",
    )


def from_sample(sample: SampleRequest) -> InboundRequest:
    return inbound(sample.url, method=sample.method, headers=sample.headers, body=sample.body)
