"""AWS SNS against a running gateway and statusd over real HTTP: a gateway waiting on slow
signing certificates keeps answering ``/healthz`` and other providers' webhooks at once;
forged messages cost no fetch; a certificate that cannot be had now is a 503 that does not
count as a failed authentication, one that is refused is a counted 401.

The certificate fetcher is injected (no https server for ``sns.<region>.amazonaws.com`` exists
here); everything else is the gateway as deployed."""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import sns_signature
from gateway.auth.sns_certificates import Refused
from gateway.providers.aws_sns import AwsSns, sample_message
from gateway.providers.infobip import Infobip, InfobipCredentials
from tests.helpers.servers import Gateway, running_gateway, running_statusd, statusd_settings

PUBLIC_URL = "https://dlr.example.com"
TOPIC = "arn:aws:sns:us-east-1:123456789012:sms-events"
ENV = {"DLRHUB_AWS_SNS_TOPIC_ARNS": TOPIC, "DLRHUB_INFOBIP_BASIC_AUTH": "infobip:pw"}
#: How long the injected fetcher takes over each certificate.
SLOW_SECONDS = 2.0
#: Failed authentications a minute before a client is refused (small, to see it counted).
AUTH_FAILURE_LIMIT = 3


@functools.cache
def key_pair() -> tuple[bytes, bytes]:
    return sns_signature.signing_pair("sns.us-east-1.amazonaws.com (e2e)")


def cert_url(name: str) -> str:
    return f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{name}.pem"


def sns_body(message_id: str, certificate: str, topic: str = TOPIC) -> bytes:
    message = sample_message(message_id, "TEXT_DELIVERED", time.time())
    message.update(TopicArn=topic, SigningCertURL=certificate)
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    return json.dumps(message).encode()


class Fetcher:
    """Stands in for AWS: ``behaviour(url)`` answers each fetch (in the gateway's worker
    thread); the calls are recorded."""

    def __init__(self, behaviour: Callable[[str], bytes]) -> None:
        self.behaviour = behaviour
        self.urls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.urls.append(url)
        return self.behaviour(url)


def slow(url: str) -> bytes:
    time.sleep(SLOW_SECONDS)
    return key_pair()[0]


@dataclass
class Stack:
    gateway: Gateway
    http: httpx.AsyncClient

    def fetch_with(self, fetcher: Fetcher) -> None:
        endpoint = self.gateway.app.ctx.config.endpoints[("aws-sns", "")]
        assert isinstance(endpoint, AwsSns)
        endpoint.certificates.fetch = fetcher

    async def post_sns(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=UTF-8"}
        return await self.http.post("/webhooks/aws-sns", content=body, headers=headers)

    async def failed_authentications(self) -> float:
        """``dlrhub_signature_failures_total`` for aws-sns, read from /metrics."""
        text = (await self.http.get("/metrics")).text
        prefix = 'dlrhub_signature_failures_total{provider="aws-sns",'
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
        )

    async def timed(self, request: Any) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = await request
        return time.perf_counter() - started, response


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        running_gateway(
            ENV,
            f"127.0.0.1:{daemon.port}",
            public_url=PUBLIC_URL,
            auth_failure_limit_per_minute=AUTH_FAILURE_LIMIT,
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as http,
    ):
        yield Stack(gateway, http)


async def test_slow_certificates_hold_up_nothing_else(stack: Stack) -> None:
    fetcher = Fetcher(slow)
    stack.fetch_with(fetcher)
    urls = [cert_url(f"slow-{index}") for index in range(5)]
    waiting = [
        asyncio.create_task(stack.timed(stack.post_sns(sns_body(f"slow-{index}", url))))
        for index, url in enumerate(urls)
    ]
    await asyncio.sleep(0.1)  # the five are in, waiting on their certificates
    health: list[float] = []
    while len(health) < 20:
        latency, answer = await stack.timed(stack.http.get("/healthz"))
        assert answer.status_code == 200
        health.append(latency)
        await asyncio.sleep(0.02)
    infobip = Infobip("", InfobipCredentials.model_validate({"basic_auth": "infobip:pw"}))
    sample = infobip.sample(f"{PUBLIC_URL}/webhooks/infobip", "ib-during-sns", "delivered")
    other_latency, other = await stack.timed(
        stack.http.post("/webhooks/infobip", content=sample.body, headers=sample.headers)
    )
    assert other.status_code == 200, other.text
    # All of that was answered while every SNS request was still waiting.
    assert not any(task.done() for task in waiting)
    results = await asyncio.gather(*waiting)
    for elapsed, answer in results:
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 1
        assert elapsed >= SLOW_SECONDS * 0.9
    assert sorted(fetcher.urls) == sorted(urls)  # one fetch each, all at once
    print(
        f"\n/healthz while 5 SNS requests waited {SLOW_SECONDS:g} s on certificates: "
        f"{len(health)} requests, median {statistics.median(health) * 1000:.1f} ms, "
        f"max {max(health) * 1000:.1f} ms; an Infobip webhook {other_latency * 1000:.1f} ms; "
        f"the SNS requests {min(e for e, _ in results):.2f}-{max(e for e, _ in results):.2f} s"
    )


async def test_requests_for_one_certificate_share_one_fetch(stack: Stack) -> None:
    fetcher = Fetcher(slow)
    stack.fetch_with(fetcher)
    url = cert_url("shared")
    answers = await asyncio.gather(
        *(stack.post_sns(sns_body(f"shared-{index}", url)) for index in range(5))
    )
    assert [answer.status_code for answer in answers] == [200] * 5
    assert fetcher.urls == [url]
    again = await stack.timed(stack.post_sns(sns_body("shared-again", url)))
    assert again[1].status_code == 200
    assert fetcher.urls == [url]  # cached


async def test_forged_posts_fetch_nothing(stack: Stack) -> None:
    """The issue's five unsigned posts with random certificate paths: refused at once."""
    fetcher = Fetcher(slow)
    stack.fetch_with(fetcher)
    for topic in ("arn:aws:sns:us-east-1:123456789012:not-ours", TOPIC):
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": "{}",
            "Timestamp": "2026-01-01T00:00:00.000Z",
            "SigningCertURL": f"https://evil.example/{uuid.uuid4()}.pem",
        }
        answer = await stack.post_sns(json.dumps(message).encode())
        assert answer.status_code == 401, answer.text
    assert fetcher.urls == []


async def test_an_outage_is_503_and_no_failed_authentication(stack: Stack) -> None:
    """AWS unreachable: every request is 503 (SNS retries it) and none counts as a failed
    authentication, so a failing request afterwards is the client's first (401, not 429); a
    request once AWS answers again goes through."""

    def unreachable(url: str) -> bytes:
        raise OSError("network is unreachable")

    stack.fetch_with(Fetcher(unreachable))
    counted = await stack.failed_authentications()
    for index in range(AUTH_FAILURE_LIMIT + 3):
        answer = await stack.post_sns(sns_body(f"out-{index}", cert_url(f"out-{index}")))
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
    assert await stack.failed_authentications() == counted
    forged = await stack.post_sns(sns_body("forged", cert_url("out-0"), topic=TOPIC + "-x"))
    assert forged.status_code == 401, forged.text
    stack.fetch_with(Fetcher(lambda url: key_pair()[0]))
    answer = await stack.post_sns(sns_body("after-outage", cert_url("back")))
    assert answer.status_code == 200, answer.text


async def test_a_refused_certificate_is_a_counted_failed_authentication(stack: Stack) -> None:
    def missing(url: str) -> bytes:
        raise Refused(f"{url} answered 404")

    stack.fetch_with(Fetcher(missing))
    counted = await stack.failed_authentications()
    statuses = [
        (await stack.post_sns(sns_body(f"gone-{index}", cert_url(f"gone-{index}")))).status_code
        for index in range(AUTH_FAILURE_LIMIT + 1)
    ]
    assert statuses[:AUTH_FAILURE_LIMIT] == [401] * AUTH_FAILURE_LIMIT
    assert statuses[AUTH_FAILURE_LIMIT] == 429  # this client keeps failing: slowed down
    # the failure answered 429 is counted as a failed authentication too
    assert await stack.failed_authentications() == counted + AUTH_FAILURE_LIMIT + 1
