"""Amazon SNS message signatures on their own: the canonical string (the recorded vector), the
URL rule for certificates and subscriptions, the checks before any certificate, sign and
verify for both versions. Certificates are tests/gateway/auth/test_sns_certificates.py; the
provider built on both is tested in tests/gateway/providers/test_aws_sns.py (with the whole
table of certificate URLs)."""

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


def test_the_canonical_string_matches_the_vector() -> None:
    signed = json.loads(VECTOR["body"])
    assert sns_signature.canonical(signed).decode() == VECTOR["string_to_sign"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_message_verifies_and_a_changed_one_does_not(version: str) -> None:
    key = sns_signature.load_public_key(key_pair()[0])
    signed = message(version)
    signed["Signature"] = sns_signature.sign(signed, key_pair()[1])
    sns_signature.verify(signed, sns_signature.check(signed), key)
    changed = {**signed, "Message": "{}"}
    with pytest.raises(sns_signature.SnsError, match="does not verify"):
        sns_signature.verify(changed, sns_signature.check(changed), key)


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
def test_refusals_before_any_certificate_say_why(
    change: dict[str, Any], label: str, reason: str
) -> None:
    signed = message()
    signed["Signature"] = sns_signature.sign(signed, key_pair()[1])
    with pytest.raises(sns_signature.SnsError, match=reason) as caught:
        sns_signature.check({**signed, **change})
    assert caught.value.label == label


def test_sns_urls() -> None:
    assert sns_signature.is_certificate_url("https://sns.cn-north-1.amazonaws.com.cn/c.pem")
    assert sns_signature.is_sns_url("https://sns.us-east-1.amazonaws.com/?Action=X")
    assert not sns_signature.is_certificate_url("https://sns.us-east-1.amazonaws.com/?Action=X")
    assert not sns_signature.is_certificate_url("http://sns.us-east-1.amazonaws.com/c.pem")
    for elsewhere in (
        "http://sns.us-east-1.amazonaws.com/?Action=X",
        "https://user@sns.us-east-1.amazonaws.com/?Action=X",
        "https://sns.us-east-1.amazonaws.com:8443/?Action=X",
        "https://sns.us-east-1.amazonaws.com.evil.example/?Action=X",
        "https://sns.cn-north-1.amazonaws.com/?Action=X",
    ):
        assert not sns_signature.is_sns_url(elsewhere), elsewhere


def test_a_certificate_that_is_too_large_is_refused() -> None:
    with pytest.raises(sns_signature.SnsError, match="too large"):
        sns_signature.load_public_key(b"x" * (sns_signature.MAX_CERTIFICATE_BYTES + 1))


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
