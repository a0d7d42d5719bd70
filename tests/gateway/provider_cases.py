"""The contract every provider module must meet, as a base class its tests inherit.

A provider's test class subclasses :class:`ProviderContract` (or
:class:`TimestampedProviderContract` when the provider signs a time), sets ``provider`` and
implements the three hooks; it inherits the cases for good, wrong, missing and rotated
credentials, tampering, stamping and the ``send-sample`` round trip, and adds its own
recorded payloads and status tables.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import load
from dlrhub_common.status_names import status_label
from gateway.errors import Unauthenticated, WebhookError
from gateway.providers.base import InboundRequest, Provider
from gateway.providers.credentials import Credentials
from tests.helpers.requests import RECEIVED_MICROS, from_sample

URL = "https://dlr.example.com/webhooks/{provider}"


class ProviderContract(abc.ABC):
    """Cases every provider inherits. Hooks: credentials, signed_request, tampered."""

    provider: ClassVar[type[Provider]]
    #: Canonical statuses ``sample()`` must round-trip through ``parse()``.
    sample_statuses: ClassVar[tuple[str, ...]] = ("delivered", "undelivered")
    #: A message id in the provider's own form (Sinch composes ``<batch>:<recipient>``).
    message_id: ClassVar[str] = "msg-1"

    @abc.abstractmethod
    def credentials(self, *secrets: str) -> Credentials:
        """Credentials holding ``secrets`` (several: rotation)."""

    @abc.abstractmethod
    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        """A genuine request signed with ``secret`` carrying one report for ``message_id``."""

    @abc.abstractmethod
    def tampered(self, request: InboundRequest) -> InboundRequest:
        """The same request with the signed content changed (body, parameter or URL)."""

    def unsigned(self, request: InboundRequest) -> InboundRequest:
        """The same request without any credential (default: no auth-looking headers)."""
        kept = {
            name: value
            for name, value in request.headers.items()
            if name in ("content-type", "content-length", "user-agent")
        }
        return dataclasses.replace(request, headers=kept)

    # -- helpers ----------------------------------------------------------------------------

    def build(self, account: str, credentials: Credentials, *, insecure: bool = False) -> Provider:
        """The provider under test (override to inject a clock or a certificate fetcher)."""
        return self.provider(account, credentials, insecure=insecure)

    def endpoint(self, *secrets: str, account: str = "") -> Provider:
        return self.build(account, self.credentials(*secrets))

    def sample_id(self, status: str) -> str:
        """The message id a sample for ``status`` carries (override where ids are composed)."""
        return f"sample-{status}"

    def assert_refused_unsigned(self, error: Exception) -> None:
        """How an unsigned request is refused: 401 ``missing`` unless the provider says
        otherwise (Vonage Messages asks for a retry)."""
        assert isinstance(error, Unauthenticated), error
        assert error.label == "missing"

    @property
    def url(self) -> str:
        return URL.format(provider=self.provider.name)

    # -- the cases --------------------------------------------------------------------------

    def test_good_credentials_pass(self) -> None:
        request = self.signed_request("secret-one", self.message_id)
        parsed = self.endpoint("secret-one").handle(request)
        assert parsed.reports
        assert {report.message_id for report in parsed.reports} >= {self.message_id}

    def test_wrong_secret_is_rejected(self) -> None:
        with pytest.raises(Unauthenticated) as caught:
            self.endpoint("secret-one").handle(self.signed_request("secret-two"))
        assert caught.value.label != "missing"

    def test_missing_credentials_are_rejected(self) -> None:
        with pytest.raises(WebhookError) as caught:
            self.endpoint("secret-one").handle(self.unsigned(self.signed_request("secret-one")))
        self.assert_refused_unsigned(caught.value)

    def test_rotated_secrets_are_all_accepted(self) -> None:
        endpoint = self.endpoint("old-secret", "new-secret")
        for secret in ("old-secret", "new-secret"):
            assert endpoint.handle(self.signed_request(secret)).reports
        with pytest.raises(Unauthenticated):
            endpoint.handle(self.signed_request("third-secret"))

    def test_tampering_is_rejected(self) -> None:
        with pytest.raises(Unauthenticated):
            self.endpoint("secret-one").handle(self.tampered(self.signed_request("secret-one")))

    def test_handle_stamps_what_the_request_shares(self) -> None:
        parsed = self.endpoint("secret-one", account="eu").handle(self.signed_request("secret-one"))
        for report in parsed.reports:
            assert report.provider == self.provider.name
            assert report.account == "eu"
            assert report.auth_method not in ("", "none")
            assert report.received_time.ToMicroseconds() == RECEIVED_MICROS
            assert report.request_id == "test-request"
            assert report.raw
            assert report.status != pb.DELIVERY_STATUS_UNSPECIFIED

    def test_unconfigured_endpoint_rejects_everything(self) -> None:
        empty = self.build("", self.credentials())
        with pytest.raises(Unauthenticated):
            empty.handle(self.signed_request("secret-one"))

    def test_insecure_endpoint_accepts_unsigned_requests(self) -> None:
        insecure = self.build("", self.credentials(), insecure=True)
        parsed = insecure.handle(self.unsigned(self.signed_request("whatever")))
        assert all(report.auth_method == "none" for report in parsed.reports)

    def test_sample_round_trips(self) -> None:
        endpoint = self.endpoint("secret-one")
        for status in self.sample_statuses:
            sample = endpoint.sample(self.url, self.sample_id(status), status)
            parsed = endpoint.handle(from_sample(sample))
            assert [status_label(report.status) for report in parsed.reports] == [status]
            assert [report.message_id for report in parsed.reports] == [self.sample_id(status)]
            assert sample.message_id in ("", self.sample_id(status))

    def test_development_credentials_sign_samples_that_verify(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        variables = self.provider.dev_credentials(tmp_path)
        assert variables
        assert all(name.startswith(self.provider.env("")) for name in variables)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        credentials = load(self.provider.settings_class).account_credentials()[""]
        assert credentials.configured()
        endpoint = self.build("", credentials)
        sample = endpoint.sample(self.url, self.sample_id("delivered"), "delivered")
        parsed = endpoint.handle(from_sample(sample))
        assert [status_label(report.status) for report in parsed.reports] == ["delivered"]


def contracts_of(provider: str) -> list[type[ProviderContract]]:
    """The contract classes of a provider's test module
    (``tests/gateway/providers/test_<name>.py``), in the order they are defined."""
    module = importlib.import_module(f"tests.gateway.providers.test_{provider.replace('-', '_')}")
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ProviderContract)
        and value.__module__ == module.__name__
    ]


class TimestampedProviderContract(ProviderContract):
    """For providers that sign a time: a request outside the window is rejected."""

    @abc.abstractmethod
    def stale_request(self, secret: str) -> InboundRequest:
        """A correctly signed request whose signed time is outside the tolerance."""

    def test_stale_timestamp_is_rejected(self) -> None:
        with pytest.raises(Unauthenticated) as caught:
            self.endpoint("secret-one").handle(self.stale_request("secret-one"))
        assert caught.value.label == "stale"


def first_report(parsed: Any) -> pb.DeliveryReport:
    assert len(parsed.reports) == 1, parsed
    report: pb.DeliveryReport = parsed.reports[0]
    return report
