"""The store contract for registrations and report timeouts, on every backend (SQLite on a
real file, MongoStore over mongomock, standalone and replica set, and over the fault double):
any interleaving of registrations, repeated registrations and reports ends in the pure fold;
the awaiting-report filter and the deadline query select exactly the registered messages
without a final entry; a timeout entry applies once, only while its message still awaits
that deadline, and a late final report overrides it."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter
from statusd.storage.base import DUPLICATE, STALE, STORED, MessageFilter, Store
from tests.helpers.reports import BASE_MICROS, filled, histories, key, registered, report
from tests.helpers.stores import assert_in_the_fold

SECOND = 1_000_000
NO_REPORT = pb.DELIVERY_STATUS_NO_REPORT
DELIVERED = pb.DELIVERY_STATUS_DELIVERED
SENT = pb.DELIVERY_STATUS_SENT
_EXAMPLES = itertools.count()


def timeout(message_id: str, deadline: int) -> pb.DeliveryReport:
    return model.timeout_entry(("infobip", "", message_id), deadline, deadline + SECOND)


async def test_a_registration_alone_reads_as_accepted(store: Store) -> None:
    assert await store.commit([registered(client_ref="order-7")]) == [STORED]
    found = await store.get(key(), full=True)
    assert found is not None
    assert (found.status, found.report_count, found.client_ref, found.recipient) == (
        pb.DELIVERY_STATUS_ACCEPTED,
        0,
        "order-7",
        "+41790000000",
    )
    assert found.country == "CH"
    assert model.micros(found.report_deadline_time) == BASE_MICROS + 3600 * SECOND
    assert found.HasField("register_time")
    assert await store.commit([registered(client_ref="other")]) == [DUPLICATE]
    assert await store.get(key(), full=True) == found


async def test_a_registration_after_a_report_fills_only_what_is_missing(store: Store) -> None:
    (sent,) = filled(report(status=SENT, recipient="", client_ref="theirs"))
    await store.commit([sent])
    assert await store.commit([registered(client_ref="mine", recipient="+41790000000")]) == [STALE]
    found = await store.get(key())
    assert found is not None
    assert (found.status, found.report_count, found.client_ref, found.recipient) == (
        SENT,
        1,
        "theirs",
        "+41790000000",
    )
    assert found.country == "CH"
    assert model.micros(found.submit_time) == BASE_MICROS


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
async def test_any_interleaving_ends_in_the_fold(store: Store, data: st.DataObject) -> None:
    """Registrations, repeated registrations and reports of a few messages, in any order and
    any batching, end in the pure fold (each example has messages of its own)."""
    prefix = f"x{next(_EXAMPLES)}-"
    ids = tuple(prefix + name for name in ("m-1", "m-2"))
    distinct = data.draw(histories(ids))
    rng = data.draw(st.randoms(use_true_random=False))
    arrivals = distinct + [rng.choice(distinct) for _ in range(rng.randint(0, len(distinct)))]
    rng.shuffle(arrivals)
    size = rng.randint(1, 4)
    for start in range(0, len(arrivals), size):
        await store.commit(arrivals[start : start + size])
    await assert_in_the_fold(store, distinct, fields=True)


async def test_awaiting_report_selects_registered_messages_without_a_final_entry(
    store: Store,
) -> None:
    (delivered,) = filled(report("m-2", status=DELIVERED))
    (sent,) = filled(report("m-3", status=SENT))
    (unregistered,) = filled(report("m-4", status=SENT))
    await store.commit(
        [registered("m-1"), registered("m-2"), delivered, registered("m-3"), sent, unregistered]
    )
    awaiting = MessageFilter(awaiting_report=True)
    page = await store.list_messages(awaiting, after=None, limit=10)
    assert [item.message_id for item in page.items] == ["m-1", "m-3"]
    assert all(awaiting.matches(item) for item in page.items)
    assert not awaiting.matches(await store.get(key("m-2")))  # type: ignore[arg-type]
    assert not awaiting.matches(await store.get(key("m-4")))  # type: ignore[arg-type]
    deadline = BASE_MICROS + 3600 * SECOND
    assert await store.due_timeouts(deadline - 1, 10) == []
    due = await store.due_timeouts(deadline, 10)
    assert [(item.key[2], item.deadline) for item in due] == [("m-1", deadline), ("m-3", deadline)]
    assert len(await store.due_timeouts(deadline, 1)) == 1


async def test_a_timeout_applies_once_and_a_late_final_report_overrides_it(
    store: Store,
) -> None:
    deadline = BASE_MICROS + 3600 * SECOND
    await store.commit([registered("m-1"), registered("m-2")])
    (delivered,) = filled(report("m-2", status=DELIVERED, event_offset=5))
    await store.commit([delivered])
    outcomes = await store.commit([timeout("m-1", deadline), timeout("m-2", deadline)])
    assert outcomes == [STORED, DUPLICATE]  # m-2 had its receipt: nothing written
    assert await store.commit([timeout("m-1", deadline)]) == [DUPLICATE]
    timed_out = await store.get(key("m-1"), full=True)
    assert timed_out is not None
    assert (timed_out.status, timed_out.report_count, len(timed_out.history)) == (NO_REPORT, 0, 2)
    assert not timed_out.HasField("final_time")
    assert await store.due_timeouts(deadline + SECOND, 10) == []
    listed = await store.list_messages(
        MessageFilter(statuses=frozenset({NO_REPORT})), after=None, limit=10
    )
    assert [item.message_id for item in listed.items] == ["m-1"]
    (late,) = filled(report("m-1", status=DELIVERED, event_offset=4 * 3600))
    assert await store.commit([late]) == [STORED]
    found = await store.get(key("m-1"))
    assert found is not None
    assert (found.status, found.report_count) == (DELIVERED, 1)
    assert model.micros(found.final_time) == model.effective_time(late)
    assert (await store.get(key("m-2"), full=True)).status == DELIVERED  # type: ignore[union-attr]


async def test_a_timeout_for_another_deadline_or_an_unregistered_message_is_not_applied(
    store: Store,
) -> None:
    (sent,) = filled(report("m-2", status=SENT))
    await store.commit([registered("m-1"), sent])
    deadline = BASE_MICROS + 3600 * SECOND
    assert await store.commit([timeout("m-1", deadline + 1), timeout("m-2", deadline)]) == [
        DUPLICATE,
        DUPLICATE,
    ]
    assert await store.commit([timeout("m-3", deadline)]) == [DUPLICATE]
    assert await store.get(key("m-3")) is None


async def test_replicas_sweeping_at_once_time_each_message_out_once(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Three store instances over one database (three statusd replicas) commit the same
    timeout entries at once, while final reports for some messages arrive."""
    ids = [f"m-{index}" for index in range(12)]
    await store.commit([registered(message_id) for message_id in ids])
    deadline = BASE_MICROS + 3600 * SECOND
    replicas = [store, reopen(), reopen()]
    for replica in replicas[1:]:
        await replica.open()
    finals = filled(*(report(message_id, status=DELIVERED) for message_id in ids[::3]))
    committers = [GroupCommitter(replica, max_reports=5) for replica in replicas]
    try:
        for committer in committers:
            committer.start()
        calls = [committer.submit([timeout(m, deadline) for m in ids]) for committer in committers]
        calls.append(committers[0].submit(finals))
        random.Random(3).shuffle(calls)
        results = await asyncio.gather(*calls)
    finally:
        for committer in committers:
            await committer.stop()
        for replica in replicas[1:]:
            await replica.close()
    timeouts_stored = sum(r.count(STORED) for r in results if len(r) == len(ids))
    assert timeouts_stored <= len(ids)
    for message_id in ids:
        found = await store.get(key(message_id), full=True)
        assert found is not None
        expected = DELIVERED if message_id in ids[::3] else NO_REPORT
        assert found.status == expected, message_id
        assert [entry.status for entry in found.history].count(NO_REPORT) <= 1
    assert await store.due_timeouts(deadline, 100) == []


async def test_retention_purges_registrations_like_reports(store: Store) -> None:
    await store.commit([registered("m-1")])
    deadline = BASE_MICROS + 3600 * SECOND
    await store.commit([timeout("m-1", deadline)])
    far_future = BASE_MICROS * 2
    assert await store.purge(before_micros=far_future) == 1
    assert await store.get(key("m-1")) is None
    assert await store.due_timeouts(far_future, 10) == []
