"""The gateway's configuration: one frozen object, built and validated at start-up.

:class:`GatewaySettings` holds the process settings; :class:`GatewayConfig` adds every
enabled provider account, built from the providers' own settings classes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from dlrhub_common.config_names import variables
from dlrhub_common.net import loopback
from dlrhub_common.settings import BaseConfig, CommaList, ConfigError, Pem, PemSecret, load
from gateway.coalescer import OVERLAP_REPORTS
from gateway.providers import PROVIDERS, Provider
from gateway.ratelimit import parse_networks
from statusd.settings import StatusdSettings

log = logging.getLogger(__name__)

#: gRPC name-resolver schemes a DLRHUB_STATUSD_TARGET may use.
TARGET_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")


class GatewaySettings(BaseConfig):
    """Every process setting of the gateway; the variable is ``DLRHUB_`` + the upper-cased name."""

    gateway_host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    gateway_port: int = Field(8080, ge=1, le=65535, description="HTTP port.")
    public_url: AnyHttpUrl | None = Field(
        None,
        description="Base URL the providers call, which URL-signing schemes sign "
        "(default: http://<gateway host>:<gateway port>, i.e. http://127.0.0.1:8080).",
    )
    statusd_host: str = Field("127.0.0.1", description="Where statusd listens.")
    statusd_port: int = Field(50051, ge=1, le=65535, description="statusd's gRPC port.")
    statusd_target: str | None = Field(
        None,
        description="gRPC target naming every statusd replica, which the gateway's calls "
        "take turns over (round robin), e.g. dns:///statusd-headless:50051 or "
        "ipv4:10.0.0.7:50051,10.0.0.8:50051; replaces DLRHUB_STATUSD_HOST and _PORT.",
    )
    gateway_ingest_token: SecretStr | None = Field(
        None,
        description="Bearer token the gateway sends to statusd (one of statusd's "
        "DLRHUB_INGEST_TOKENS).",
    )
    statusd_tls: bool = Field(
        False, description="Connect to statusd over TLS (implied by DLRHUB_STATUSD_TLS_CA)."
    )
    statusd_tls_ca: Pem | None = Field(
        None, description="CA certificates (PEM) that sign statusd's certificate."
    )
    statusd_tls_client_cert: Pem | None = Field(
        None, description="Client certificate (PEM) the gateway presents to statusd (mTLS)."
    )
    statusd_tls_client_key: PemSecret | None = Field(
        None, description="Private key (PEM) of DLRHUB_STATUSD_TLS_CLIENT_CERT."
    )
    ingest_deadline_seconds: float = Field(
        5.0, gt=0, le=60, description="Deadline of one IngestReports call to statusd."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest webhook body (413)."
    )
    insecure_providers: CommaList = Field(
        (),
        description="Providers whose webhooks are accepted unverified, credentials or not: "
        "local development on a loopback address only.",
    )
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, description="How long requests in flight may finish after SIGTERM."
    )
    coalesce_max_reports: int = Field(
        2000, ge=1, le=100_000, description="Most reports one IngestReports call carries."
    )
    coalesce_max_calls: int = Field(
        2,
        ge=1,
        le=64,
        description="IngestReports calls out at once; webhooks gather meanwhile (a second "
        f"call goes only once {OVERLAP_REPORTS} reports wait).",
    )
    max_items_per_request: int = Field(
        1000, ge=1, le=100_000, description="Most reports one webhook request may carry (413)."
    )
    max_requests_in_flight: int = Field(
        128, ge=1, le=100_000, description="Webhook requests handled at once; more get 503."
    )
    max_queued_reports: int = Field(
        20_000, ge=1, le=1_000_000, description="Reports waiting for statusd's commit (503 above)."
    )
    max_connections: int = Field(
        1024, ge=1, le=100_000, description="Open HTTP connections; more are answered 503."
    )
    max_headers: int = Field(100, ge=10, le=1000, description="Most request headers (431).")
    request_timeout_seconds: float = Field(
        15.0, gt=0, le=300, description="Time a client has to send a whole request."
    )
    keep_alive_timeout_seconds: float = Field(
        30.0, ge=0, le=600, description="How long an idle keep-alive connection stays open."
    )
    trusted_proxies: CommaList = Field(
        (), description="Proxies (IPs or CIDRs) whose X-Forwarded-For names the client."
    )
    rate_limit_per_ip: float = Field(
        0.0,
        ge=0,
        description="Requests per second per client IP, counted before authentication "
        "(0: no limit); behind a proxy only with DLRHUB_TRUSTED_PROXIES.",
    )
    rate_limit_per_account: float = Field(
        0.0,
        ge=0,
        description="Authenticated requests per second per provider account (0: no limit).",
    )
    rate_limit_burst_seconds: float = Field(
        2.0, gt=0, le=60, description="A limit's bucket holds this many seconds of its rate."
    )
    auth_failure_limit_per_minute: float = Field(
        60.0,
        ge=0,
        description="Failed authentications per minute per IP; more failing requests get "
        "429 (0: no limit). Requests that authenticate are never refused by it.",
    )
    nonce_ttl_seconds: float = Field(
        86_400.0, ge=0, description="How long an accepted nonce is refused on any other request."
    )
    nonce_cache_size: int = Field(
        100_000, ge=0, description="Most nonces remembered per gateway process."
    )
    rejection_log_per_minute: float = Field(
        60.0,
        gt=0,
        le=100_000,
        description="Log lines per minute about refused or quarantined webhooks, per "
        "provider and reason; more are counted and summarized.",
    )
    rejection_log_summary_seconds: float = Field(
        60.0, gt=0, le=3600, description="How often suppressed rejection lines are summarized."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    log_phone_numbers: bool = Field(False, description="Log phone numbers unmasked.")

    @field_validator("insecure_providers")
    @classmethod
    def _known_providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(PROVIDERS))
        if unknown:
            raise ValueError(
                f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDERS)}"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)
        return value

    @field_validator("statusd_target")
    @classmethod
    def _grpc_target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, _, rest = value.partition(":")
        host, _, port = value.rpartition(":")
        if any(char.isspace() for char in value):
            raise ValueError("a gRPC target has no spaces")
        if scheme in TARGET_SCHEMES and rest:
            return value
        if not host or "/" in host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"host:port, or a target with one of the schemes {', '.join(TARGET_SCHEMES)}: "
                "e.g. dns:///statusd-headless:50051"
            )
        return value

    @model_validator(mode="after")
    def _insecure_on_loopback_only(self) -> GatewaySettings:
        if self.insecure_providers and not loopback(self.gateway_host):
            raise ValueError(
                f"DLRHUB_INSECURE_PROVIDERS accepts unverified webhooks, but the gateway binds "
                f"{self.gateway_host}, reachable from other machines: bind a loopback address "
                "(DLRHUB_GATEWAY_HOST=127.0.0.1) or unset DLRHUB_INSECURE_PROVIDERS"
            )
        return self

    @model_validator(mode="after")
    def _client_cert_complete(self) -> GatewaySettings:
        if (self.statusd_tls_client_cert is None) != (self.statusd_tls_client_key is None):
            raise ValueError(
                "DLRHUB_STATUSD_TLS_CLIENT_CERT and DLRHUB_STATUSD_TLS_CLIENT_KEY must be set "
                "together"
            )
        return self

    @property
    def grpc_target(self) -> str:
        """Where the gateway's calls go: ``DLRHUB_STATUSD_TARGET``, or host:port."""
        return self.statusd_target or f"{self.statusd_host}:{self.statusd_port}"

    @property
    def public_base(self) -> str:
        """``DLRHUB_PUBLIC_URL`` without a trailing slash, or the gateway's own address."""
        if self.public_url is None:
            host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::", "") else self.gateway_host  # noqa: S104
            return f"http://{host}:{self.gateway_port}"
        return str(self.public_url).rstrip("/")


@dataclass(frozen=True)
class GatewayConfig:
    """The settings plus every enabled ``(provider, account)`` endpoint."""

    settings: GatewaySettings
    endpoints: dict[tuple[str, str], Provider]

    @classmethod
    def load(cls, settings: GatewaySettings | None = None) -> GatewayConfig:
        """Reads the environment; raises :class:`~dlrhub_common.settings.ConfigError` on bad
        values."""
        settings = settings if settings is not None else load(GatewaySettings)
        endpoints: dict[tuple[str, str], Provider] = {}
        for name, provider_class in PROVIDERS.items():
            provider_settings = load(provider_class.settings_class)
            insecure = name in settings.insecure_providers
            for account, credentials in provider_settings.account_credentials().items():
                if account and not account.replace("-", "").replace("_", "").isalnum():
                    raise ConfigError(
                        f"DLRHUB_{name.upper().replace('-', '_')}_ACCOUNTS: account names "
                        f"are letters, digits, '-' and '_' (got {account!r})"
                    )
                if credentials.configured() or (insecure and not account):
                    endpoint = provider_class(account, credentials, insecure=insecure)
                    endpoint.max_items = settings.max_items_per_request
                    endpoints[(name, account)] = endpoint
        return cls(settings=settings, endpoints=endpoints)

    def describe(self) -> None:
        """Logs what is enabled, and loudly what is insecure or disabled."""
        for (name, account), provider in sorted(self.endpoints.items()):
            path = f"/webhooks/{name}" + (f"/{account}" if account else "")
            if provider.insecure:
                ignored = provider.credentials.redacted_names()
                log.warning(
                    "INSECURE: %s accepts webhooks WITHOUT verification (DLRHUB_INSECURE_PROVIDERS"
                    " lists %s; local development only)%s",
                    path,
                    name,
                    f"; its configured credentials ({', '.join(ignored)}) are NOT checked: "
                    "remove it from DLRHUB_INSECURE_PROVIDERS to verify them"
                    if ignored
                    else "",
                    extra={"provider": name},
                )
            else:
                secrets = provider.credentials.redacted_names()
                log.info("webhook enabled", extra={"path": path, "provider": name, "auth": secrets})
        if self.settings.rate_limit_per_ip and not self.settings.trusted_proxies:
            log.warning(
                "DLRHUB_RATE_LIMIT_PER_IP limits each TCP peer: behind a proxy or ingress, "
                "set DLRHUB_TRUSTED_PROXIES, or every provider shares the proxy's one limit"
            )
        enabled = {name for name, _ in self.endpoints}
        for name in PROVIDERS:
            if name not in enabled:
                log.info(
                    "provider disabled: no credentials (set DLRHUB_%s_* variables)",
                    name.upper().replace("-", "_"),
                    extra={"provider": name},
                )


def known_variables() -> frozenset[str]:
    """Every ``DLRHUB_*`` variable of dlrhub: the gateway's, every provider's and statusd's."""
    providers = [provider.settings_class for provider in PROVIDERS.values()]
    return variables(GatewaySettings, StatusdSettings, *providers)
