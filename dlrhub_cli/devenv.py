"""``var/dev.env``: credentials for local development, generated once and reused.

``dlrhub run`` writes it when no provider credentials are configured, so a fresh checkout
gets signed webhooks working at once; every ``dlrhub`` command reads it for variables the
environment does not set, so ``dlrhub send-sample`` signs with the same secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

DEV_ENV = Path("var/dev.env")


def has_provider_credentials() -> bool:
    """True when the environment configures credentials for some provider account."""
    from dlrhub_common.settings import load as load_settings
    from gateway.providers import PROVIDERS

    for provider in PROVIDERS.values():
        settings = load_settings(provider.settings_class)
        if any(creds.configured() for creds in settings.account_credentials().values()):
            return True
    return False


def generate(directory: Path = DEV_ENV.parent) -> dict[str, str]:
    """Fresh development credentials for every provider, each made by its provider
    (:meth:`~gateway.providers.base.Provider.dev_credentials`; files go under ``directory``)."""
    from gateway.providers import PROVIDERS

    values: dict[str, str] = {}
    for provider in PROVIDERS.values():
        values.update(provider.dev_credentials(directory))
    return values


def read(path: Path = DEV_ENV) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def write(values: Mapping[str, str], path: Path = DEV_ENV) -> None:
    """Writes an env file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Development credentials written by `dlrhub run`. Not for production."]
    lines += [f"{key}={value}" for key, value in values.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def ensure(path: Path = DEV_ENV) -> bool:
    """When the environment configures no provider, creates ``path`` (once) and loads it
    into ``os.environ``. Returns True when development credentials are in use."""
    if has_provider_credentials():
        return False
    if not path.exists():
        write(generate(path.parent), path)
    load(os.environ, path)
    return True


def load(environ: MutableMapping[str, str], path: Path = DEV_ENV) -> None:
    """Adds the file's variables that ``environ`` does not set yet."""
    for key, value in read(path).items():
        environ.setdefault(key, value)


def load_if_present(path: Path = DEV_ENV) -> None:
    """Loads ``path`` into ``os.environ`` when it exists and nothing configures a provider."""
    if path.exists() and not has_provider_credentials():
        load(os.environ, path)
