"""Which ``DLRHUB_*`` variables dlrhub knows, so a misspelt one stops start-up.

A variable nobody reads is worse than a wrong value: ``DLRHUB_READ_TOKEN`` for
``DLRHUB_READ_TOKENS`` silently turns statusd's authentication off. Every process checks the
whole environment at start-up against every setting of dlrhub, its own and the other
process's (one environment often serves both), and stops with one line naming the unknown
variable and the nearest known one.

The names come from the settings classes (each field's variable and its ``_FILE`` variant).
statusd cannot import the gateway's classes (they pull in Sanic and every provider), so it
reads the gateway's names from :data:`GATEWAY_SETTINGS` below, which
tests/dlrhub_common/test_config_names.py keeps equal to what the gateway's classes declare.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from pydantic_settings import BaseSettings

from dlrhub_common.settings import ENV_PREFIX, ConfigError, env_name

__all__ = ["GATEWAY_SETTINGS", "OTHER_VARIABLES", "check_environment", "variables"]

#: Variables read outside the settings classes (the test suite's knobs).
OTHER_VARIABLES = frozenset(
    {"DLRHUB_TEST_MONGODB_URI", "DLRHUB_FUZZ_EXAMPLES", "DLRHUB_FUZZ_HTTP_EXAMPLES"}
)


def variables(*settings_classes: type[BaseSettings]) -> frozenset[str]:
    """Every variable the classes read: each field's, and its ``_FILE`` variant."""
    names = {env_name(cls, field) for cls in settings_classes for field in cls.model_fields}
    return frozenset(names | {f"{name}_FILE" for name in names})


def check_environment(known: Iterable[str], environ: Mapping[str, str]) -> None:
    """Raises :class:`ConfigError` naming every ``DLRHUB_*`` variable that is not in
    ``known``, each with the nearest known name."""
    known = frozenset(known) | OTHER_VARIABLES
    problems = []
    for name in sorted(environ):
        variable = name.upper()
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        nearest = difflib.get_close_matches(variable, known, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        problems.append(f"{name} is not a dlrhub setting{hint}")
    if problems:
        raise ConfigError("; ".join(problems))


#: The gateway's settings (GatewaySettings and every provider's), which statusd accepts too;
#: tests/dlrhub_common/test_config_names.py says what to add or remove when they change.
_GATEWAY_FIELDS = (
    "DLRHUB_AUTH_FAILURE_LIMIT_PER_MINUTE",
    "DLRHUB_AWS_SNS_ACCOUNTS",
    "DLRHUB_AWS_SNS_CERT_DIR",
    "DLRHUB_AWS_SNS_CONFIRM_SUBSCRIPTIONS",
    "DLRHUB_AWS_SNS_SAMPLE_SIGNING_KEY",
    "DLRHUB_AWS_SNS_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_AWS_SNS_TOPIC_ARNS",
    "DLRHUB_BIRD_ACCOUNTS",
    "DLRHUB_BIRD_SIGNING_KEY",
    "DLRHUB_BIRD_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_COALESCE_MAX_CALLS",
    "DLRHUB_COALESCE_MAX_REPORTS",
    "DLRHUB_GATEWAY_HOST",
    "DLRHUB_GATEWAY_INGEST_TOKEN",
    "DLRHUB_GATEWAY_PORT",
    "DLRHUB_INFOBIP_ACCOUNTS",
    "DLRHUB_INFOBIP_BASIC_AUTH",
    "DLRHUB_INFOBIP_HMAC_HEADER",
    "DLRHUB_INFOBIP_HMAC_SECRET",
    "DLRHUB_INFOBIP_URL_TOKEN",
    "DLRHUB_INGEST_DEADLINE_SECONDS",
    "DLRHUB_INSECURE_PROVIDERS",
    "DLRHUB_KEEP_ALIVE_TIMEOUT_SECONDS",
    "DLRHUB_LOG_FORMAT",
    "DLRHUB_LOG_LEVEL",
    "DLRHUB_LOG_PHONE_NUMBERS",
    "DLRHUB_MAX_BODY_BYTES",
    "DLRHUB_MAX_CONNECTIONS",
    "DLRHUB_MAX_HEADERS",
    "DLRHUB_MAX_ITEMS_PER_REQUEST",
    "DLRHUB_MAX_QUEUED_REPORTS",
    "DLRHUB_MAX_REQUESTS_IN_FLIGHT",
    "DLRHUB_MESSAGEBIRD_ACCOUNTS",
    "DLRHUB_MESSAGEBIRD_SIGNING_KEY",
    "DLRHUB_MESSAGEBIRD_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_NONCE_CACHE_SIZE",
    "DLRHUB_NONCE_TTL_SECONDS",
    "DLRHUB_PLIVO_ACCOUNTS",
    "DLRHUB_PLIVO_ALLOW_V2",
    "DLRHUB_PLIVO_AUTH_TOKEN",
    "DLRHUB_PUBLIC_URL",
    "DLRHUB_RATE_LIMIT_BURST_SECONDS",
    "DLRHUB_RATE_LIMIT_PER_ACCOUNT",
    "DLRHUB_RATE_LIMIT_PER_IP",
    "DLRHUB_REJECTION_LOG_PER_MINUTE",
    "DLRHUB_REJECTION_LOG_SUMMARY_SECONDS",
    "DLRHUB_REQUEST_TIMEOUT_SECONDS",
    "DLRHUB_SHUTDOWN_GRACE_SECONDS",
    "DLRHUB_SINCH_ACCOUNTS",
    "DLRHUB_SINCH_BASIC_AUTH",
    "DLRHUB_SINCH_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_SINCH_WEBHOOK_SECRET",
    "DLRHUB_STANDARD_WEBHOOKS_ACCOUNTS",
    "DLRHUB_STANDARD_WEBHOOKS_FIELD_MAP",
    "DLRHUB_STANDARD_WEBHOOKS_SECRET",
    "DLRHUB_STANDARD_WEBHOOKS_STATUS_MAP",
    "DLRHUB_STANDARD_WEBHOOKS_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_STATUSD_HOST",
    "DLRHUB_STATUSD_PORT",
    "DLRHUB_STATUSD_TARGET",
    "DLRHUB_STATUSD_TLS",
    "DLRHUB_STATUSD_TLS_CA",
    "DLRHUB_STATUSD_TLS_CLIENT_CERT",
    "DLRHUB_STATUSD_TLS_CLIENT_KEY",
    "DLRHUB_TELNYX_ACCOUNTS",
    "DLRHUB_TELNYX_PUBLIC_KEY",
    "DLRHUB_TELNYX_SAMPLE_SIGNING_KEY",
    "DLRHUB_TELNYX_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_TRUSTED_PROXIES",
    "DLRHUB_TWILIO_ACCOUNTS",
    "DLRHUB_TWILIO_AUTH_TOKEN",
    "DLRHUB_VONAGE_ACCOUNTS",
    "DLRHUB_VONAGE_CLIENT_REF_IS_PARENT",
    "DLRHUB_VONAGE_MESSAGES_ACCOUNTS",
    "DLRHUB_VONAGE_MESSAGES_SIGNATURE_SECRET",
    "DLRHUB_VONAGE_MESSAGES_TIMESTAMP_TOLERANCE_SECONDS",
    "DLRHUB_VONAGE_SIGNATURE_METHOD",
    "DLRHUB_VONAGE_SIGNATURE_SECRET",
    "DLRHUB_VONAGE_TIMESTAMP_TOLERANCE_SECONDS",
)
#: :data:`_GATEWAY_FIELDS` and their ``_FILE`` variants.
GATEWAY_SETTINGS = frozenset(_GATEWAY_FIELDS) | {f"{name}_FILE" for name in _GATEWAY_FIELDS}
