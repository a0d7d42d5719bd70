"""What the MongoDB store learns about its server at start-up, on every version PyMongo
supports.

``hello`` exists from MongoDB 4.4.2 (and 5.0) on; PyMongo supports servers from
:data:`MIN_SERVER_VERSION` on, so a server that answers ``hello`` with CommandNotFound is asked
the legacy ``isMaster``, whose answer has the same fields the store reads (``setName``,
``msg``, ``maxWireVersion``). ``buildInfo`` (every version) gives the version for the log.
A server older than the minimum is refused with a message that names the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pymongo import AsyncMongoClient, common
from pymongo.errors import OperationFailure

from statusd.storage.base import StoreUnavailable

#: The oldest server this PyMongo speaks to (and so the oldest the store supports).
MIN_SERVER_VERSION: Final = common.MIN_SUPPORTED_SERVER_VERSION
MIN_WIRE_VERSION: Final = common.MIN_SUPPORTED_WIRE_VERSION
_COMMAND_NOT_FOUND: Final = 59


@dataclass(frozen=True)
class ServerInfo:
    """The handshake's answer, as far as the store needs it."""

    version: str
    replicated: bool  # a replica set or a sharded cluster: change streams exist


async def server_info(client: AsyncMongoClient[Any]) -> ServerInfo:
    """Asks the server what it is; raises StoreUnavailable for a server below the minimum."""
    admin = client.admin
    try:
        hello = await admin.command("hello")
    except OperationFailure as exc:
        if exc.code != _COMMAND_NOT_FOUND:
            raise
        hello = await admin.command("isMaster")  # a server before 4.4.2
    build = await admin.command("buildInfo")
    version = str(build.get("version", "unknown"))
    wire = int(hello.get("maxWireVersion", 0))
    if wire < MIN_WIRE_VERSION:
        raise StoreUnavailable(
            f"MongoDB {version} (wire version {wire}) is older than the oldest server "
            f"supported: MongoDB {MIN_SERVER_VERSION} (wire version {MIN_WIRE_VERSION})"
        )
    replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
    return ServerInfo(version=version, replicated=replicated)
