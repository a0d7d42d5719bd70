"""statusd ends each client connection at DLRHUB_GRPC_MAX_CONNECTION_AGE_SECONDS (gRPC
GOAWAY), so a client balancing over a DNS name connects again and resolves the name anew;
calls keep succeeding across the hand-over. Observed from the kernel's table of TCP
connections to statusd's port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.forwarder import Forwarder
from tests.helpers.reports import report
from tests.helpers.servers import running_statusd, statusd_settings


def client_ports(server_port: int) -> set[int]:
    """Local ports of this host's established TCP connections to ``server_port`` (gRPC
    opens IPv4-mapped IPv6 sockets, so both tables)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize(("age", "connections"), [(0.0, 1), (0.3, 3)])
async def test_connections_end_at_their_maximum_age(
    tmp_path: Path, age: float, connections: int
) -> None:
    settings = statusd_settings(tmp_path, grpc_max_connection_age_seconds=age)
    async with running_statusd(settings) as daemon:
        forwarder = Forwarder(f"127.0.0.1:{daemon.port}")
        seen: set[int] = set()
        try:
            for n in range(16):  # about 1.6 s: five or more ages of 0.3 s (±10%)
                answer = await forwarder.ingest([report(message_id=f"age-{n}")], [])
                assert len(answer.outcomes) == 1
                seen |= client_ports(daemon.port)
                await asyncio.sleep(0.1)
        finally:
            await forwarder.close()
    if connections == 1:
        assert len(seen) == 1, seen
    else:
        assert len(seen) >= connections, seen
