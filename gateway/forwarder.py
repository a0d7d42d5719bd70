"""The gateway's one gRPC channel to statusd: :meth:`Forwarder.ingest` makes one
IngestReports call (the :class:`~gateway.coalescer.Coalescer` in front of it gathers
concurrent webhooks into such calls), :meth:`Forwarder.ready` asks whether statusd serves.

Every call has a deadline; the channel retries UNAVAILABLE itself (gRPC service config) and
keeps the connection alive. Any failure to get statusd's confirmation becomes
:class:`~gateway.errors.UpstreamUnavailable`, which the app answers 503, so the provider
retries and nothing is lost.

With ``DLRHUB_GATEWAY_INGEST_TOKEN`` set, every call carries it as a bearer token; with the
``DLRHUB_STATUSD_TLS*`` settings, the channel speaks TLS (mutual TLS with a client
certificate). statusd refusing the credentials is a configuration error: logged loudly and
answered 503, so nothing is lost while it is fixed.

Calls take turns over every address the target resolves to (``round_robin``), so a target
naming several statusd replicas (``DLRHUB_STATUSD_TARGET``: a headless Service
``dns:///statusd-headless:50051``, or ``ipv4:10.0.0.7:50051,10.0.0.8:50051``) spreads the
load over all of them. A replica is skipped while it cannot be reached or its IngestService
health is not SERVING (client-side health checking); the name is resolved again when a
connection fails or statusd ends one at its maximum age, so new replicas are picked up.
"""

from __future__ import annotations

import json
import logging
import time

import grpc
from grpc_health.v1 import health_pb2

from dlrhub.client.connection import TLSConfig, bearer_metadata, open_channel
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from gateway import metrics, tracing
from gateway.errors import Malformed, UpstreamUnavailable
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

INGEST_SERVICE = ingest_pb.DESCRIPTOR.services_by_name["IngestService"].full_name

#: Take turns over every statusd address, skipping those whose IngestService is not SERVING;
#: retry UNAVAILABLE a few times inside the deadline (statusd restarting, a connection reset):
#: a retry picks the next replica.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": INGEST_SERVICE},
        "methodConfig": [
            {
                "name": [{"service": INGEST_SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)
CHANNEL_OPTIONS = [
    ("grpc.service_config", SERVICE_CONFIG),
    # The service config above is the only one: none from DNS TXT records.
    ("grpc.service_config_disable_resolution", 1),
    # Resolve the name again at most this often (on a failed or aged-out connection).
    ("grpc.dns_min_time_between_resolutions_ms", 5_000),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class Forwarder:
    """Sends normalized reports to statusd and checks that statusd is serving."""

    def __init__(
        self,
        target: str,
        *,
        deadline: float = 5.0,
        token: str | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        self.target = target
        self.deadline = deadline
        self.metadata = bearer_metadata(token)
        self.channel = open_channel(target, tls=tls, options=CHANNEL_OPTIONS)
        self._ingest = ingest_grpc.IngestServiceStub(self.channel)
        self._health_check = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Forwarder:
        tls = None
        if settings.statusd_tls or settings.statusd_tls_ca or settings.statusd_tls_client_cert:
            key = settings.statusd_tls_client_key
            tls = TLSConfig(
                ca=settings.statusd_tls_ca.encode() if settings.statusd_tls_ca else None,
                cert=(
                    settings.statusd_tls_client_cert.encode()
                    if settings.statusd_tls_client_cert
                    else None
                ),
                key=key.get_secret_value().encode() if key else None,
            )
        token = settings.gateway_ingest_token
        return cls(
            settings.grpc_target,
            deadline=settings.ingest_deadline_seconds,
            token=token.get_secret_value() if token else None,
            tls=tls,
        )

    async def ingest(
        self, reports: list[pb.DeliveryReport], quarantined: list[pb.QuarantinedItem]
    ) -> ingest_pb.IngestReportsResponse:
        """Returns statusd's answer once it has committed these reports; raises
        UpstreamUnavailable or Malformed."""
        request = ingest_pb.IngestReportsRequest(reports=reports, quarantined_items=quarantined)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await self._ingest.IngestReports(
                request,
                timeout=self.deadline,
                metadata=tracing.outgoing(self.metadata),
                wait_for_ready=False,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                # statusd refused what a provider module produced: retrying cannot help.
                log.error("statusd rejected reports: %s", exc.details())
                raise Malformed(f"report rejected by statusd: {exc.details()}") from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                log.error(
                    "statusd refused the gateway's credentials (%s: %s): set "
                    "DLRHUB_GATEWAY_INGEST_TOKEN to one of statusd's DLRHUB_INGEST_TOKENS",
                    code.name,
                    exc.details(),
                )
            else:
                log.warning("statusd did not confirm: %s %s", code.name, exc.details())
            raise UpstreamUnavailable(f"statusd did not confirm the commit ({code.name})") from None
        finally:
            metrics.FORWARD_LATENCY.labels(code.name).observe(time.perf_counter() - started)

    async def ready(self, timeout: float = 1.0) -> bool:
        """True when statusd reports IngestService SERVING."""
        try:
            response = await self._health_check(
                health_pb2.HealthCheckRequest(service=INGEST_SERVICE), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            serving = False
        else:
            serving = response.status == health_pb2.HealthCheckResponse.SERVING
        metrics.STATUSD_UP.set(1 if serving else 0)
        return serving

    async def close(self) -> None:
        await self.channel.close()
