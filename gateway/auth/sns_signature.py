"""Amazon SNS message signatures: the canonical string, the signing-certificate URL rule, the
checks that need no certificate, and a signer. Fetching and caching the certificates is
:mod:`gateway.auth.sns_certificates`.

SNS signs ``Key\\nValue\\n`` for a fixed list of keys in a fixed order with RSA PKCS#1 v1.5,
SHA-1 for ``SignatureVersion`` 1 and SHA-256 for 2, using the key of the certificate at
``SigningCertURL``. That URL must be exactly ``https://sns.<region>.amazonaws.com/<name>.pem``
(``.amazonaws.com.cn`` for the China regions): no user, port, query or fragment, one path
segment. Any other URL is refused before anything is fetched, which is what stops an attacker
from pointing at their own certificate, or at any other host.
"""

from __future__ import annotations

import base64
import datetime
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

#: An AWS region: ``us-east-1``, ``us-gov-west-1``, ``us-isob-east-1``, ``eu-isoe-west-1``.
REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[1-9][0-9]?"
#: SNS's hosts: China's regions (``cn-*``) under ``amazonaws.com.cn`` only, the others under
#: ``amazonaws.com`` only.
_HOST = rf"sns\.(?:(?!cn-){REGION}\.amazonaws\.com|cn-[a-z]+-[1-9][0-9]?\.amazonaws\.com\.cn)"
SNS_HOST = re.compile(_HOST, re.ASCII)
#: The whole of an acceptable ``SigningCertURL``, character for character.
CERTIFICATE_URL = re.compile(rf"https://{_HOST}/[A-Za-z0-9_-]{{1,128}}\.pem", re.ASCII)
#: Keys signed, in order, for each message type.
SIGNED_KEYS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_KEYS["UnsubscribeConfirmation"] = SIGNED_KEYS["SubscriptionConfirmation"]
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
#: Largest signing certificate accepted (SNS's are about 2 KiB).
MAX_CERTIFICATE_BYTES = 16 * 1024


class SnsError(Exception):
    """The message is not genuine; ``label`` is ``missing`` or ``invalid``."""

    def __init__(self, reason: str, *, label: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label


def is_certificate_url(url: str) -> bool:
    """True for ``https://sns.<region>.amazonaws.com/<name>.pem`` and nothing else."""
    return CERTIFICATE_URL.fullmatch(url) is not None


def is_sns_url(url: str) -> bool:
    """True for an https URL on an SNS host, with no user or port (a ``SubscribeURL``)."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.netloc == parts.hostname
        and SNS_HOST.fullmatch(parts.netloc) is not None
    )


def canonical(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs for ``message`` (keys absent from it are skipped)."""
    keys = SIGNED_KEYS.get(str(message.get("Type")), ())
    text = "".join(f"{key}\n{message[key]}\n" for key in keys if message.get(key) is not None)
    return text.encode("utf-8")


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM certificate; raises SnsError for anything else."""
    if len(pem) > MAX_CERTIFICATE_BYTES:
        raise SnsError("signing certificate is too large")
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise SnsError("signing certificate is not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("signing certificate does not hold an RSA key")
    return key


@dataclass(frozen=True)
class Signed:
    """What :func:`check` found in a message: its certificate URL, signature and hash."""

    certificate_url: str
    signature: bytes
    algorithm: Callable[[], hashes.HashAlgorithm]


def check(message: Mapping[str, Any]) -> Signed:
    """Every check that needs no certificate (run before one is fetched); raises SnsError."""
    signature = message.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise SnsError("no Signature (is raw message delivery on?)", label="missing")
    version = str(message.get("SignatureVersion", "1"))
    algorithm = HASHES.get(version)
    if algorithm is None:
        raise SnsError(f"SignatureVersion {version[:8]!r} is not supported")
    if str(message.get("Type")) not in SIGNED_KEYS:
        raise SnsError(f"Type {str(message.get('Type'))[:32]!r} is not an SNS message type")
    cert_url = message.get("SigningCertURL")
    if not isinstance(cert_url, str) or not is_certificate_url(cert_url):
        raise SnsError(
            "SigningCertURL is not https://sns.<region>.amazonaws.com/<name>.pem exactly"
        )
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except ValueError:
        raise SnsError("Signature is not base64") from None
    return Signed(cert_url, raw_signature, algorithm)


def verify(message: Mapping[str, Any], signed: Signed, key: rsa.RSAPublicKey) -> None:
    """Raises SnsError unless ``signed`` (from :func:`check`) verifies with ``key``."""
    try:
        key.verify(signed.signature, canonical(message), padding.PKCS1v15(), signed.algorithm())
    except InvalidSignature:
        raise SnsError("Signature does not verify with the signing certificate") from None


@functools.lru_cache(maxsize=8)
def private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """A PEM RSA private key, loaded once: loading checks the key, which costs tens of
    milliseconds, and a development gateway signs every sample with the same key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the signing key is not an RSA private key")
    return key


def sign(message: Mapping[str, Any], private_key_pem: bytes) -> str:
    """The base64 ``Signature`` of ``message`` (for tests and ``dlrhub send-sample``)."""
    key = private_key(private_key_pem)
    algorithm = HASHES[str(message.get("SignatureVersion", "1"))]()
    raw = key.sign(canonical(message), padding.PKCS1v15(), algorithm)
    return base64.b64encode(raw).decode("ascii")


def certificate_matching(trusted_dir: Path, private_key_pem: bytes) -> str | None:
    """The file name of the certificate in ``trusted_dir`` whose key pairs with the private
    key, or None."""
    wanted = (
        private_key(private_key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for path in sorted(trusted_dir.glob("*.pem")):
        try:
            public = load_public_key(path.read_bytes())
        except SnsError:
            continue
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if der == wanted:
            return path.name
    return None


def signing_pair(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and its RSA key, both PEM, standing in for SNS's signing
    certificate (development and tests: serve it through the trusted directory)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=20 * 365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
