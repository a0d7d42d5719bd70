"""The change stream of the mongomock adapter (see :mod:`tests.helpers.mongomock_async`):
the changes to one collection after an oplog entry number, filtered by the pipeline's
``$match`` (mongomock's own filter) and shaped by its ``$project``."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import TYPE_CHECKING, Any

from mongomock.filtering import filter_applies
from pymongo.errors import AutoReconnect, OperationFailure

if TYPE_CHECKING:
    from tests.helpers.mongomock_async import MockCollection

Document = dict[str, Any]


def token(number: int) -> Document:
    return {"_data": f"{number:016X}"}


class MockChangeStream:
    """Changes to one collection after an oplog entry number (see the module docstring)."""

    def __init__(
        self, collection: MockCollection, pipeline: list[Document], start: int, max_await: float
    ) -> None:
        self.collection = collection
        self.server = collection.server
        self.next = start
        self.max_await = max_await
        self.resume_token: Document | None = token(start)
        self.match: Document = {}
        self.project: Document | None = None
        for stage in pipeline:
            (operator, argument), *others = stage.items()
            assert not others, f"one operator per stage: {stage}"
            assert operator in ("$match", "$project"), f"not emulated: {stage}"
            if operator == "$match":
                self.match = argument
            else:
                self.project = argument
        self.closed = False

    async def try_next(self) -> Document | None:
        if self.server.check(self.collection.name, "getMore") is not None:
            raise AutoReconnect("connection lost during getMore (injected)")
        assert not self.closed, "try_next on a closed change stream"
        if self.next < self.server.oplog_floor:
            raise OperationFailure("the resume point may no longer be in the oplog", code=286)
        if self._pending() is None:
            async with self.server.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.server.changed.wait_for(lambda: self._pending() is not None),
                        self.max_await,
                    )
        number = self._pending()
        if number is None:
            self.next = len(self.server.oplog)
            self.resume_token = token(self.next)  # the post-batch resume token
            return None
        self.next = number + 1
        self.resume_token = token(self.next)
        change = {"_id": token(self.next), **copy.deepcopy(self.server.oplog[number][1])}
        if self.project is not None:
            change = {k: v for k, v in change.items() if k == "_id" or self.project.get(k)}
        return change

    def _pending(self) -> int | None:
        for number in range(self.next, len(self.server.oplog)):
            namespace, change = self.server.oplog[number]
            matches = bool(filter_applies(self.match, change))  # type: ignore[no-untyped-call]
            if namespace == self.collection.namespace and matches:
                return number
        return None

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> MockChangeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
