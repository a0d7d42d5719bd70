"""Amazon SNS message signatures on their own: the canonical string (the recorded vector), the
URL rule for certificates and subscriptions, sign and verify for both versions, and a
certificate store that trusts its directory before it fetches. The provider built on it is
tested in tests/gateway/providers/test_aws_sns.py."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.auth import sns_signature
from tests.conftest import signature_vectors

(VECTOR,) = signature_vectors("aws-sns")
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


@functools.cache
def key_pair() -> tuple[bytes, bytes]:
    return sns_signature.signing_pair("sns.eu-west-1.amazonaws.com (test)")


def message(version: str = "2") -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "m-1",
        "Message": '{"eventType":"TEXT_DELIVERED"}',
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:t",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
    }


class Serve:
    def __init__(self, pem: bytes) -> None:
        self.pem, self.urls = pem, list[str]()

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


def test_the_canonical_string_matches_the_vector() -> None:
    signed = json.loads(VECTOR["body"])
    assert sns_signature.canonical(signed).decode() == VECTOR["string_to_sign"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_message_verifies_and_a_changed_one_does_not(version: str) -> None:
    store = sns_signature.CertificateStore(None, Serve(key_pair()[0]))
    signed = message(version)
    signed["Signature"] = sns_signature.sign(signed, key_pair()[1])
    sns_signature.verify(signed, store)
    with pytest.raises(sns_signature.SnsError, match="does not verify"):
        sns_signature.verify({**signed, "Message": "{}"}, store)


@pytest.mark.parametrize(
    ("change", "label", "reason"),
    [
        ({"Signature": None}, "missing", "no Signature"),
        ({"SignatureVersion": "3"}, "invalid", "SignatureVersion"),
        ({"Type": "Other"}, "invalid", "Type"),
        ({"SigningCertURL": "https://evil.example/c.pem"}, "invalid", "SigningCertURL"),
        ({"Signature": "%%%"}, "invalid", "base64"),
    ],
)
def test_refusals_say_why(change: dict[str, Any], label: str, reason: str) -> None:
    fetch = Serve(key_pair()[0])
    signed = message()
    signed["Signature"] = sns_signature.sign(signed, key_pair()[1])
    with pytest.raises(sns_signature.SnsError, match=reason) as caught:
        sns_signature.verify({**signed, **change}, sns_signature.CertificateStore(None, fetch))
    assert caught.value.label == label


def test_sns_urls() -> None:
    assert sns_signature.is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/c.pem", pem=True)
    assert sns_signature.is_sns_url("https://sns.us-east-1.amazonaws.com/?Action=X", pem=False)
    assert not sns_signature.is_sns_url("https://sns.us-east-1.amazonaws.com/?Action=X", pem=True)
    assert not sns_signature.is_sns_url("http://sns.us-east-1.amazonaws.com/c.pem", pem=True)


def test_the_trusted_directory_comes_before_any_fetch(tmp_path: Path) -> None:
    (tmp_path / "SimpleNotificationService-test.pem").write_bytes(key_pair()[0])
    store = sns_signature.CertificateStore(tmp_path, fetch=None)
    assert store.public_key(CERT_URL) is store.public_key(CERT_URL)
    with pytest.raises(sns_signature.SnsError, match="no trusted certificate"):
        store.public_key("https://sns.eu-west-1.amazonaws.com/other.pem")


def test_a_certificate_that_is_not_pem_is_refused() -> None:
    with pytest.raises(sns_signature.SnsError, match="not a PEM certificate"):
        sns_signature.load_public_key(b"not a certificate")


def test_the_certificate_matching_a_signing_key_is_found(tmp_path: Path) -> None:
    certificate, key = key_pair()
    (tmp_path / "junk.pem").write_bytes(b"junk")
    (tmp_path / "mine.pem").write_bytes(certificate)
    assert sns_signature.certificate_matching(tmp_path, key) == "mine.pem"
    other, _ = sns_signature.signing_pair("someone else")
    (tmp_path / "mine.pem").write_bytes(other)
    assert sns_signature.certificate_matching(tmp_path, key) is None
