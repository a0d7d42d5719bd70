"""A SQLite store whose writes fail on demand while reads go on, as on a full disk."""

from __future__ import annotations

from collections.abc import Sequence

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage.base import Committed, StoreUnavailable
from statusd.storage.sqlite import SqliteStore


class FullDiskStore(SqliteStore):
    """While ``full``, commits and write probes fail with the error a full disk gives; pings
    (reads) still succeed, which is what let readiness say "ready" through failed commits."""

    full = False
    write_probes = 0

    async def commit_batch(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> Committed:
        if self.full:
            raise StoreUnavailable(f"sqlite {self.path}: database or disk is full")
        return await super().commit_batch(reports, quarantined)

    async def probe_write(self) -> None:
        self.write_probes += 1
        if self.full:
            raise StoreUnavailable(f"sqlite {self.path}: database or disk is full")
        await super().probe_write()
