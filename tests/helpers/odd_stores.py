"""Stores for tests that need odd but legal behaviour from the store interface."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from statusd.storage.base import Change, InvalidPosition, MessageFilter
from statusd.storage.sqlite import SqliteStore


class NowNamingStore(SqliteStore):
    """Positions the way a change-stream store hands them out: each change has its own
    (``e<id>``), while :meth:`last_position` names "now" (``n<id>``), which no change has.
    Watch must never rely on the two being equal."""

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        found = await super().changes(query, after=after and after[1:], limit=limit)
        return [dataclasses.replace(change, position="e" + change.position) for change in found]

    async def last_position(self) -> str | None:
        last = await super().last_position()
        return None if last is None else "n" + last

    async def check_position(self, position: str) -> None:
        if position[:1] not in ("e", "n"):
            raise InvalidPosition(f"not a position of this store: {position[:40]!r}")
        await super().check_position(position[1:])


def store_for(kind: str, path: Path) -> SqliteStore:
    return (NowNamingStore if kind == "now-naming" else SqliteStore)(path / "statusd.sqlite3")


class TroubledStore(SqliteStore):
    """A store whose change reads fail on demand."""

    fail: Exception | None = None

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        if self.fail is not None:
            raise self.fail
        return await super().changes(query, after=after, limit=limit)

    async def last_position(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return await super().last_position()
