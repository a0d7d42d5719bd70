"""Configuration plumbing shared by the gateway and statusd.

Every setting comes from an environment variable with the ``DLRHUB_`` prefix. Each one can
also be read from a file named by ``<VARIABLE>_FILE`` (Kubernetes Secrets mounted as files);
the variable itself wins when both are set. Secret lists are comma-separated, so several
secrets can be valid at once while one is rotated. A bad value stops start-up with one
:class:`ConfigError` whose message names the variable to fix, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = [
    "BaseConfig",
    "BasicPairs",
    "CommaList",
    "ConfigError",
    "Pem",
    "PemSecret",
    "Secrets",
    "env_name",
    "load",
    "split_commas",
]

ENV_PREFIX = "DLRHUB_"


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


def split_commas(value: object) -> object:
    """Turns ``"a, b,c"`` into ``("a", "b", "c")``; other values pass through. An empty item
    (``"a,,b"``, a trailing comma) is an error: it is a value lost, not one meant."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return ()
    parts = tuple(part.strip() for part in value.split(","))
    if not all(parts):
        raise ValueError("an empty item in the comma-separated list (a doubled or trailing comma)")
    return parts


def _check_basic_pairs(values: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
    for number, value in enumerate(values, start=1):
        _, colon, _ = value.get_secret_value().partition(":")
        if not colon:
            raise ValueError(f"item {number} is not a user:password pair")
    return values


#: A comma-separated list of plain strings (``DLRHUB_INSECURE_PROVIDERS=infobip,plivo``).
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_commas)]
#: A comma-separated list of secrets, several valid at once for rotation; never printed.
Secrets = Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(split_commas)]
#: A comma-separated list of HTTP Basic ``user:password`` pairs (secrets).
BasicPairs = Annotated[Secrets, AfterValidator(_check_basic_pairs)]

#: The error type of PEM text that is not PEM; :func:`describe` names where it came from.
NOT_PEM = "not_pem"


def _check_pem(text: str) -> str:
    if "-----BEGIN " not in text:
        raise PydanticCustomError(NOT_PEM, "not PEM text (no -----BEGIN line)")
    return text


def _check_pem_secret(value: SecretStr) -> SecretStr:
    _check_pem(value.get_secret_value())
    return value


#: PEM text (certificates), usually given as a file with ``<VARIABLE>_FILE``.
Pem = Annotated[str, AfterValidator(_check_pem)]
#: PEM text that is secret (private keys): never printed.
PemSecret = Annotated[SecretStr, AfterValidator(_check_pem_secret)]


class _FileVariables(PydanticBaseSettingsSource):
    """Reads ``<VARIABLE>_FILE`` for every field: the file's text, trailing newline dropped."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = env_name(self.settings_cls, field_name) + "_FILE"
        path = self._environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
        return text.rstrip("\r\n"), field_name, self.field_is_complex(field)

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, is_complex = self.get_field_value(field, name)
            if value is None:
                continue
            values[key] = self.decode_complex_value(key, field, value) if is_complex else value
        return values


class BaseConfig(BaseSettings):
    """Base of every settings class: ``DLRHUB_`` prefix, frozen, ``*_FILE`` variants."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileVariables(settings_cls, os.environ)

    def redacted(self) -> dict[str, object]:
        """The settings as a dict that is safe to log: secrets show as ``**********``."""
        return {name: _redact(value) for name, value in self}


def _redact(value: object) -> object:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, tuple):
        return tuple(_redact(item) for item in value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return {name: _redact(item) for name, item in value}
    return value


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets ``field_name`` of ``settings_cls``."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


_Config = TypeVar("_Config", bound=BaseSettings)


def load(settings_cls: type[_Config], **overrides: Any) -> _Config:
    """Builds ``settings_cls`` from the environment; raises :class:`ConfigError` on bad values."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(settings_cls, exc.errors(include_input=False))) from None
    except SettingsError as exc:  # a value that is not the JSON its field needs
        match = re.search(r'field "(\w+)"', str(exc))
        variable = env_name(settings_cls, match.group(1)) if match else "configuration"
        raise ConfigError(f"{variable}: not valid JSON for this setting") from None


def describe(settings_cls: type[BaseSettings], errors: Iterable[Mapping[str, Any]]) -> str:
    """One line per problem, each naming its environment variable and never its value."""
    lines = []
    for error in errors:
        location = error.get("loc") or ("",)
        field = str(location[0])
        variable = env_name(settings_cls, field) if field else "configuration"
        detail = ".".join(str(part) for part in location[1:])
        where = f"{variable}[{detail}]" if detail else variable
        if error.get("type") == NOT_PEM:
            lines.append(_not_pem(where, os.environ))
        else:
            lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines) or "invalid configuration"


def _not_pem(variable: str, environ: Mapping[str, str]) -> str:
    """Names the file when the text came from ``<VARIABLE>_FILE``, else suggests it."""
    path = environ.get(f"{variable}_FILE")
    if path and not environ.get(variable):
        return f"{variable}_FILE: {path} is not PEM text (no -----BEGIN line)"
    return (
        f"{variable}: not PEM text (no -----BEGIN line); to read it from a file, "
        f"set {variable}_FILE to the file's path instead"
    )
