"""``dlrhub send-sample``: a correctly signed sample webhook, sent to any URL.

It signs with the credentials configured for the provider (the ``DLRHUB_<PROVIDER>_*``
variables, or ``var/dev.env`` in development), exactly as the provider would, so a user
can check a deployment end to end: gateway, signature, statusd, store.
"""

from __future__ import annotations

import shlex
import sys
import urllib.error
import urllib.request
import uuid

from dlrhub_common.settings import load
from gateway.providers import PROVIDERS
from gateway.providers.base import SampleUnavailable


class SampleError(Exception):
    """The sample could not be built or sent."""


def send_sample(
    provider: str, url: str, *, account: str = "", message_id: str = "", status: str = "delivered"
) -> tuple[int, str, str]:
    """Sends one sample; returns (HTTP status, answer body, message id)."""
    provider_class = PROVIDERS.get(provider)
    if provider_class is None:
        raise SampleError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    settings = load(provider_class.settings_class)
    accounts = settings.account_credentials()
    if account not in accounts:
        raise SampleError(f"no account {account!r} configured for {provider}")
    credentials = accounts[account]
    if not credentials.configured():
        raise SampleError(
            f"no credentials configured for {provider}: set "
            f"DLRHUB_{provider.upper().replace('-', '_')}_* "
            "(or run `dlrhub run` once to generate development ones)"
        )
    message_id = message_id or f"sample-{uuid.uuid4().hex[:12]}"
    try:
        sample = provider_class(account, credentials).sample(url, message_id, status)
    except SampleUnavailable as exc:
        raise SampleError(str(exc)) from None
    message_id = sample.message_id or message_id
    request = urllib.request.Request(  # noqa: S310 - the user names the URL
        sample.url, data=sample.body, headers=sample.headers, method=sample.method
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8", "replace"), message_id
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), message_id
    except urllib.error.URLError as exc:
        raise SampleError(f"cannot reach {url}: {exc.reason}") from None


def main(provider: str, url: str, *, account: str, message_id: str, status: str) -> int:
    try:
        code, body, sent_id = send_sample(
            provider, url, account=account, message_id=message_id, status=status
        )
    except SampleError as exc:
        print(f"dlrhub send-sample: {exc}", file=sys.stderr)
        return 2
    print(f"sent {provider} report for message {sent_id} ({status}) to {url}")
    print(f"HTTP {code} {body.strip()}")
    if not 200 <= code < 300:
        return 1
    print(f"read its status: {status_command(provider, sent_id, account)}")
    return 0


def status_command(provider: str, message_id: str, account: str = "") -> str:
    """The ``dlrhub status get`` that reads a message back: with ``--target`` when statusd is
    not where ``dlrhub status`` looks by default (the gateway's statusd settings say where)."""
    from gateway.settings import GatewaySettings

    settings = load(GatewaySettings)
    fields = GatewaySettings.model_fields
    words = ["dlrhub", "status", "get", provider, message_id]
    if account:
        words += ["--account", account]
    default = f"{fields['statusd_host'].default}:{fields['statusd_port'].default}"
    if settings.grpc_target != default:
        words += ["--target", settings.grpc_target]
    return shlex.join(words)
