"""The store contract for the receipts a commit returns (the receipt latency's input), on
every backend: one per registered message whose final report became current in the batch,
or that was registered in it after its final report, with the message's provider, country,
submit time and final time as the batch left them; none for anything else. Any batching of
any history returns exactly what reading the messages back after each commit would say."""

# Covers statusd/storage/base.py (Receipt, Committed)

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.base import STALE, STORED, Outcome, Receipt, Store
from tests.helpers.reports import BASE_MICROS, filled, histories, key, registered, report

SECOND = 1_000_000
SENT = pb.DELIVERY_STATUS_SENT
_EXAMPLES = itertools.count()


def receipt(final_offset: int, submit_offset: int = 0, country: str = "CH") -> Receipt:
    return Receipt(
        "infobip",
        country,
        BASE_MICROS + submit_offset * SECOND,
        BASE_MICROS + final_offset * SECOND,
    )


async def test_a_final_report_of_a_registered_message_is_a_receipt(store: Store) -> None:
    await store.commit([registered(submit_offset=-30)])
    (delivered,) = filled(report(event_offset=60))
    committed = await store.commit_batch([delivered])
    assert committed.outcomes == [STORED]
    assert committed.receipts == [receipt(60, submit_offset=-30)]
    assert (await store.commit_batch([delivered])).receipts == []  # a duplicate: none


async def test_a_registration_after_the_final_report_is_a_receipt(store: Store) -> None:
    (delivered,) = filled(report(event_offset=90, recipient=""))
    assert (await store.commit_batch([delivered])).receipts == []  # not registered yet
    committed = await store.commit_batch([registered(submit_offset=10)])
    assert committed.outcomes == [STALE]
    assert committed.receipts == [receipt(90, submit_offset=10)]  # the registration's country


async def test_no_receipt_without_a_registration_or_a_final_report(store: Store) -> None:
    (unregistered,) = filled(report("m-2", event_offset=60))
    assert (await store.commit_batch([unregistered])).receipts == []
    assert (await store.commit_batch([registered()])).receipts == []
    (sent,) = filled(report(status=SENT, event_offset=30))
    assert (await store.commit_batch([sent])).receipts == []  # not final
    (delivered, older) = filled(
        report(event_offset=60), report(status=pb.DELIVERY_STATUS_UNDELIVERED, event_offset=5)
    )
    assert (await store.commit_batch([delivered])).receipts == [receipt(60)]
    committed = await store.commit_batch([older])
    assert (committed.outcomes, committed.receipts) == ([STALE], [])  # final, not current


async def test_one_receipt_per_message_and_batch_as_the_batch_left_it(store: Store) -> None:
    (first, second) = filled(
        report("m-1", event_offset=60), report("m-1", event_offset=70, provider_status="later")
    )
    entries = [first, registered("m-1", submit_offset=5), second]
    committed = await store.commit_batch(entries)
    assert committed.outcomes == [STORED, STALE, STORED]
    assert committed.receipts == [receipt(70, submit_offset=5)]
    (other,) = filled(report("m-3", event_offset=20))
    committed = await store.commit_batch([registered("m-3", submit_offset=2), other])
    assert committed.receipts == [receipt(20, submit_offset=2)]


async def read_back(
    store: Store, entries: Sequence[pb.DeliveryReport], outcomes: Sequence[Outcome]
) -> set[Receipt]:
    """What reading the messages back after a commit says (receipt latency's former way)."""
    finals: dict[model.MessageKeyTuple, int | None] = {}
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome == STORED and model.final_time(entry) is not None:
            finals[model.message_key(entry)] = model.final_time(entry)
        elif outcome == STALE and model.is_registration(entry):
            finals[model.message_key(entry)] = None
    expected: set[Receipt] = set()
    for (provider, account, message_id), became_final in finals.items():
        status = await store.get(key(message_id, provider, account))
        assert status is not None
        final = became_final
        if final is None and status.HasField("final_time"):
            final = model.micros(status.final_time)
        if status.HasField("submit_time") and final is not None:
            expected.add(Receipt(provider, status.country, model.micros(status.submit_time), final))
    return expected


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
async def test_any_batching_returns_what_a_read_back_says(
    store: Store, data: st.DataObject
) -> None:
    """Registrations and reports of a few messages, repeated, in any order and batching."""
    prefix = f"r{next(_EXAMPLES)}-"
    distinct = data.draw(histories(tuple(prefix + name for name in ("m-1", "m-2"))))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    arrivals = distinct + [rng.choice(distinct) for _ in range(rng.randint(0, len(distinct)))]
    rng.shuffle(arrivals)
    size = rng.randint(1, 4)
    for start in range(0, len(arrivals), size):
        batch = arrivals[start : start + size]
        committed = await store.commit_batch(batch)
        assert len(committed.receipts) == len(set(committed.receipts))
        assert set(committed.receipts) == await read_back(store, batch, committed.outcomes)
