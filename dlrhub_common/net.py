"""Small loopback helpers for the local tools (``dlrhub run``, tests, ``make bench``)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import urllib.request


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200 within half a second."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except OSError:
        return False


class BindError(OSError):
    """A server cannot listen where it is told; the message names the variable and address."""

    def __init__(self, variable: str, host: str, port: int, reason: str = "") -> None:
        super().__init__(f"{variable}: {host}:{port} {reason or _why_not_bindable(host, port)}")


def _why_not_bindable(host: str, port: int) -> str:
    """Why ``host:port`` cannot be bound, found by trying it with a plain socket."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "is already in use"
        return f"cannot be bound: {exc.strerror or exc}"
    return "cannot be bound"
