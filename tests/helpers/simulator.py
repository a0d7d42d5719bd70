"""A simulated provider: sends signed delivery reports and retries like a real one.

Requests are signed once, up front (signing is not what is being tested). Every request is
retried with exponential backoff on any answer but 2xx, or on a broken connection, until it
is acknowledged or the deadline passes; some acknowledged requests are sent again, as real
providers do. Bounded in count and time, loopback only.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.auth.basic import authorization as basic_authorization
from gateway.providers.plivo import sign_v3

STATUS_FLOW = [
    ("PENDING", "PENDING_ACCEPTED"),
    ("PENDING", "PENDING_ENROUTE"),
    ("DELIVERED", "DELIVERED_TO_HANDSET"),
]


@dataclass
class Delivery:
    """One webhook request and what became of it."""

    path: str
    body: bytes
    headers: dict[str, str]
    reports: list[tuple[str, str, str]]  # (provider, message id, provider status)
    attempts: int = 0
    acked: bool = False
    answers: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def infobip_deliveries(messages: int, basic: str, rng: random.Random) -> list[Delivery]:
    """Every message goes ACCEPTED → ENROUTE → DELIVERED; reports are shuffled into batches
    of one to five, so they arrive out of order."""
    items: list[dict[str, Any]] = []
    for index in range(messages):
        for step, (group, name) in enumerate(STATUS_FLOW):
            items.append(
                {
                    "messageId": f"ib-{index}",
                    "to": "41793026727",
                    "doneAt": f"2026-03-01T10:{step:02d}:{index % 60:02d}.000+0000",
                    "status": {"groupName": group, "name": name},
                }
            )
    rng.shuffle(items)
    headers = {
        "Authorization": basic_authorization(basic),
        "Content-Type": "application/json",
    }
    deliveries = []
    while items:
        size = rng.randint(1, 5)
        batch, items = items[:size], items[size:]
        deliveries.append(
            Delivery(
                path="/webhooks/infobip",
                body=json.dumps({"results": batch}).encode(),
                headers=headers,
                reports=[("infobip", item["messageId"], item["status"]["name"]) for item in batch],
            )
        )
    return deliveries


def plivo_deliveries(messages: int, token: str, public_url: str) -> list[Delivery]:
    """queued → sent → delivered callbacks, one per request, each signed with its own nonce."""
    deliveries = []
    for index in range(messages):
        for sequence, status in enumerate(("queued", "sent", "delivered"), start=1):
            form = (
                ("MessageUUID", f"pl-{index}"),
                ("Status", status),
                ("To", "14155551234"),
                ("Sequence", str(sequence)),
                ("ErrorCode", ""),
            )
            nonce = secrets.token_hex(8)
            signature = sign_v3("POST", public_url + "/webhooks/plivo", form, nonce, token)
            deliveries.append(
                Delivery(
                    path="/webhooks/plivo",
                    body=urlencode(form).encode(),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Plivo-Signature-V3": signature,
                        "X-Plivo-Signature-V3-Nonce": nonce,
                    },
                    reports=[("plivo", f"pl-{index}", status)],
                )
            )
    return deliveries


@dataclass
class Simulator:
    """Sends deliveries with ``concurrency`` workers, pacing each worker by ``pause`` seconds."""

    url: str
    deliveries: list[Delivery]
    concurrency: int = 8
    pause: float = 0.02
    deadline: float = 90.0
    resend_share: float = 0.05
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    resent: int = 0

    async def run(self) -> None:
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for delivery in self.deliveries:
            queue.put_nowait(delivery)
        stop_at = time.monotonic() + self.deadline
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as http:
            workers = [
                asyncio.create_task(self._work(http, queue, stop_at))
                for _ in range(self.concurrency)
            ]
            await asyncio.gather(*workers)

    async def _work(
        self, http: httpx.AsyncClient, queue: asyncio.Queue[Delivery], stop_at: float
    ) -> None:
        while time.monotonic() < stop_at:
            if all(delivery.acked for delivery in self.deliveries) and queue.empty():
                return
            try:
                delivery = await asyncio.wait_for(queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            await self._send(http, delivery)
            if not delivery.acked:
                backoff = min(0.05 * 2 ** min(delivery.attempts, 5), 1.0)
                asyncio.get_running_loop().call_later(
                    backoff * (0.5 + self.rng.random()), queue.put_nowait, delivery
                )
            elif delivery.attempts == 1 and self.rng.random() < self.resend_share:
                self.resent += 1
                await self._send(http, delivery)  # a provider's duplicate of a success
            await asyncio.sleep(self.pause)

    async def _send(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        delivery.attempts += 1
        try:
            response = await http.post(
                delivery.path, content=delivery.body, headers=delivery.headers
            )
        except httpx.HTTPError:
            delivery.answers.append(0)
            return
        delivery.answers.append(response.status_code)
        if 200 <= response.status_code < 300:
            if not delivery.acked:
                delivery.counts = response.json()
            delivery.acked = True
