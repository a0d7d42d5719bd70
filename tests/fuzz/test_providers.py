"""Every provider's verifier and parser under hostile input: only expected errors (never a
crash), every emitted report acceptable to statusd, nothing accepted without credentials."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Malformed, Unauthenticated, WebhookError
from gateway.providers import PROVIDERS
from gateway.providers.base import Credentials, InvalidItem, Parsed, Provider
from statusd.service import checked_report
from tests.fuzz.strategies import FUZZ, hostile_body, hostile_headers, json_values
from tests.gateway.provider_cases import ProviderContract
from tests.gateway.providers import test_infobip, test_plivo
from tests.helpers.requests import from_sample, inbound

#: How each provider's tests make credentials (one contract class per provider).
CONTRACTS: dict[str, type[ProviderContract]] = {
    "infobip": test_infobip.TestHmacContract,
    "plivo": test_plivo.TestPlivoV3Contract,
}
URL = "https://dlr.example.com/webhooks/{name}"
NOW = 1_767_225_600_000_000


def test_every_provider_is_fuzzed() -> None:
    assert set(CONTRACTS) == set(PROVIDERS)


def endpoints(name: str) -> tuple[Provider, Provider]:
    contract = CONTRACTS[name]()
    provider_class = PROVIDERS[name]
    secured = provider_class("", contract.credentials("fuzz-secret"))
    empty: Credentials = provider_class.settings_class.credentials_class()
    return secured, provider_class("", empty, insecure=True)


def assert_acceptable(parsed: Parsed) -> None:
    """What statusd would accept, and quarantine entries that say why."""
    for index, report in enumerate(parsed.reports):
        checked_report(report, index, NOW)
    for item in parsed.quarantined:
        assert item.reason
        assert item.provider


def outcome(endpoint: Provider, request: object) -> Parsed | WebhookError:
    try:
        parsed = endpoint.handle(request)  # type: ignore[arg-type]
    except WebhookError as exc:
        return exc
    assert_acceptable(parsed)
    return parsed


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@FUZZ
@given(data=st.data())
def test_hostile_requests(name: str, data: st.DataObject) -> None:
    secured, insecure = endpoints(name)
    sample = secured.sample(URL.format(name=name), "fuzz-1", "delivered")
    body = data.draw(hostile_body(sample), label="body")
    headers = data.draw(hostile_headers(sample), label="headers")
    method = data.draw(st.sampled_from(["POST", "POST", "GET"]), label="method")
    try:
        request = inbound(sample.url, method=method, headers=headers, body=body)
    except Malformed:
        return  # answered 400 before any provider code runs
    outcome(secured, request)
    outcome(insecure, request)
    stripped = {key: value for key, value in headers.items() if key.lower() == "content-type"}
    unsigned = dataclasses.replace(
        request,
        url=URL.format(name=name),
        query=(),
        headers={key.lower(): value for key, value in stripped.items()},
    )
    assert isinstance(outcome(secured, unsigned), Unauthenticated)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@FUZZ
@given(raw=st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_quarantine_replay_of_anything(name: str, raw: str) -> None:
    _, insecure = endpoints(name)
    try:
        report = insecure.parse_item(raw)
    except InvalidItem:
        return
    report.provider = name
    checked_report(report, 0, NOW)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_unmutated_sample_is_accepted(name: str) -> None:
    secured, _ = endpoints(name)
    sample = secured.sample(URL.format(name=name), "fuzz-1", "delivered")
    parsed = outcome(secured, from_sample(sample))
    assert isinstance(parsed, Parsed)
    assert parsed.reports
