"""statusd's configuration: one frozen object, built and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from common.settings import BaseConfig


class StatusdSettings(BaseConfig):
    """Every setting of statusd; the environment variable is ``DLRHUB_`` + the upper-cased name."""

    statusd_host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    statusd_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port).")
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
    group_commit_max_reports: int = Field(
        5000, ge=1, description="Most reports one group-commit batch carries."
    )
    group_commit_window_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="Extra wait before a batch commits, to gather more calls (0: none).",
    )
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, description="How long calls in flight may finish after SIGTERM."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    log_phone_numbers: bool = Field(False, description="Log phone numbers unmasked (off: masked).")

    @property
    def grpc_address(self) -> str:
        return f"{self.statusd_host}:{self.statusd_port}"
