"""Building requests: framework-free InboundRequests for provider unit tests, and signed
webhook requests (``httpx`` keyword arguments) for tests over real HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from gateway.auth.basic import authorization as basic_authorization
from gateway.providers.base import InboundRequest, SampleRequest, build_request
from gateway.providers.plivo import sign_v3

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
    """A request as the gateway builds it (``form`` also becomes the body); raises Malformed
    where the gateway would answer 400 before any provider code runs."""
    pairs = dict(headers or {})
    if form is not None:
        body = urlencode(list(form.items())).encode("utf-8")
        content_type = content_type or "application/x-www-form-urlencoded"
    if content_type is not None and not any(name.lower() == "content-type" for name in pairs):
        pairs["Content-Type"] = content_type
    return build_request(
        method,
        url,
        pairs.items(),
        body,
        request_id="test-request",
        received_micros=RECEIVED_MICROS,
    )


def from_sample(sample: SampleRequest) -> InboundRequest:
    return inbound(sample.url, method=sample.method, headers=sample.headers, body=sample.body)


def basic_json_headers(credentials: str) -> dict[str, str]:
    """Headers of a JSON webhook with HTTP Basic ``user:password`` credentials."""
    return {"Authorization": basic_authorization(credentials), "Content-Type": "application/json"}


def plivo_v3(url: str, form: Mapping[str, str], token: str, nonce: str) -> dict[str, object]:
    """``content`` and ``headers`` of a Plivo callback to ``url`` signed with V3."""
    signature = sign_v3("POST", url, tuple(form.items()), nonce, token)
    return {
        "content": urlencode(form),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": signature,
            "X-Plivo-Signature-V3-Nonce": nonce,
        },
    }
