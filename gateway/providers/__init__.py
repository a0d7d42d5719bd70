"""The provider registry: one line per provider module, no discovery magic.

Adding a provider is one module under this package, its tests, and one line here
(see docs/adding-a-provider.md).
"""

from __future__ import annotations

from gateway.providers.base import InboundRequest, Parsed, Provider
from gateway.providers.infobip import Infobip
from gateway.providers.plivo import Plivo

PROVIDERS: dict[str, type[Provider]] = {
    Infobip.name: Infobip,
    Plivo.name: Plivo,
}

__all__ = ["PROVIDERS", "InboundRequest", "Parsed", "Provider"]
