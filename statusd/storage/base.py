"""The store interface every backend implements, and the types it speaks.

A backend turns batches of reports into durable state by the rules of :mod:`statusd.model`.
The contract, which ``tests/statusd/storage/`` runs against every backend:

* :meth:`Store.commit_batch` is atomic and durable: when it returns, every report and
  quarantined item of the batch is committed; when it raises :class:`StoreUnavailable`, the
  caller must assume nothing was (a retry is safe: commits are idempotent by dedupe key).
  Beside the outcomes it returns the batch's :class:`Receipt` s, so that the receipt latency
  is observed without reading anything back.
* The outcome of each report is DUPLICATE (its dedupe key was seen for that message),
  STORED (new and now current) or STALE (new, kept in history, but not current).
* Reads see every acknowledged commit.
* List cursors and change positions are opaque strings that only the store that handed them
  out understands; anything else raises :class:`InvalidPosition`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from statusd import status_fields

if TYPE_CHECKING:
    from statusd.stats import StatsQuery, StatsResult

Outcome: TypeAlias = ingest_pb.IngestOutcome.ValueType
STORED = ingest_pb.INGEST_OUTCOME_STORED
DUPLICATE = ingest_pb.INGEST_OUTCOME_DUPLICATE
STALE = ingest_pb.INGEST_OUTCOME_STALE


class StoreError(Exception):
    """Base of the errors a store raises on purpose."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not confirm a commit; the caller may retry."""


class InvalidPosition(StoreError):
    """A list cursor or change position the store did not hand out, or one it no longer keeps
    (a change stream's history moved past it); start again from :meth:`Store.last_position`."""


class SchemaTooNew(StoreError):
    """The store was written by a newer statusd than this one: statusd does not start (the
    message names both schema versions)."""


class PositionGone(InvalidPosition):
    """A change position older than the oldest change the store still keeps (purged)."""


@dataclass(frozen=True)
class MessageFilter:
    """What List and Watch select on. Empty fields select everything; fields combine with AND.

    ``fields`` holds values of the table's status fields (:mod:`statusd.status_fields`),
    each selecting messages whose field equals the value; empty values are dropped.
    """

    provider: str = ""
    account: str | None = None
    statuses: frozenset[int] = frozenset()
    update_time_start: int | None = None  # microseconds, inclusive
    update_time_end: int | None = None  # microseconds, exclusive
    fields: Mapping[str, str] = field(default_factory=dict)
    #: Only messages awaiting a report (:func:`statusd.model.awaiting_report`).
    awaiting_report: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(status_fields.NAMES)
        if unknown:
            raise ValueError(f"not a status field: {', '.join(sorted(unknown))}")
        given = {name: value for name, value in self.fields.items() if value}
        object.__setattr__(self, "fields", given)

    def value(self, name: str) -> str:
        """The value a status field must have ("" when the filter does not select on it)."""
        return self.fields.get(name, "")

    def matches(self, status: pb.MessageStatus) -> bool:
        """Whether a message passes the filter (the in-memory form of the store query)."""
        from statusd.model import NON_TERMINAL_CLASS, micros, status_class

        updated = micros(status.update_time)
        awaiting = status.HasField("report_deadline_time") and (
            status_class(status.latest_report) == NON_TERMINAL_CLASS
        )
        return (
            (not self.provider or status.provider == self.provider)
            and (self.account is None or status.account == self.account)
            and (not self.statuses or status.status in self.statuses)
            and (self.update_time_start is None or updated >= self.update_time_start)
            and (self.update_time_end is None or updated < self.update_time_end)
            and all(getattr(status, name) == value for name, value in self.fields.items())
            and (not self.awaiting_report or awaiting)
        )


def set_times(status: pb.MessageStatus, **times: int | None) -> None:
    """Sets the Timestamp fields of ``status`` named by ``times`` (microseconds; None: unset)."""
    for name, value in times.items():
        if value is not None:
            getattr(status, name).FromMicroseconds(value)


@dataclass(frozen=True)
class Due:
    """A message whose report timeout has passed: its key and its deadline (microseconds)."""

    key: tuple[str, str, str]
    deadline: int


@dataclass(frozen=True)
class Receipt:
    """A registered message that got its final report in a commit (or was registered after
    it): what the receipt-latency histograms observe. Times in microseconds."""

    provider: str
    country: str
    submit_time: int
    final_time: int


@dataclass(frozen=True)
class Committed:
    """What a commit did: one outcome per report, in order, and the receipts of the batch
    (at most one per message, as it stands after the batch)."""

    outcomes: list[Outcome]
    receipts: list[Receipt] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``cursor`` is where the next page starts (None at the end)."""

    items: list[pb.MessageStatus]
    cursor: str | None


@dataclass(frozen=True)
class Change:
    """One new distinct report and the message's state after it; ``position`` orders changes."""

    position: str
    report: pb.DeliveryReport
    message_status: pb.MessageStatus = field(compare=False)


class Store(abc.ABC):
    """A durable home for message statuses. Implementations: SQLite (embedded), MongoDB."""

    #: Short name for logs and metrics (``sqlite``, ``mongodb``).
    name: str = "store"

    @abc.abstractmethod
    async def open(self) -> None:
        """Connects and prepares the schema or indexes (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases connections; pending commits have finished before this is called."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Returns when the store can take commits; raises :class:`StoreUnavailable` otherwise."""

    @abc.abstractmethod
    async def commit_batch(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> Committed:
        """Commits one batch durably; returns one outcome per report, in order, and a
        :class:`Receipt` for each message of the batch that is registered and whose final
        report became current in it, or that was registered in it after its final report.

        Every report must carry its dedupe key in ``event_id`` (see
        :func:`statusd.model.with_event_id`); several reports of one message may be in a batch.
        """

    async def commit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        """:meth:`commit_batch`, answering only the outcomes."""
        return (await self.commit_batch(reports, quarantined)).outcomes

    @abc.abstractmethod
    async def get(self, key: pb.MessageKey, *, full: bool = False) -> pb.MessageStatus | None:
        """One message's status (with history when ``full``), or None if unknown."""

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool = False
    ) -> list[pb.MessageStatus]:
        """The known messages among ``keys``, in the order of ``keys``."""
        found = []
        for key in keys:
            status = await self.get(key, full=full)
            if status is not None:
                found.append(status)
        return found

    @abc.abstractmethod
    async def list_messages(
        self, query: MessageFilter, *, after: str | None, limit: int, full: bool = False
    ) -> Page:
        """Messages passing ``query`` in first-seen order, starting after cursor ``after``."""

    @abc.abstractmethod
    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        """New distinct reports after position ``after`` (None: from the start), oldest first:
        at most ``limit`` that pass ``query`` (the scan goes on past reports it drops), each
        with the state its message reaches with it."""

    async def wait_for_changes(self, after: str | None, timeout: float) -> None:
        """Returns when changes after position ``after`` may exist, or after ``timeout``.

        The default just waits: statusd's change hub also wakes on its own commits, which is
        all a single-writer store (SQLite) needs. A store that several statusd replicas write
        (MongoDB on a replica set, through a change stream) returns as soon as any replica's
        change lands, so every replica's watchers see every change.
        """
        await asyncio.sleep(timeout)

    @abc.abstractmethod
    async def last_position(self) -> str | None:
        """A position at or after the newest change: :meth:`changes` after it returns exactly
        the changes committed later. None only when nothing was stored yet (and the store has no
        other way to name "now"); :meth:`changes` after None then returns everything."""

    async def probe_write(self) -> None:
        """Returns when a small write succeeds; statusd asks this instead of :meth:`ping`
        after commits failed, before it reports ready again. The default pings."""
        await self.ping()

    async def check_position(self, position: str) -> None:  # noqa: B027 - optional
        """Raises :class:`InvalidPosition` unless ``position`` is one :meth:`changes` or
        :meth:`last_position` could have handed out, and :class:`PositionGone` when the
        changes after it are no longer all kept. The default accepts what :meth:`changes`
        accepts (a store whose positions expire raises from :meth:`changes` instead)."""

    async def idle(self) -> None:  # noqa: B027 - optional
        """Housekeeping while no commit is running (SQLite: checkpoint and truncate the
        WAL). Called by statusd after a quiet spell; the default does nothing."""

    @abc.abstractmethod
    async def delivery_stats(self, query: StatsQuery) -> StatsResult:
        """GetDeliveryStats' counts, aggregated in the store over the messages whose basis
        time is in the window, read through an index on that time: per group its counts and
        percentile buckets, and the latency buckets of the total (the rules are
        :mod:`statusd.stats`)."""

    @abc.abstractmethod
    async def due_timeouts(self, now_micros: int, limit: int) -> list[Due]:
        """Up to ``limit`` messages awaiting a report whose deadline is at or before
        ``now_micros``, earliest deadline first, read through the deadline index (never a
        scan). The report-timeout sweeper commits a timeout entry for each; the commit
        applies it only if the message still awaits that deadline."""

    @abc.abstractmethod
    async def purge(self, before_micros: int) -> int:
        """Deletes messages not updated since ``before_micros``; returns how many."""

    @abc.abstractmethod
    async def quarantined(self, *, after: str | None, limit: int) -> list[pb.QuarantinedItem]:
        """Quarantined items in the order they arrived, starting after id ``after``."""

    async def count_quarantined(self) -> int:
        """How many items wait in quarantine (for the quarantine-size gauge)."""
        count, after = 0, None
        while page := await self.quarantined(after=after, limit=1000):
            count += len(page)
            after = page[-1].id
        return count

    @abc.abstractmethod
    async def release(self, ids: Sequence[str]) -> int:
        """Removes quarantined items (after a successful replay); returns how many."""
