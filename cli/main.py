"""The ``dlrhub`` command: run the stack locally, send signed samples, read statuses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import devenv


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlrhub", description="SMS delivery reports: verified, normalized, stored, served."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run", help="start statusd and the gateway locally on the embedded SQLite store"
    )

    sample = commands.add_parser(
        "send-sample", help="send a correctly signed sample webhook to a gateway"
    )
    sample.add_argument("provider", help="provider name, e.g. infobip or plivo")
    sample.add_argument(
        "--url", default="", help="webhook URL (default: the local gateway's URL for PROVIDER)"
    )
    sample.add_argument("--account", default="", help="provider account (default: the default one)")
    sample.add_argument("--message-id", default="", help="message id (default: a random one)")
    sample.add_argument(
        "--status", default="delivered", help="canonical status to report (default: delivered)"
    )

    quarantine = commands.add_parser(
        "quarantine", help="list or replay authentic items that failed to parse"
    )
    quarantine.add_argument("action", choices=["list", "replay"])
    quarantine.add_argument("--json", action="store_true", help="print JSON")
    quarantine.add_argument(
        "--dry-run", action="store_true", help="replay: parse only, change nothing"
    )
    quarantine.add_argument("--target", default="", help="statusd host:port")

    status = commands.add_parser("status", help="read message statuses from statusd")
    status_commands = status.add_subparsers(dest="status_command", required=True, metavar="ACTION")
    get = status_commands.add_parser("get", help="one message's status")
    get.add_argument("provider")
    get.add_argument("message_id")
    get.add_argument("--account", default="")
    get.add_argument("--full", action="store_true", help="include the whole history")
    get.add_argument("--json", action="store_true", help="print JSON")
    get.add_argument("--target", default="", help="statusd host:port (default: from settings)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    devenv.load_if_present()
    if args.command == "run":
        from cli.run import RunError, run

        try:
            return run()
        except RunError as exc:
            print(f"dlrhub run: {exc}", file=sys.stderr)
            return 1
    if args.command == "send-sample":
        from cli.sample import main as send_sample

        url = args.url or _local_webhook_url(args.provider, args.account)
        return send_sample(
            args.provider, url, account=args.account, message_id=args.message_id, status=args.status
        )
    if args.command == "quarantine":
        from cli.quarantine import main as quarantine

        return quarantine(
            args.target or _statusd_target(), args.action, as_json=args.json, dry_run=args.dry_run
        )
    from cli.status import get

    target = args.target or _statusd_target()
    return get(
        target,
        args.provider,
        args.message_id,
        account=args.account,
        full=args.full,
        as_json=args.json,
    )


def _local_webhook_url(provider: str, account: str) -> str:
    from common.settings import load
    from gateway.settings import GatewaySettings

    settings = load(GatewaySettings)
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    return f"{base}/webhooks/{provider}" + (f"/{account}" if account else "")


def _statusd_target() -> str:
    from common.settings import load
    from statusd.settings import StatusdSettings

    return load(StatusdSettings).grpc_address


def entry() -> None:
    sys.exit(main())
