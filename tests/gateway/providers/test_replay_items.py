"""``parse_item``: a quarantined item parsed again with today's code (quarantine replay),
for every provider added with the provider breadth work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from dlrhub_common.status_names import status_label
from gateway.providers import PROVIDERS
from gateway.providers.base import InvalidItem, SampleRequest
from tests.gateway.provider_cases import ProviderContract, contracts_of
from tests.gateway.providers import test_aws_sns

#: Providers whose quarantined item is not the whole body or parameter set: Infobip
#: quarantines one ``results[]`` entry (its replay is tested in test_infobip.py).
ITEM_PER_ENTRY = frozenset({"infobip"})
#: Each provider's first contract class.
CONTRACTS: dict[str, type[ProviderContract]] = {
    name: contracts_of(name)[0] for name in PROVIDERS if name not in ITEM_PER_ENTRY
}


def quarantined_form(sample: SampleRequest) -> str:
    """What a provider quarantines for a sample: its JSON body, or its parameters as JSON."""
    if sample.method == "GET":
        return json.dumps(dict(parse_qsl(urlsplit(sample.url).query)))
    if sample.headers.get("Content-Type") == "application/x-www-form-urlencoded":
        return json.dumps(dict(parse_qsl(sample.body.decode())))
    return sample.body.decode()


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_quarantined_item_replays(name: str, tmp_path: Path) -> None:
    contract = CONTRACTS[name]()
    if isinstance(contract, test_aws_sns.TestAwsSnsContract):
        certificate, key = test_aws_sns.key_pair()
        (tmp_path / test_aws_sns.CERT_NAME).write_bytes(certificate)
        contract.cert_dir, contract.key = tmp_path, key.decode()
    # parse_item is each provider's own here; main's Provider declares it abstract.
    endpoint: Any = contract.endpoint("secret-one")
    message_id = contract.sample_id("delivered")
    sample = endpoint.sample(contract.url, message_id, "delivered")
    report = endpoint.parse_item(quarantined_form(sample))
    assert (report.message_id, status_label(report.status)) == (message_id, "delivered")
    for garbage in ("not json", "[]", "{}", '{"data": 1, "payload": 2, "type": 3}'):
        with pytest.raises(InvalidItem):
            endpoint.parse_item(garbage)
