"""The ``dlrhub`` command: run the stack locally, send signed samples, read statuses."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from dlrhub_cli import devenv, quarantine, register, stats, status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlrhub", description="SMS delivery reports: verified, normalized, stored, served."
    )
    parser.add_argument("--version", action="version", version=f"dlrhub {version('dlrhub')}")
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

    quarantine.add_parser(commands)
    status.add_parser(commands)
    register.add_parser(commands)
    stats.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    devenv.load_if_present()
    if args.command == "run":
        from dlrhub_cli.run import RunError, run

        try:
            return run()
        except RunError as exc:
            print(f"dlrhub run: {exc}", file=sys.stderr)
            return 1
    if args.command == "send-sample":
        from dlrhub_cli.sample import main as send_sample

        url = args.url or _local_webhook_url(args.provider, args.account)
        return send_sample(
            args.provider, url, account=args.account, message_id=args.message_id, status=args.status
        )
    commands = {"quarantine": quarantine.main, "register": register.main, "stats": stats.main}
    return commands.get(args.command, status.main)(args)


def _local_webhook_url(provider: str, account: str) -> str:
    from dlrhub_common.settings import load
    from gateway.settings import GatewaySettings

    settings = load(GatewaySettings)
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    return f"{base}/webhooks/{provider}" + (f"/{account}" if account else "")


#: The exit status of a command whose reader went away (128 + SIGPIPE, as a shell reports it).
CLOSED_PIPE = 141


def entry() -> None:
    """The console script: a closed pipe (``dlrhub status list | head -1``) ends the command
    quietly, without a traceback."""
    code: int | str | None
    try:
        try:
            code = main()
        except SystemExit as exited:  # argparse's --help and --version, buffered until here
            code = exited.code
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that finds no pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = CLOSED_PIPE
    sys.exit(code)
