"""The status model: unit cases for each rule, and property tests of order independence."""

from __future__ import annotations

import random

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from tests.helpers.reports import BASE_MICROS, histories, registered, report, reports

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
UNDELIVERED = pb.DELIVERY_STATUS_UNDELIVERED
SENT = pb.DELIVERY_STATUS_SENT
QUEUED = pb.DELIVERY_STATUS_QUEUED
ACCEPTED = pb.DELIVERY_STATUS_ACCEPTED
UNKNOWN = pb.DELIVERY_STATUS_UNKNOWN
FAILED = pb.DELIVERY_STATUS_FAILED
NO_REPORT = pb.DELIVERY_STATUS_NO_REPORT
KEY = ("infobip", "", "m-1")


def current(*given: pb.DeliveryReport) -> pb.DeliveryReport:
    return model.fold(given)[model.message_key(given[0])].latest


def test_terminal_beats_a_later_non_terminal() -> None:
    delivered = report(status=DELIVERED, event_offset=10)
    late_sent = report(status=SENT, event_offset=99)
    assert current(delivered, late_sent).status == DELIVERED
    assert current(late_sent, delivered).status == DELIVERED


def test_later_terminal_wins_and_conflict_is_flagged() -> None:
    undelivered = report(status=UNDELIVERED, event_offset=10)
    delivered = report(status=DELIVERED, event_offset=20)
    state = model.fold([delivered, undelivered])[("infobip", "", "m-1")]
    assert state.status == DELIVERED
    assert state.conflict
    assert state.report_count == 2


def test_delivered_wins_a_tie_between_terminal_statuses() -> None:
    failed = report(status=FAILED, event_offset=10, event_id="z")
    delivered = report(status=DELIVERED, event_offset=10, event_id="a")
    assert current(failed, delivered).status == DELIVERED


def test_unknown_is_weakly_terminal() -> None:
    sent = report(status=SENT, event_offset=50)
    unknown = report(status=UNKNOWN, event_offset=10)
    assert current(sent, unknown).status == UNKNOWN
    late_receipt = report(status=UNDELIVERED, event_offset=5)
    assert current(unknown, late_receipt).status == UNDELIVERED
    assert not model.fold([unknown, late_receipt])[("infobip", "", "m-1")].conflict


def test_non_terminal_by_rank_then_time() -> None:
    queued_late = report(status=QUEUED, event_offset=99)
    sent_early = report(status=SENT, event_offset=1)
    accepted = report(status=ACCEPTED, event_offset=100)
    assert current(queued_late, sent_early, accepted).status == SENT


def test_provider_finality_makes_a_report_terminal() -> None:
    final_sent = report(status=SENT, event_offset=5, final=True)
    later_queued = report(status=QUEUED, event_offset=50)
    assert model.status_class(final_sent) == model.TERMINAL_CLASS
    assert current(final_sent, later_queued).status == SENT
    final_unknown = report(status=UNKNOWN, final=True)
    assert model.status_class(final_unknown) == model.WEAK_TERMINAL_CLASS


def test_missing_event_time_falls_back_to_received_time() -> None:
    first = report(status=UNDELIVERED, event_offset=None, received_offset=1, provider_status="x")
    second = report(status=FAILED, event_offset=None, received_offset=2, provider_status="y")
    assert current(first, second).status == FAILED


def test_sequence_orders_reports_with_the_same_time() -> None:
    first = report(status=SENT, sequence=1, provider_status="sent")
    second = report(status=SENT, sequence=2, provider_status="sent")
    assert current(second, first).sequence == 2


def test_dedupe_key_uses_the_provider_event_id_when_present() -> None:
    assert model.dedupe_key(report(event_id="evt-9")) == "evt-9"


def test_dedupe_key_ignores_received_time_but_not_content() -> None:
    one = report(received_offset=1)
    resent = report(received_offset=30)
    assert model.dedupe_key(one) == model.dedupe_key(resent)
    assert model.dedupe_key(one).startswith("sha256:")
    assert model.dedupe_key(one) != model.dedupe_key(report(error_code="20"))
    assert model.dedupe_key(one) != model.dedupe_key(report(event_offset=2))
    assert model.dedupe_key(one) != model.dedupe_key(report(sequence=2))
    assert model.dedupe_key(one) != model.dedupe_key(report(account="eu"))
    assert model.dedupe_key(one) != model.dedupe_key(report(final=True))


def test_order_key_is_fixed_width_before_the_event_id() -> None:
    keys = [
        model.order_key(model.with_event_id(report(status=status)))
        for status in (ACCEPTED, SENT, DELIVERED, UNKNOWN)
    ]
    assert len({key.index("|") for key in keys}) == 1


def test_history_is_oldest_event_first() -> None:
    late = report(status=DELIVERED, event_offset=30)
    early = report(status=SENT, event_offset=10)
    state = model.fold([late, early])[("infobip", "", "m-1")]
    assert [item.status for item in state.history] == [SENT, DELIVERED]


def test_a_registration_alone_reads_as_accepted_without_reports() -> None:
    state = model.fold([registered(client_ref="order-7")])[KEY]
    assert (state.status, state.report_count, state.latest.client_ref) == (ACCEPTED, 0, "order-7")
    assert state.registration is not None
    assert state.report_deadline == BASE_MICROS + 3_600_000_000
    assert state.awaiting_report
    assert dict(state.fields)["client_ref"] == "order-7"
    assert state.country == "CH"


def test_every_real_report_beats_the_registration() -> None:
    accepted = model.with_event_id(report(status=ACCEPTED, event_offset=-100))  # before submit
    for arrivals in ([registered(), accepted], [accepted, registered()]):
        state = model.fold(arrivals)[KEY]
        assert state.latest == accepted
        assert state.report_count == 1
        assert len(state.history) == 2
        assert state.awaiting_report


def test_a_timeout_is_weakly_terminal_and_any_final_report_overrides_it() -> None:
    timeout = model.timeout_entry(KEY, BASE_MICROS + 10, BASE_MICROS + 20)
    sent = report(status=SENT, event_offset=999)
    assert current(registered(), sent, timeout).status == NO_REPORT
    assert model.status_class(timeout) == model.WEAK_TERMINAL_CLASS
    finals = (report(status=DELIVERED, event_offset=-5), report(status=UNKNOWN, event_offset=3))
    for late in map(model.with_event_id, finals):
        state = model.fold([registered(), timeout, late])[KEY]
        assert state.latest == late
        assert state.report_count == 1
        assert not state.awaiting_report
        assert model.final_time(state.latest) == model.effective_time(late)
    assert model.final_time(timeout) is None
    assert model.final_time(registered()) is None


def test_final_time_is_the_time_of_a_final_report() -> None:
    assert model.final_time(report(status=DELIVERED, event_offset=7)) == BASE_MICROS + 7_000_000
    assert model.final_time(report(status=SENT, final=True, event_offset=None)) == BASE_MICROS
    assert model.final_time(report(status=SENT)) is None


def test_country_comes_from_the_number() -> None:
    assert model.country_of("+14155552671") == "US"
    assert model.country_of("whatsapp:+41790000000") == "CH"
    assert model.country_of("+447700900123") == "GB"  # a fictional range: the code's country
    assert model.country_of("+80012345678") == ""  # non-geographic
    assert model.country_of("41790000000") == ""
    assert model.country_of("") == ""


def _distinct(items: list[pb.DeliveryReport]) -> list[pb.DeliveryReport]:
    """Keeps one report per (message, dedupe key): providers never send two different
    reports under one event id; only exact copies repeat."""
    seen: dict[tuple[tuple[str, str, str], str], pb.DeliveryReport] = {}
    for item in items:
        filled = model.with_event_id(item)
        seen.setdefault((model.message_key(filled), filled.event_id), filled)
    return list(seen.values())


def _summary(states: dict[model.MessageKeyTuple, model.MessageState]) -> dict[object, object]:
    return {
        key: (
            state.latest.SerializeToString(deterministic=True),
            state.report_count,
            state.conflict,
            [item.event_id for item in state.history],
            state.registration.SerializeToString() if state.registration else b"",
            state.fields,
            state.awaiting_report,
        )
        for key, state in states.items()
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(reports(), min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_any_permutation_and_duplication_gives_the_fold(
    drawn: list[pb.DeliveryReport], rng: random.Random
) -> None:
    distinct = _distinct(drawn)
    expected = _summary(model.fold(distinct))
    arrivals = distinct + [rng.choice(distinct) for _ in range(rng.randint(0, len(distinct)))]
    rng.shuffle(arrivals)
    assert _summary(model.fold(arrivals)) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(reports(), min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_incremental_max_gives_the_fold(drawn: list[pb.DeliveryReport], rng: random.Random) -> None:
    """What every store does: 'set when the stored key is smaller', one report at a time."""
    distinct = _distinct(drawn)
    arrivals = distinct + [rng.choice(distinct) for _ in range(rng.randint(0, len(distinct)))]
    rng.shuffle(arrivals)
    seen: set[tuple[model.MessageKeyTuple, str]] = set()
    current_keys: dict[model.MessageKeyTuple, str] = {}
    stored = stale = duplicates = 0
    for item in arrivals:
        key = model.message_key(item)
        if (key, item.event_id) in seen:
            duplicates += 1
            continue
        seen.add((key, item.event_id))
        order = model.order_key(item)
        if order > current_keys.get(key, ""):
            current_keys[key] = order
            stored += 1
        else:
            stale += 1
    folded = model.fold(distinct)
    assert current_keys == {key: state.order_key for key, state in folded.items()}
    assert stored + stale == len(distinct)
    assert duplicates == len(arrivals) - len(distinct)


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_registrations_and_reports_merge_in_any_order(
    distinct: list[pb.DeliveryReport], rng: random.Random
) -> None:
    """Any interleaving of registrations, repeated registrations and reports gives one fold:
    the same current entry, counts, history, registration and filled fields."""
    expected = _summary(model.fold(distinct))
    arrivals = distinct + [rng.choice(distinct) for _ in range(rng.randint(0, len(distinct)))]
    rng.shuffle(arrivals)
    assert _summary(model.fold(arrivals)) == expected


def parsed_country(recipient: str) -> str:
    """The country by libphonenumber's full parse (what country_of answers)."""
    number = recipient.rpartition(":")[2]
    if not number.startswith("+"):
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(
        parsed
    ) or phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return region if len(region) == 2 and region.isalpha() else ""


CALLING_CODES = sorted(COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=3000)
@given(
    st.sampled_from(["", "whatsapp:"]),
    st.sampled_from([*CALLING_CODES, 0, 999]),
    st.text("0123456789", max_size=20),
)
def test_country_of_answers_what_the_full_parse_answers(prefix: str, code: int, rest: str) -> None:
    """The shortcut for calling codes of one region agrees with the full parse, at every
    length of the national part and for codes of several regions or none."""
    recipient = f"{prefix}+{code}{rest}"
    assert model.country_of.__wrapped__(recipient) == parsed_country(recipient)


@settings(max_examples=3000)
@given(
    st.sampled_from([code for code in CALLING_CODES if len(COUNTRY_CODE_TO_REGION_CODE[code]) > 1]),
    st.text("0123456789", min_size=3, max_size=15),
)
def test_country_of_codes_of_several_regions_answers_what_the_full_parse_answers(
    code: int, rest: str
) -> None:
    """Numbers built from their parts for NANP (+1), +7, +44 and the other shared codes:
    the regions' ranges decide as after a parse, national prefixes and zeros included."""
    recipient = f"+{code}{rest}"
    assert model.country_of.__wrapped__(recipient) == parsed_country(recipient)


@given(st.text(max_size=24))
def test_country_of_any_text_answers_what_the_full_parse_answers(text: str) -> None:
    for recipient in (text, "+" + text):
        assert model.country_of.__wrapped__(recipient) == parsed_country(recipient)
