"""dlrhub_common/config_names.py: the names every process accepts, and the one line a misspelt
``DLRHUB_*`` variable stops start-up with (the processes themselves: tests/statusd/test_main.py,
tests/gateway/test_main.py, tests/dlrhub_cli/test_main.py)."""

from __future__ import annotations

import pytest

from dlrhub_common.config_names import (
    GATEWAY_SETTINGS,
    OTHER_VARIABLES,
    check_environment,
    variables,
)
from dlrhub_common.settings import ConfigError
from gateway.settings import GatewaySettings, known_variables
from statusd.settings import StatusdSettings


def test_statusd_knows_every_gateway_setting() -> None:
    """statusd cannot import the gateway's classes, so it keeps their names; they must agree."""
    from gateway.providers import PROVIDERS

    declared = variables(GatewaySettings, *(p.settings_class for p in PROVIDERS.values()))
    missing = sorted(name for name in declared - GATEWAY_SETTINGS if not name.endswith("_FILE"))
    extra = sorted(name for name in GATEWAY_SETTINGS - declared if not name.endswith("_FILE"))
    assert (missing, extra) == ([], []), (
        f"dlrhub_common/config_names.py _GATEWAY_FIELDS: add {missing}, remove {extra}"
    )


def test_every_process_knows_the_same_names() -> None:
    assert known_variables() == variables(StatusdSettings) | GATEWAY_SETTINGS


def test_names_come_from_the_fields_and_their_file_variants() -> None:
    names = known_variables()
    assert {"DLRHUB_READ_TOKENS", "DLRHUB_READ_TOKENS_FILE", "DLRHUB_GATEWAY_PORT"} <= names
    assert {"DLRHUB_INFOBIP_BASIC_AUTH", "DLRHUB_INFOBIP_ACCOUNTS_FILE"} <= names
    assert {"DLRHUB_AWS_SNS_CERT_DIR", "DLRHUB_TELNYX_SAMPLE_SIGNING_KEY"} <= names


def test_a_misspelt_variable_names_the_nearest_setting() -> None:
    environ = {"DLRHUB_READ_TOKEN": "t", "DLRHUB_GATEWAY_PORT": "8080", "PATH": "/bin"}
    with pytest.raises(ConfigError) as caught:
        check_environment(known_variables(), environ)
    assert str(caught.value) == (
        "DLRHUB_READ_TOKEN is not a dlrhub setting; did you mean DLRHUB_READ_TOKENS?"
    )


def test_every_unknown_variable_is_named_on_one_line() -> None:
    environ = {"DLRHUB_ZZZ_QQQ": "1", "DLRHUB_INFOBIP_BASIC_AUHT": "a:b"}
    with pytest.raises(ConfigError) as caught:
        check_environment(known_variables(), environ)
    assert str(caught.value) == (
        "DLRHUB_INFOBIP_BASIC_AUHT is not a dlrhub setting; did you mean "
        "DLRHUB_INFOBIP_BASIC_AUTH?; DLRHUB_ZZZ_QQQ is not a dlrhub setting"
    )


def test_known_test_and_fuzz_variables_and_other_prefixes_pass() -> None:
    environ = dict.fromkeys(OTHER_VARIABLES, "1") | {"DLRHUBX": "1", "HOME": "/root"}
    check_environment(known_variables(), environ | {"DLRHUB_LOG_LEVEL": "debug"})
