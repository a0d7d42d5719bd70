"""A raw HTTP/1.1 client: sends exactly the bytes it is given (illegal header bytes, duplicate
headers, wrong lengths included), which well-behaved clients refuse to produce."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: fuzz", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(port: int, raw: bytes, timeout: float = 15.0) -> Answer | None:
    """Sends ``raw`` and reads the answer; None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    if not received:
        return None
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return Answer(int(status_line.split()[1]), headers, body)
