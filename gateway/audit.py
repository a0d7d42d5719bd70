"""The rejection log: one structured line per refused (4xx or 5xx) or quarantined webhook, so
an operator setting up a provider sees why its webhooks fail; rate-limited, so a flood of
forgeries cannot fill the disk.

A line carries ``provider``, ``account``, ``reason_label`` (the error's kind, with the
authentication failure's label when there is one: ``unauthorized/invalid``,
``rate_limited/stale``; ``quarantined`` for a 2xx that quarantined items), ``reason`` (the
text the caller got), ``client`` (its address, see :meth:`gateway.guard.Guard.client`),
``request_id`` and ``status``. It never carries a header value (no credentials or
signatures) or the body, and phone numbers are masked (:func:`dlrhub_common.logs.scrub`) unless
``DLRHUB_LOG_PHONE_NUMBERS`` is on. 4xx lines are ``info``; 5xx and quarantine are
``warning``. A stored webhook whose reports lost unreadable informational fields
(:mod:`gateway.providers.dropped`) writes an ``info`` line per field class
(``dropped/<field>``, e.g. ``dropped/mcc_mnc``).

Lines are limited per ``(provider, reason_label)``, both bounded sets (an unknown provider is
``unknown``; the account is never part of the key), to ``DLRHUB_REJECTION_LOG_PER_MINUTE``
with a burst of as many; lines over it are counted, and every
``DLRHUB_REJECTION_LOG_SUMMARY_SECONDS`` (and at shutdown) one ``suppressed N similar lines``
line per key reports them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sanic import Request

from dlrhub_common.logs import scrub
from gateway.errors import WebhookError, authentication_failure, http_status
from gateway.guard import Guard
from gateway.metrics import provider_label
from gateway.providers import Parsed
from gateway.ratelimit import Limiter

log = logging.getLogger(__name__)

#: The longest account name or reason text a line carries.
MAX_TEXT = 300
#: Quarantine reasons named in one line.
MAX_REASONS = 3


@dataclass(frozen=True)
class Source:
    """Where a webhook came from, as a line shows it."""

    provider: str
    account: str
    client: str
    request_id: str


def reason_label(error: WebhookError) -> str:
    """``kind``, or ``kind/label`` when authentication failed (also under the failure
    limit's 429)."""
    failure = authentication_failure(error)
    return error.kind if failure is None else f"{error.kind}/{failure.label}"


class RejectionLog:
    """Writes the lines, at most ``per_minute`` per ``(provider, reason_label)``, and counts
    the rest for :meth:`summarize`."""

    def __init__(
        self,
        per_minute: float,
        summary_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = Limiter(per_minute / 60, per_minute, max_keys=10_000, clock=clock)
        self.summary_seconds = summary_seconds
        self.suppressed: Counter[tuple[str, str]] = Counter()

    def refused(self, error: WebhookError, source: Source) -> None:
        status = http_status(error)
        level = logging.WARNING if status >= 500 else logging.INFO
        label = reason_label(error)
        self._write(
            level, "webhook refused", source, label=label, reason=error.reason, status=status
        )

    def quarantined(self, parsed: Parsed, source: Source) -> None:
        count = len(parsed.quarantined)
        reasons = sorted({item.reason for item in parsed.quarantined})[:MAX_REASONS]
        text = f"{count} item(s) quarantined: {'; '.join(reasons)}"
        self._write(
            logging.WARNING,
            "webhook quarantined",
            source,
            label="quarantined",
            reason=text,
            status=200,
        )

    def dropped(self, parsed: Parsed, source: Source) -> None:
        """One line per class of informational field left out of the stored reports."""
        reasons: dict[str, list[str]] = {}
        for field_class, reason in parsed.dropped:
            reasons.setdefault(field_class, []).append(reason)
        for field_class, found in sorted(reasons.items()):
            shown = "; ".join(sorted(set(found))[:MAX_REASONS])
            text = f"{len(found)} report field(s) left out, kept raw: {shown}"
            label = f"dropped/{field_class}"
            self._write(
                logging.INFO, "report fields left out", source, label=label, reason=text, status=200
            )

    def _write(
        self, level: int, message: str, source: Source, *, label: str, reason: str, status: int
    ) -> None:
        key = (source.provider, label)
        if self.limiter.check(f"{source.provider} {label}"):
            self.suppressed[key] += 1
            return
        fields = {
            "provider": source.provider,
            "account": scrub(source.account[:MAX_TEXT]),
            "reason_label": label,
            "reason": scrub(reason[:MAX_TEXT]),
            "client": source.client,
            "request_id": source.request_id,
            "status": status,
        }
        log.log(level, message, extra=fields)

    def summarize(self) -> None:
        """One ``suppressed N similar lines`` line per key with lines suppressed since the
        last summary."""
        counts, self.suppressed = self.suppressed, Counter()
        for (provider, label), count in sorted(counts.items()):
            log.warning(
                "suppressed %d similar lines",
                count,
                extra={"provider": provider, "reason_label": label, "suppressed": count},
            )

    async def summarize_periodically(self) -> None:
        """Runs until cancelled, summarizing every ``summary_seconds``."""
        while True:
            await asyncio.sleep(self.summary_seconds)
            self.summarize()


def webhook_answered(
    request: Request,
    provider: str,
    account: str,
    request_id: str,
    error: WebhookError | None,
    *,
    parsed: Parsed | None = None,
) -> None:
    """Writes the line of a refused webhook (``error``), or those of one whose items were
    quarantined or lost informational fields (``parsed``); nothing for a clean 2xx."""
    if error is None and (parsed is None or not (parsed.quarantined or parsed.dropped)):
        return
    guard: Guard = request.app.ctx.guard
    rejections: RejectionLog = request.app.ctx.rejections
    source = Source(provider_label(provider), account, guard.client(request), request_id)
    if error is not None:
        rejections.refused(error, source)
    elif parsed is not None:
        if parsed.quarantined:
            rejections.quarantined(parsed, source)
        rejections.dropped(parsed, source)
