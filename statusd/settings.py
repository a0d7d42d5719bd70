"""statusd's configuration: one frozen object, built and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import NoDecode

from dlrhub_common.providers import PROVIDER_NAMES
from dlrhub_common.settings import BaseConfig, Pem, PemSecret, Secrets, split_commas


def _hours_by_provider(value: object) -> object:
    """``"twilio=24, sinch=48"`` → ``{"twilio": "24", "sinch": "48"}`` (pydantic checks the
    numbers); a mapping passes through."""
    items = split_commas(value)
    if not isinstance(items, tuple):
        return items
    pairs = {}
    for item in items:
        provider, equals, hours = item.partition("=")
        if not equals or not provider.strip() or not hours.strip():
            raise ValueError(f"{item!r} is not a provider=hours pair")
        if provider.strip() in pairs:
            raise ValueError(f"provider {provider.strip()!r} is named twice")
        pairs[provider.strip()] = hours.strip()
    return pairs


def _known_providers(value: dict[str, float]) -> dict[str, float]:
    for provider, hours in value.items():
        if provider not in PROVIDER_NAMES:
            raise ValueError(
                f"unknown provider {provider!r}; known: {', '.join(sorted(PROVIDER_NAMES))}"
            )
        if not hours > 0:
            raise ValueError(f"{provider}: hours must be more than 0")
    return value


#: ``provider=hours`` pairs, comma-separated (``twilio=24,sinch=48``).
HoursByProvider = Annotated[
    dict[str, float],
    NoDecode,
    BeforeValidator(_hours_by_provider),
    AfterValidator(_known_providers),
]


class StatusdSettings(BaseConfig):
    """Every setting of statusd; the environment variable is ``DLRHUB_`` + the upper-cased name."""

    statusd_host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    statusd_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port).")
    statusd_health_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="A plaintext port (on the gRPC host) serving only grpc.health.v1, for "
        "Kubernetes' gRPC probes, which cannot speak TLS; 0: off.",
    )
    grpc_max_connection_age_seconds: float = Field(
        300.0,
        ge=0,
        description="Clients' connections are ended (GOAWAY, calls in flight finish) after "
        "about this long, so a client resolves the replicas' addresses again; 0: never.",
    )
    statusd_metrics_host: str = Field("127.0.0.1", description="Address of /metrics.")
    statusd_metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus metrics port; 0 turns it off."
    )
    sqlite_path: Path = Field(
        Path("var/dlrhub.sqlite3"), description="SQLite file of the embedded store."
    )
    sqlite_busy_timeout_ms: int = Field(
        5000, ge=0, le=600_000, description="How long a commit waits for a locked SQLite file."
    )
    mongodb_uri: SecretStr | None = Field(
        None, description="MongoDB connection string; when set, statusd stores in MongoDB."
    )
    mongodb_database: str = Field(
        "dlrhub",
        min_length=1,
        max_length=63,
        pattern=r'^[^/\\. "$*<>:|?]+$',
        description="MongoDB database of the store.",
    )
    mongodb_server_selection_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a MongoDB operation waits to find a usable server."
    )
    mongodb_timeout_seconds: float = Field(
        10.0, gt=0, description="Time limit of one store operation (a commit, a read) on MongoDB."
    )
    retention_days: int = Field(
        90, ge=1, description="Messages not updated for this many days are purged."
    )
    report_timeout_hours: float = Field(
        72.0,
        gt=0,
        description="A registered message with no final report this long after its submit "
        "time becomes NO_REPORT (unless its registration names a report_timeout).",
    )
    report_timeout_hours_by_provider: HoursByProvider = Field(
        default_factory=dict,
        description="Per-provider report timeouts overriding DLRHUB_REPORT_TIMEOUT_HOURS, as "
        "provider=hours pairs: twilio=24,sinch=48.",
    )
    report_sweep_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often statusd looks for registered messages whose report timeout "
        "passed and marks them NO_REPORT.",
    )
    group_commit_max_reports: int = Field(
        5000, ge=1, description="Most reports one group-commit batch carries."
    )
    group_commit_window_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="Extra wait before a batch commits, to gather more calls (0: none).",
    )
    multipart_policy: Literal["worst", "any_delivered"] = Field(
        "worst",
        description="How a multipart message's status follows its parts' statuses.",
    )
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, description="How long calls in flight may finish after SIGTERM."
    )
    ingest_tokens: Secrets = Field(
        (),
        description="Bearer tokens of role ingest (the gateway's): IngestReports. Once any "
        "role has tokens, every call needs one; a role without tokens is closed.",
    )
    read_tokens: Secrets = Field(
        (),
        description="Bearer tokens of role read: StatusService (Get, BatchGet, List, Watch).",
    )
    register_tokens: Secrets = Field(
        (),
        description="Bearer tokens of role register (senders): RegisterMessages.",
    )
    admin_tokens: Secrets = Field(
        (),
        description="Bearer tokens of role admin: ListQuarantinedItems, "
        "DeleteQuarantinedItems and IngestReports (`dlrhub quarantine`).",
    )
    statusd_insecure: bool = Field(
        False,
        description="Serve beyond loopback without tokens (logged loudly). Without it, "
        "statusd on a non-loopback address refuses to start without tokens and "
        "DLRHUB_TOKEN_SIGNING_KEYS.",
    )
    tls_cert: Pem | None = Field(
        None, description="Server certificate chain (PEM); with tls_key, gRPC speaks TLS."
    )
    tls_key: PemSecret | None = Field(None, description="Private key of tls_cert (PEM).")
    tls_client_ca: Pem | None = Field(
        None, description="CA certificates (PEM); when set, clients must present a cert (mTLS)."
    )
    token_signing_keys: Secrets = Field(
        (),
        description="Keys that sign page and resume tokens; the first signs, all verify. "
        "Required beyond loopback (at least 16 characters, the same on every replica).",
    )
    watch_heartbeat_seconds: float = Field(
        5.0, gt=0, le=300, description="Idle time after which a Watch stream gets a heartbeat."
    )
    watch_queue_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Changes buffered per Watch stream; a stream that falls further behind "
        "ends with RESOURCE_EXHAUSTED and resumes from its last token.",
    )
    watch_max_streams: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Open Watch streams this statusd serves at most; one more is refused "
        "with RESOURCE_EXHAUSTED.",
    )
    watch_max_streams_per_client: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Open Watch streams per client at most (a client: its bearer token; "
        "without tokens, its IP address); one more is refused with RESOURCE_EXHAUSTED.",
    )
    watch_cpu_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Most of the event loop's CPU time Watch writes may take while "
        "ingestion is busy (0.25: a quarter); streams that need more fall behind and resume, "
        "ingestion keeps the rest. While ingestion is light, Watch uses the time it leaves.",
    )
    health_commit_failures: int = Field(
        3,
        ge=1,
        le=1000,
        description="Consecutive failed commits after which readiness turns NOT_SERVING (until "
        "a commit or a write probe succeeds).",
    )
    store_idle_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Quiet time (no commit) after which the store does its housekeeping "
        "(SQLite: checkpoint and truncate the WAL).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    log_phone_numbers: bool = Field(False, description="Log phone numbers unmasked (off: masked).")

    @model_validator(mode="after")
    def _tls_complete(self) -> StatusdSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("DLRHUB_TLS_CERT and DLRHUB_TLS_KEY must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("DLRHUB_TLS_CLIENT_CA needs DLRHUB_TLS_CERT and DLRHUB_TLS_KEY")
        return self

    def report_timeout_micros(self, provider: str) -> int:
        """The default report timeout of a provider's registrations, in microseconds."""
        hours = self.report_timeout_hours_by_provider.get(provider, self.report_timeout_hours)
        return round(hours * 3_600_000_000)

    @property
    def grpc_address(self) -> str:
        return f"{self.statusd_host}:{self.statusd_port}"
