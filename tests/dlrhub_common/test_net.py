"""Loopback helpers: a free port, whether a port accepts connections, whether a URL answers 200."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dlrhub_common.net import free_port, http_ok, port_open


class Answer(BaseHTTPRequestHandler):
    """200 on /ok, 404 elsewhere."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))


def test_port_open_follows_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert not port_open(port)  # bound, not listening
        listener.listen()
        assert port_open(port)


def test_http_ok_only_for_200(server: str) -> None:
    assert http_ok(server + "/ok")
    assert not http_ok(server + "/missing")
    assert not http_ok(f"http://127.0.0.1:{free_port()}/ok")  # nothing listens
