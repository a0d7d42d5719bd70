"""Amazon SNS message signatures: the canonical string, the signing-certificate URL rule, a
certificate store that looks in a trusted directory before it fetches, and a signer.

SNS signs ``Key\\nValue\\n`` for a fixed list of keys in a fixed order with RSA PKCS#1 v1.5,
SHA-1 for ``SignatureVersion`` 1 and SHA-256 for 2, using the key of the certificate at
``SigningCertURL``. That URL must be https on ``sns.<region>.amazonaws.com`` (``.com.cn`` in
China) and name a ``.pem`` file; any other URL is refused before anything is fetched, which is
what stops an attacker from pointing at their own certificate.
"""

from __future__ import annotations

import base64
import datetime
import functools
import re
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

#: Hosts SNS signing certificates and subscription URLs may come from.
SNS_HOST = re.compile(r"^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$")
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
FETCH_TIMEOUT_SECONDS = 3.0
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED = 64

Fetcher = Callable[[str], bytes]


class SnsError(Exception):
    """The message is not genuine; ``label`` is ``missing`` or ``invalid``."""

    def __init__(self, reason: str, *, label: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label


class CertificateUnavailable(Exception):
    """The signing certificate could not be fetched; SNS should retry later."""


def is_sns_url(url: str, *, pem: bool) -> bool:
    """True for ``https://sns.<region>.amazonaws.com/...`` (ending ``.pem`` when ``pem``)."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.port is None
        and not parts.username
        and SNS_HOST.fullmatch(parts.hostname or "") is not None
        and (not pem or parts.path.endswith(".pem"))
    )


def canonical(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs for ``message`` (keys absent from it are skipped)."""
    keys = SIGNED_KEYS.get(str(message.get("Type")), ())
    text = "".join(f"{key}\n{message[key]}\n" for key in keys if message.get(key) is not None)
    return text.encode("utf-8")


def fetch_https(url: str) -> bytes:
    """GETs a certificate or confirms a subscription (the caller checked the URL)."""
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        data: bytes = response.read(MAX_CERTIFICATE_BYTES + 1)
    return data


class CertificateStore:
    """Signing certificates' public keys by URL: cached, read from ``trusted_dir`` (a file
    named like the URL's last path segment) before anything is fetched with ``fetch``."""

    def __init__(self, trusted_dir: Path | None, fetch: Fetcher | None = fetch_https) -> None:
        self.trusted_dir = trusted_dir
        self.fetch = fetch
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        cached = self._keys.get(url)
        if cached is not None:
            return cached
        pem = self._trusted(url)
        if pem is None:
            if self.fetch is None:
                raise SnsError(f"no trusted certificate for {url}")
            try:
                pem = self.fetch(url)
            except OSError as exc:
                raise CertificateUnavailable(f"cannot fetch {url}: {exc}") from None
        key = load_public_key(pem)
        if len(self._keys) >= MAX_CACHED:
            self._keys.pop(next(iter(self._keys)))
        self._keys[url] = key
        return key

    def _trusted(self, url: str) -> bytes | None:
        if self.trusted_dir is None:
            return None
        name = PurePosixPath(urlsplit(url).path).name
        path = self.trusted_dir / name
        return path.read_bytes() if name and path.is_file() else None


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


def verify(message: Mapping[str, Any], store: CertificateStore) -> None:
    """Raises SnsError unless ``message`` carries a valid SNS signature."""
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
    if not isinstance(cert_url, str) or not is_sns_url(cert_url, pem=True):
        raise SnsError("SigningCertURL is not an https .pem URL on sns.<region>.amazonaws.com")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except ValueError:
        raise SnsError("Signature is not base64") from None
    key = store.public_key(cert_url)
    try:
        key.verify(raw_signature, canonical(message), padding.PKCS1v15(), algorithm())
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
