"""Every provider's verifier and parser under hostile input: only expected errors (never a
crash), every emitted report acceptable to statusd, nothing accepted without credentials."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Malformed, WebhookError
from gateway.providers import PROVIDERS
from gateway.providers.base import InvalidItem, Parsed, Provider
from gateway.providers.credentials import Credentials
from statusd.service import checked_report
from tests.fuzz.strategies import FUZZ, hostile_body, hostile_headers, json_values
from tests.gateway.provider_cases import ProviderContract, contracts_of
from tests.gateway.providers import test_aws_sns
from tests.helpers.requests import from_sample, inbound

#: How each provider's tests make credentials and endpoints: every contract class of every
#: provider's test module, by ``<provider>/<contract class>``.
CONTRACTS: dict[str, type[ProviderContract]] = {
    f"{name}/{contract.__name__}": contract for name in PROVIDERS for contract in contracts_of(name)
}
URL = "https://dlr.example.com/webhooks/{name}"
NOW = 1_767_225_600_000_000
TRUST_STORE = Path(tempfile.mkdtemp(prefix="dlrhub-fuzz-sns-"))


def test_every_provider_is_fuzzed() -> None:
    assert {key.partition("/")[0] for key in CONTRACTS} == set(PROVIDERS)


def endpoints(name: str) -> tuple[ProviderContract, Provider, Provider]:
    contract = CONTRACTS[name]()
    if isinstance(contract, test_aws_sns.TestAwsSnsContract):  # needs its trust store
        certificate, key = test_aws_sns.key_pair()
        (TRUST_STORE / test_aws_sns.CERT_NAME).write_bytes(certificate)
        contract.cert_dir = TRUST_STORE
        contract.key = key.decode()
    secured = contract.build("", contract.credentials("fuzz-secret"))
    empty: Credentials = contract.provider.credentials_class()
    return contract, secured, contract.build("", empty, insecure=True)


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
    contract, secured, insecure = endpoints(name)
    sample = secured.sample(URL.format(name=contract.provider.name), "fuzz-1", "delivered")
    body = data.draw(hostile_body(sample), label="body")
    headers = data.draw(hostile_headers(sample), label="headers")
    method = data.draw(st.sampled_from(["POST", "POST", "GET"]), label="method")
    try:
        request = inbound(sample.url, method=method, headers=headers, body=body)
    except Malformed:
        return  # answered 400 before any provider code runs
    outcome(secured, request)
    outcome(insecure, request)
    # Without credentials nothing is ever accepted, however the rest was mangled.
    try:
        unsigned = contract.unsigned(request)
    except (ValueError, TypeError, KeyError, RecursionError):
        return  # the mangled body has no signature field left to remove
    assert not isinstance(outcome(secured, unsigned), Parsed)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@FUZZ
@given(raw=st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_quarantine_replay_of_anything(name: str, raw: str) -> None:
    _, _, insecure = endpoints(name)
    try:
        report = insecure.parse_item(raw)
    except InvalidItem:
        return
    report.provider = insecure.name
    checked_report(report, 0, NOW)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_unmutated_sample_is_accepted(name: str) -> None:
    _, secured, _ = endpoints(name)
    sample = secured.sample(URL.format(name=secured.name), "fuzz-1", "delivered")
    parsed = outcome(secured, from_sample(sample))
    assert isinstance(parsed, Parsed)
    assert parsed.reports
