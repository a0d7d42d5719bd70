"""``dlrhub run``: statusd and the gateway on this machine, the embedded store, one terminal.

Starts statusd, waits until it serves, starts the gateway, waits until it answers, prints
where both listen and how to send a first signed report. Ctrl-C (or SIGTERM) stops both
gracefully; if either exits, the other is stopped too.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlrhub_cli import devenv
from dlrhub_common.config_names import check_environment
from dlrhub_common.net import http_ok, port_open
from dlrhub_common.settings import ConfigError, load
from gateway.providers import PROVIDERS
from gateway.settings import GatewaySettings, known_variables
from statusd.settings import StatusdSettings

STARTUP_TIMEOUT_SECONDS = 30.0


class RunError(Exception):
    """The development stack could not start."""


def _wait(check: str, ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(f"{check} exited with code {process.returncode} (see its log above)")
        if ready():
            return
        time.sleep(0.1)
    raise RunError(f"{check} did not become ready within {STARTUP_TIMEOUT_SECONDS:.0f} s")


@dataclass(frozen=True)
class Environment:
    """What ``dlrhub run`` starts both processes with (they inherit ``os.environ``)."""

    statusd: StatusdSettings
    gateway: GatewaySettings
    #: Whether the development credentials of var/dev.env are in use.
    using_dev: bool


def environment() -> Environment:
    """Assembles ``os.environ`` for both processes: text logs, development credentials when
    nothing configures a provider, then both configurations read and checked. Providers in
    ``DLRHUB_INSECURE_PROVIDERS`` stay unverified whether or not development credentials were
    generated (the banner and the gateway's start-up log say so)."""
    try:
        check_environment(known_variables(), os.environ)
    except ConfigError as exc:
        raise RunError(f"bad configuration: {exc}") from None
    os.environ.setdefault("DLRHUB_LOG_FORMAT", "text")
    using_dev = devenv.ensure()
    try:
        return Environment(load(StatusdSettings), load(GatewaySettings), using_dev)
    except ConfigError as exc:
        raise RunError(f"bad configuration: {exc}") from None


def run() -> int:
    """Runs the stack until interrupted; returns the exit code."""
    assembled = environment()
    statusd_settings, gateway_settings = assembled.statusd, assembled.gateway
    using_dev = assembled.using_dev
    for name, host, port in (
        ("statusd", statusd_settings.statusd_host, statusd_settings.statusd_port),
        ("gateway", gateway_settings.gateway_host, gateway_settings.gateway_port),
    ):
        if port_open(port, host):
            raise RunError(
                f"{host}:{port} is already in use; stop what listens there or set "
                f"DLRHUB_{'STATUSD' if name == 'statusd' else 'GATEWAY'}_PORT"
            )
    bin_dir = Path(sys.executable).parent
    statusd = subprocess.Popen([str(bin_dir / "dlrhub-statusd")])  # noqa: S603
    gateway: subprocess.Popen[bytes] | None = None
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        _wait(
            "statusd",
            lambda: port_open(statusd_settings.statusd_port, statusd_settings.statusd_host),
            statusd,
        )
        gateway = subprocess.Popen([str(bin_dir / "dlrhub-gateway")])  # noqa: S603
        base = f"http://{gateway_settings.gateway_host}:{gateway_settings.gateway_port}"
        _wait("gateway", lambda: http_ok(base + "/healthz"), gateway)
        print(_banner(base, statusd_settings, gateway_settings, using_dev), flush=True)
        while not stopping and statusd.poll() is None and gateway.poll() is None:
            time.sleep(0.2)
    finally:
        for process in (gateway, statusd):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (gateway, statusd):
            if process is not None:
                try:
                    process.wait(timeout=statusd_settings.shutdown_grace_seconds + 5)
                except subprocess.TimeoutExpired:
                    process.kill()
    print("dlrhub stopped.", flush=True)
    return 0 if stopping else 1


def _banner(base: str, statusd: StatusdSettings, gateway: GatewaySettings, using_dev: bool) -> str:
    cli = shlex.quote(str(Path(sys.executable).parent / "dlrhub"))
    if Path.cwd() in Path(cli).parents:
        cli = str(Path(cli).relative_to(Path.cwd()))
    metrics = (
        f"http://{statusd.statusd_metrics_host}:{statusd.statusd_metrics_port}/metrics"
        if statusd.statusd_metrics_port
        else "off"
    )
    store = "MongoDB" if statusd.mongodb_uri else f"SQLite file {statusd.sqlite_path}"
    lines = [
        "",
        "dlrhub is running.",
        f"  gateway  {base}   (health {base}/healthz, metrics {base}/metrics)",
        f"  statusd  {statusd.statusd_host}:{statusd.statusd_port} gRPC   (metrics {metrics})",
        f"  store    {store}",
        "",
        "Webhook URLs to give the providers (public base: DLRHUB_PUBLIC_URL"
        f" = {gateway.public_base}):",
        *(f"  {name:<18} {gateway.public_base}/webhooks/{name}" for name in PROVIDERS),
    ]
    if using_dev:
        lines += ["", f"Development credentials are in {devenv.DEV_ENV} (generated once, reused)."]
    lines += insecure_lines(gateway.insecure_providers, using_dev)
    lines += [
        "",
        "Send a correctly signed sample report, then read its status over gRPC:",
        f"  {cli} send-sample infobip --url {base}/webhooks/infobip --message-id demo-1",
        f"  {cli} status get infobip demo-1 --target {statusd.statusd_host}:{statusd.statusd_port}",
        f"  (every provider the same way: {cli} send-sample <provider> "
        f"--url {base}/webhooks/<provider> --message-id demo-2)",
        "",
        "Follow every change as it arrives (in another terminal):",
        f"  {cli} status watch --target {statusd.statusd_host}:{statusd.statusd_port}",
        "",
        *_curl_hint(base),
        "Ctrl-C stops both.",
        "",
    ]
    return "\n".join(lines)


def insecure_lines(providers: tuple[str, ...], using_dev: bool) -> list[str]:
    """What the banner says about ``DLRHUB_INSECURE_PROVIDERS``: which providers accept
    unsigned webhooks, and how to verify them again."""
    if not providers:
        return []
    credentials = "development credentials" if using_dev else "configured credentials"
    return [
        "",
        f"INSECURE: {', '.join(providers)} accept webhooks WITHOUT verification "
        f"(DLRHUB_INSECURE_PROVIDERS); their {credentials} are not checked.",
        "  Unsigned samples are accepted; unset DLRHUB_INSECURE_PROVIDERS to verify signatures.",
    ]


def _curl_hint(base: str) -> list[str]:
    """The same with curl, when Infobip Basic credentials are configured."""
    basic = os.environ.get("DLRHUB_INFOBIP_BASIC_AUTH", "").split(",")[0].strip()
    if not basic:
        return []
    body = (
        '{"results":[{"messageId":"demo-2","to":"41793026727",'
        '"doneAt":"2026-01-01T12:00:00.000+0000","status":{"groupId":3,'
        '"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET"}}]}'
    )
    return [
        "Or with curl (Infobip, HTTP Basic):",
        f"  curl -sS -u {shlex.quote(basic)} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {base}/webhooks/infobip",
        "",
    ]
