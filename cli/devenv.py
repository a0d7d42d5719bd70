"""``var/dev.env``: credentials for local development, generated once and reused.

``dlrhub run`` writes it when no provider credentials are configured, so a fresh checkout
gets signed webhooks working at once; every ``dlrhub`` command reads it for variables the
environment does not set, so ``dlrhub send-sample`` signs with the same secrets.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping, MutableMapping
from pathlib import Path

DEV_ENV = Path("var/dev.env")


def has_provider_credentials() -> bool:
    """True when the environment configures credentials for some provider account."""
    from common.settings import load as load_settings
    from gateway.providers import PROVIDERS

    for provider in PROVIDERS.values():
        settings = load_settings(provider.settings_class)
        if any(creds.configured() for creds in settings.account_credentials().values()):
            return True
    return False


def generate(directory: Path = DEV_ENV.parent) -> dict[str, str]:
    """Fresh development credentials for every provider. Telnyx and AWS SNS sign with keys
    only the provider holds, so development gets its own key pairs: a Telnyx Ed25519 key,
    and a self-signed SNS certificate written to ``<directory>/aws-sns/`` (trusted through
    ``DLRHUB_AWS_SNS_CERT_DIR``) whose key ``dlrhub send-sample`` signs with."""
    from gateway.providers import sns
    from gateway.providers.telnyx import public_key_of

    telnyx_seed = secrets.token_bytes(32)
    sns_dir = directory / "aws-sns"
    sns_dir.mkdir(parents=True, exist_ok=True)
    certificate, key = sns.signing_pair("sns.us-east-1.amazonaws.com (dlrhub development)")
    (sns_dir / "SimpleNotificationService-dlrhub-dev.pem").write_bytes(certificate)
    key_path = sns_dir / "signing-key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return {
        "DLRHUB_INFOBIP_BASIC_AUTH": f"dev:{secrets.token_urlsafe(18)}",
        "DLRHUB_INFOBIP_HMAC_SECRET": secrets.token_urlsafe(24),
        "DLRHUB_PLIVO_AUTH_TOKEN": secrets.token_urlsafe(24),
        "DLRHUB_TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "DLRHUB_VONAGE_SIGNATURE_SECRET": secrets.token_urlsafe(24),
        "DLRHUB_VONAGE_SIGNATURE_METHOD": "sha256",
        "DLRHUB_VONAGE_MESSAGES_SIGNATURE_SECRET": secrets.token_urlsafe(24),
        "DLRHUB_SINCH_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "DLRHUB_TELNYX_PUBLIC_KEY": public_key_of(telnyx_seed),
        "DLRHUB_TELNYX_SAMPLE_SIGNING_KEY": base64.b64encode(telnyx_seed).decode("ascii"),
        "DLRHUB_BIRD_SIGNING_KEY": secrets.token_urlsafe(24),
        "DLRHUB_MESSAGEBIRD_SIGNING_KEY": secrets.token_urlsafe(24),
        "DLRHUB_AWS_SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:000000000000:dlrhub-dev",
        "DLRHUB_AWS_SNS_CERT_DIR": str(sns_dir),
        "DLRHUB_AWS_SNS_SAMPLE_SIGNING_KEY_FILE": str(key_path),
        "DLRHUB_STANDARD_WEBHOOKS_SECRET": "whsec_"
        + base64.b64encode(secrets.token_bytes(24)).decode("ascii"),
    }


def read(path: Path = DEV_ENV) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def write(values: Mapping[str, str], path: Path = DEV_ENV) -> None:
    """Writes an env file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Development credentials written by `dlrhub run`. Not for production."]
    lines += [f"{key}={value}" for key, value in values.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def ensure(path: Path = DEV_ENV) -> bool:
    """When the environment configures no provider, creates ``path`` (once) and loads it
    into ``os.environ``. Returns True when development credentials are in use."""
    if has_provider_credentials():
        return False
    if not path.exists():
        write(generate(path.parent), path)
    load(os.environ, path)
    return True


def load(environ: MutableMapping[str, str], path: Path = DEV_ENV) -> None:
    """Adds the file's variables that ``environ`` does not set yet."""
    for key, value in read(path).items():
        environ.setdefault(key, value)


def load_if_present(path: Path = DEV_ENV) -> None:
    """Loads ``path`` into ``os.environ`` when it exists and nothing configures a provider."""
    if path.exists() and not has_provider_credentials():
        load(os.environ, path)
