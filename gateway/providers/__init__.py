"""The provider registry: one line per provider module, no discovery magic.

Adding a provider is one module under this package, its tests, and one line here
(see docs/adding-a-provider.md).
"""

from __future__ import annotations

from gateway.providers.aws_sns import AwsSns
from gateway.providers.base import InboundRequest, Parsed, Provider
from gateway.providers.bird import Bird
from gateway.providers.infobip import Infobip
from gateway.providers.messagebird import MessageBird
from gateway.providers.plivo import Plivo
from gateway.providers.sinch import Sinch
from gateway.providers.standard_webhooks import StandardWebhooks
from gateway.providers.telnyx import Telnyx
from gateway.providers.twilio import Twilio
from gateway.providers.vonage import Vonage
from gateway.providers.vonage_messages import VonageMessages

PROVIDERS: dict[str, type[Provider]] = {
    Infobip.name: Infobip,
    Plivo.name: Plivo,
    Twilio.name: Twilio,
    Vonage.name: Vonage,
    VonageMessages.name: VonageMessages,
    Sinch.name: Sinch,
    Telnyx.name: Telnyx,
    Bird.name: Bird,
    MessageBird.name: MessageBird,
    AwsSns.name: AwsSns,
    StandardWebhooks.name: StandardWebhooks,
}

__all__ = ["PROVIDERS", "InboundRequest", "Parsed", "Provider"]
