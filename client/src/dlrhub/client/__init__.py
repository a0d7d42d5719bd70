"""A typed asyncio client for dlrhub's StatusService.

```python
from dlrhub.client import DlrhubClient, registration

async with DlrhubClient("statusd:50051", token="...") as dlrhub:
    await dlrhub.register_messages(
        [registration("infobip", "4a7d...", client_ref="order-7", recipient="+447700900123")]
    )
    status = await dlrhub.get("infobip", "4a7d...")
    async for status in dlrhub.list(provider="infobip", statuses=["delivered"]):
        ...
    async for change in dlrhub.watch(provider="infobip"):
        ...  # change.message_status, change.report, change.resume_token
```
"""

from dlrhub.client.client import DlrhubClient, DlrhubError, Watch, registration
from dlrhub.client.connection import TLSConfig, bearer_metadata, open_channel
from dlrhub.client.retry import Backoff
from dlrhub.client.status_names import status_from_label, status_label

__all__ = [
    "Backoff",
    "DlrhubClient",
    "DlrhubError",
    "TLSConfig",
    "Watch",
    "bearer_metadata",
    "open_channel",
    "registration",
    "status_from_label",
    "status_label",
]
