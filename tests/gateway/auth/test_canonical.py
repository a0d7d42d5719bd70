"""Parameters a signature cannot tell apart: separators in joined strings, re-splits of
name-then-value concatenations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.canonical import PROVIDER_NAME, concatenation_problem, separators_in

DECISIVE = frozenset({"Status", "ErrorCode", "MessageUUID", "ParentMessageUUID"})
KNOWN = DECISIVE | {"From", "To"}
GENUINE = (
    ("ErrorCode", "80"),
    ("From", "14155550000"),
    ("MessageUUID", "m-1"),
    ("ParentMessageUUID", "m-1"),
    ("Status", "undelivered"),
    ("To", "14155551234"),
)


def test_separators_in_names_and_values() -> None:
    assert separators_in([("err-code", "6"), ("status", "a&b")], "&=") == ""
    assert "contains '&'" in separators_in([("err-code=6&message-timestamp", "x")], "&=")
    assert "value 'a&b'" in separators_in([("status", "a&b")], "&=", "&")
    assert separators_in([("token", "YWJj==")], "&=", "&") == ""  # splits at the first "="
    assert separators_in([("count", 6)], "&=", "&") == ""  # only strings carry them


def test_a_genuine_concatenation_has_no_problem() -> None:
    assert concatenation_problem("https://h/p?", GENUINE, DECISIVE, KNOWN) == ""


def _resplit(dropped: str, *added: tuple[str, str]) -> list[tuple[str, str]]:
    return sorted([*(pair for pair in GENUINE if pair[0] != dropped), *added])


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        (_resplit("ErrorCode", ("ErrorCode8", "0")), "ErrorCode appears"),
        (_resplit("ErrorCode", ("Error", "Code80")), "ErrorCode appears"),
        (_resplit("Status", ("Status", "un"), ("deliveredTo", "1")), "not a provider parameter"),
        (_resplit("ErrorCode", ("ErrorCode", "80From1")), "ErrorCode contains the parameter"),
        (_resplit("From", ("From", "1MessageUUIDm-2")), "MessageUUID appears"),
        ([*GENUINE, ("X", "Status")], "Status appears"),
    ],
)
def test_re_splits_touching_a_decisive_field_are_refused(
    pairs: list[tuple[str, str]], reason: str
) -> None:
    assert reason in concatenation_problem("", pairs, DECISIVE, KNOWN)


def test_a_decisive_name_inside_another_decisive_name_is_its_own() -> None:
    # MessageUUID inside ParentMessageUUID is that parameter's name, not a re-split.
    assert concatenation_problem("", [("ParentMessageUUID", "p")], DECISIVE, KNOWN) == ""


def test_a_decisive_name_in_the_prefix_is_refused() -> None:
    problem = concatenation_problem("https://h/p?x=1Status", GENUINE[:1], DECISIVE, KNOWN)
    assert "Status appears" in problem


def test_a_decisive_value_holding_any_known_name_is_refused_and_no_names_refuse_nothing() -> None:
    for name in sorted(KNOWN):
        pairs = [("Status", f"delivered{name}1")]
        assert f"Status contains the parameter name {name}" in concatenation_problem(
            "", pairs, DECISIVE, frozenset({name})
        )
    assert concatenation_problem("", [("Status", "deliveredFrom1")], DECISIVE, frozenset()) == ""
    # Every occurrence counts, not only the first: the second Status here is a re-split.
    pairs = [("Status", "x"), ("X", "yStatus")]
    assert "Status appears" in concatenation_problem("", pairs, DECISIVE, KNOWN)


@pytest.mark.parametrize("name", ["deliveredTo", "0007", "Error\nCode", "To\n", "", "Ünit", "A-B"])
def test_any_name_that_is_not_provider_style_is_named(name: str) -> None:
    pairs = [*GENUINE[:2], (name, "1"), *GENUINE[2:]]
    assert concatenation_problem("", pairs, DECISIVE, KNOWN) == (
        f"parameter name {name!r} is not a provider parameter name"
    )


def _problem_by_the_definition(
    prefix: str, pairs: list[tuple[str, str]], decisive: frozenset[str], known: frozenset[str]
) -> bool:
    """The refusal rule read straight from the docstring, slowly: a non-provider name, a
    decisive value holding a known name, or a decisive name outside every decisive span."""
    if any(not PROVIDER_NAME.fullmatch(name) for name, _ in pairs):
        return True
    if any(k in value for name, value in pairs if name in decisive for k in known if k):
        return True
    text = prefix + "".join(name + value for name, value in pairs)
    spans, position = [], len(prefix)
    for name, value in pairs:
        if name in decisive:
            spans.append((position, position + len(name)))
        position += len(name) + len(value)
    for field in decisive:
        found = text.find(field)
        while found >= 0:
            end = found + len(field)
            if not any(start <= found and end <= stop for start, stop in spans):
                return True
            found = text.find(field, end)
    return False


_PIECES = st.sampled_from(
    ["Status", "Error", "Code", "ErrorCode", "Message", "UUID", "To", "80", "x"]
)


@given(
    st.lists(
        st.tuples(
            st.lists(_PIECES, min_size=1, max_size=3).map("".join),
            st.lists(_PIECES, max_size=3).map("".join),
        ),
        max_size=6,
    ),
    st.sampled_from(["", "a=1", "Status=1"]),
)
def test_every_refusal_follows_the_definition(pairs: list[tuple[str, str]], prefix: str) -> None:
    found = concatenation_problem(prefix, pairs, DECISIVE, KNOWN)
    assert bool(found) == _problem_by_the_definition(prefix, pairs, DECISIVE, KNOWN)
