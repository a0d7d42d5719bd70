"""The names of the providers the gateway serves, importable without the gateway's code.

statusd refuses reports of any other provider before they reach a metric label, so a caller
cannot create unbounded metric series with made-up names. The gateway's registry
(:data:`gateway.providers.PROVIDERS`) must list exactly these names; a test holds the two
together, so adding a provider means adding its name here too (docs/adding-a-provider.md).
"""

from __future__ import annotations

PROVIDER_NAMES: frozenset[str] = frozenset(
    {
        "aws-sns",
        "bird",
        "infobip",
        "messagebird",
        "plivo",
        "sinch",
        "standard-webhooks",
        "telnyx",
        "twilio",
        "vonage",
        "vonage-messages",
    }
)
