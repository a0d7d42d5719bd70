"""What a provider's credentials are, and the settings class derived from them.

A provider module declares one :class:`Credentials` subclass (one account's worth of secrets
and options); :meth:`ProviderSettings.for_provider` turns it into the settings class that reads
``DLRHUB_<PROVIDER>_<FIELD>`` for the default account and ``DLRHUB_<PROVIDER>_ACCOUNTS`` (JSON)
for named ones. :class:`~gateway.providers.base.Provider` does this for every subclass.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from dlrhub_common.settings import BaseConfig


class Credentials(BaseModel):
    """Base of a provider's credential fields: one account's worth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def configured(self) -> bool:
        """True when at least one secret is set."""
        return any(_is_set_secret(value) for _, value in self)

    def redacted_names(self) -> list[str]:
        """Which credentials are set, by name only (for start-up logs): ``["basic_auth"]``."""
        return [name for name, value in self if _is_set_secret(value)]


def _is_set_secret(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return isinstance(value, tuple) and any(isinstance(item, SecretStr) for item in value)


class ProviderSettings(BaseConfig):
    """Base of a provider's settings. A subclass inherits its credentials class too, so the
    default account's credentials come from ``DLRHUB_<PROVIDER>_*``; named accounts come from
    ``DLRHUB_<PROVIDER>_ACCOUNTS`` (JSON ``{"<account>": {<same fields, lower case>}}``) and
    are served at ``/webhooks/<provider>/<account>``."""

    #: The provider's credentials class (a base class of the subclass).
    credentials_class: ClassVar[type[Credentials]]

    def account_credentials(self) -> dict[str, Credentials]:
        """``{"": default account, "<account>": ..., ...}``."""
        fields = self.credentials_class.model_fields
        default = self.credentials_class(**{name: getattr(self, name) for name in fields})
        accounts: Mapping[str, Credentials] = getattr(self, "accounts", {})
        return {"": default, **accounts}

    @classmethod
    def for_provider(cls, name: str, credentials: type[Credentials]) -> type[ProviderSettings]:
        """The settings class of provider ``name``: ``DLRHUB_<NAME>_<FIELD>`` for each field of
        ``credentials`` (the default account), and ``DLRHUB_<NAME>_ACCOUNTS``."""
        prefix = f"DLRHUB_{name.upper().replace('-', '_')}_"
        class_name = credentials.__name__.removesuffix("Credentials") + "Settings"
        namespace = {
            "__module__": credentials.__module__,
            "__qualname__": class_name,
            "__doc__": f"``{prefix}*``.",
            "__annotations__": {"accounts": types.GenericAlias(dict, (str, credentials))},
            "model_config": SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True),
            "credentials_class": credentials,
            "accounts": Field(default_factory=dict),
        }
        return cast(type[ProviderSettings], type(class_name, (cls, credentials), namespace))


def tolerance(
    default: int, description: str = "Oldest signed timestamp accepted (0: any).", *, ge: int = 0
) -> Any:
    """The ``timestamp_tolerance_seconds`` field of a provider that signs a time: how old (and,
    for some, how far ahead) a signed time may be, in seconds."""
    return Field(default, ge=ge, description=description)
