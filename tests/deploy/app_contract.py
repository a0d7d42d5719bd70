"""What the application itself says it reads and serves, taken from its code.

The chart tests compare the chart against these, so a renamed setting, route, health
service or metric breaks the tests instead of a deployment.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings
from sanic import Sanic

from dlrhub_common.settings import env_name
from gateway import metrics as gateway_metrics
from gateway.app import create_app
from gateway.providers import PROVIDERS
from gateway.settings import GatewayConfig, GatewaySettings
from gateway.tally import LoopMetric
from statusd import metrics as statusd_metrics
from statusd.server import HEALTH_SERVICES
from statusd.settings import StatusdSettings

FILE_SUFFIX = "_FILE"


#: Settings the chart already wires (through ``<VAR>_FILE``) that a parallel change is
#: adding to StatusdSettings. ``test_pending_settings_are_still_missing`` fails once they
#: exist: then delete them here.
def _variables(settings_class: type[BaseSettings]) -> set[str]:
    names = {env_name(settings_class, field) for field in settings_class.model_fields}
    return names | {name + FILE_SUFFIX for name in names}


def gateway_variables() -> set[str]:
    """Every variable the gateway reads: its own settings and every provider's."""
    names = _variables(GatewaySettings)
    for provider in PROVIDERS.values():
        names |= _variables(provider.settings_class)
    return names


def provider_prefixes() -> dict[str, str]:
    """Each provider's variable prefix (``infobip`` → ``DLRHUB_INFOBIP_``)."""
    return {name: env_name(p.settings_class, "") for name, p in PROVIDERS.items()}


def statusd_variables() -> set[str]:
    """Every variable statusd reads."""
    return _variables(StatusdSettings)


def component_variables(component: str) -> set[str]:
    return gateway_variables() if component == "gateway" else statusd_variables()


def default(settings_class: type[BaseSettings], field: str) -> object:
    return settings_class.model_fields[field].default


def gateway_routes() -> set[str]:
    """The GET paths the gateway's Sanic app registers (from ``create_app``)."""
    config = GatewayConfig(settings=GatewaySettings(), endpoints={})
    app = create_app(config)
    try:
        return {
            "/" + route.path.lstrip("/")
            for route in app.router.routes
            if "GET" in route.methods and "<" not in route.path
        }
    finally:
        Sanic.unregister_app(app)


def health_services() -> set[str]:
    """The gRPC health service names statusd serves ("" is the process as a whole)."""
    return {"", *HEALTH_SERVICES}


_SUFFIXES = {
    "counter": ("_total",),  # no _created series: both processes disable them
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "enum": ("",),
}


#: Metric objects: prometheus_client's, and the gateway's lock-free ones (gateway/tally.py).
_METRICS = (MetricWrapperBase, LoopMetric)


def _exposed(module: ModuleType) -> set[str]:
    names: set[str] = set()
    for value in vars(module).values():
        if isinstance(value, _METRICS):
            for family in value.describe():
                names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def metric_names() -> set[str]:
    """Every series name the gateway and statusd expose."""
    return _exposed(gateway_metrics) | _exposed(statusd_metrics)


def metric_families_in_use() -> set[str]:
    """Metric families the application's code updates (``metrics.NAME`` outside metrics.py)."""
    families: set[str] = set()
    for module in (gateway_metrics, statusd_metrics):
        package = Path(str(module.__file__)).parent
        source = "\n".join(
            path.read_text(encoding="utf-8")
            for path in package.rglob("*.py")
            if path.name != "metrics.py"
        )
        for attribute, value in vars(module).items():
            if isinstance(value, _METRICS) and f"metrics.{attribute}" in source:
                families |= {family.name for family in value.describe()}
    return families


def family(series: str) -> str:
    """``dlrhub_x_total`` → ``dlrhub_x`` (the name the metric object was given)."""
    return re.sub(r"_(total|bucket|sum|count|created)$", "", series)


METRIC_NAME = re.compile(r"\b(?:dlrhub|grpc_server)_[a-zA-Z0-9_]+")


def referenced_metrics(promql: str) -> set[str]:
    """The ``dlrhub_*`` and ``grpc_server_*`` identifiers in a PromQL expression."""
    return set(METRIC_NAME.findall(promql))
