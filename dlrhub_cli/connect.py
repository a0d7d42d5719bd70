"""Connection flags shared by the ``dlrhub status`` commands, and the client they build."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlrhub.client import DlrhubClient, TLSConfig


class UsageError(Exception):
    """The flags contradict each other or name a file that cannot be read."""


def add_flags(parser: argparse.ArgumentParser, role: str = "read") -> None:
    """The connection flags; ``role`` is the statusd role whose token the command needs."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target", default="", help="statusd host:port (default: DLRHUB_STATUSD_HOST:PORT)"
    )
    group.add_argument(
        "--token",
        default="",
        help=f"bearer token of role {role} (one of statusd's DLRHUB_{role.upper()}_TOKENS)",
    )
    group.add_argument("--token-file", default="", help="read the bearer token from this file")
    group.add_argument("--tls", action="store_true", help="use TLS (implied by the file flags)")
    group.add_argument("--ca-file", default="", help="CA certificates (PEM) to trust")
    group.add_argument("--cert-file", default="", help="client certificate (PEM), for mTLS")
    group.add_argument("--key-file", default="", help="client key (PEM), for mTLS")


def token_from(args: argparse.Namespace) -> str | None:
    if args.token and args.token_file:
        raise UsageError("give --token or --token-file, not both")
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise UsageError(
                f"--token-file: cannot read {args.token_file}: {exc.strerror}"
            ) from None
    return args.token or None


def tls_from(args: argparse.Namespace) -> TLSConfig | None:
    if not (args.tls or args.ca_file or args.cert_file or args.key_file):
        return None
    if bool(args.cert_file) != bool(args.key_file):
        raise UsageError("--cert-file and --key-file go together")
    try:
        return TLSConfig.from_files(
            args.ca_file or None, args.cert_file or None, args.key_file or None
        )
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None


def target_flag(target: str) -> str:
    """`` --target <target>`` for a hint, when ``target`` is not where statusd listens by
    default (and the hint's command, run elsewhere, would look there)."""
    from statusd.settings import StatusdSettings

    fields = StatusdSettings.model_fields
    default = f"{fields['statusd_host'].default}:{fields['statusd_port'].default}"
    return "" if target == default else f" --target {target}"


def default_target() -> str:
    from dlrhub_common.settings import load
    from statusd.settings import StatusdSettings

    return load(StatusdSettings).grpc_address


def client_from(args: argparse.Namespace) -> DlrhubClient:
    """A client for the flags; raises :class:`UsageError` for contradictory ones."""
    return DlrhubClient(args.target or default_target(), token=token_from(args), tls=tls_from(args))
