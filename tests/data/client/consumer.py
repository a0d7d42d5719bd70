"""A service that reads delivery statuses from dlrhub with the typed client."""

from __future__ import annotations

import asyncio

from dlrhub.client import DlrhubClient, DlrhubError, Watch, status_label
from dlrhub.v1 import delivery_report_pb2


async def main(target: str) -> list[str]:
    lines: list[str] = []
    async with DlrhubClient(target, token="read-token") as dlrhub:
        found: delivery_report_pb2.MessageStatus | None = await dlrhub.get("infobip", "m-1")
        if found is not None:
            lines.append(f"{found.message_id}: {status_label(found.status)}")
        async for status in dlrhub.list(provider="infobip", statuses=["delivered"]):
            lines.append(status.message_id)
        watch: Watch = dlrhub.watch(provider="infobip", max_reconnects=0)
        try:
            async for change in watch:
                lines.append(change.message_status.message_id)
                token: str = watch.resume_token
                lines.append(token)
                break
        except DlrhubError as exc:
            lines.append(f"{exc.code.name}: {exc.details}")
    return lines


if __name__ == "__main__":
    print(asyncio.run(main("127.0.0.1:50051")))
