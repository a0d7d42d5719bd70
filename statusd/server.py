"""statusd's process: the grpc.aio server, health, reflection, metrics and background tasks.

:class:`Statusd` wires the parts together and can run in-process (tests bind 127.0.0.1:0):
store, group committer, Watch change hub (woken by every commit), bearer-token interceptor,
TLS when configured. :func:`serve` is the process entry point: start, wait for SIGTERM or
SIGINT, then shut down gracefully: health turns NOT_SERVING, Watch streams end with
UNAVAILABLE (clients resume elsewhere), calls in flight get the grace period to finish,
pending commits drain, the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from dlrhub.v1 import (
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    status_service_pb2,
    status_service_pb2_grpc,
)
from dlrhub_common.net import BindError, loopback
from statusd import auth, metrics, tracing
from statusd.auth import BearerAuth
from statusd.committer import GroupCommitter
from statusd.cursors import CursorCodec
from statusd.metrics import GrpcMetrics
from statusd.reads import Reader
from statusd.registrations import Registrar, observe_receipts
from statusd.service import IngestService, StatusService
from statusd.settings import StatusdSettings
from statusd.storage import Store, StoreUnavailable, open_store
from statusd.sweeper import ReportSweeper
from statusd.watch import ChangeHub

log = logging.getLogger(__name__)

INGEST_SERVICE = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
STATUS_SERVICE = status_service_pb2.DESCRIPTOR.services_by_name["StatusService"].full_name
#: Services whose health follows the store: NOT_SERVING while a ping fails, and from
#: ``health_commit_failures`` failed commits in a row until a commit or a write probe
#: succeeds. The server as a whole ("") is SERVING while the process runs, so a liveness
#: probe on "" never restarts statusd for a store outage, while readiness probes on these
#: services take it out of rotation.
HEALTH_SERVICES = (INGEST_SERVICE, STATUS_SERVICE)
HEALTH_INTERVAL_SECONDS = 2.0
PURGE_INTERVAL_SECONDS = 3600.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: grpcio shares a port with any other process that asks (SO_REUSEPORT) unless told not to:
#: a second statusd on the same port would silently take half the calls.
NO_REUSEPORT = ("grpc.so_reuseport", 0)
MAX_PENDING_CALLS = 100_000


class Statusd:
    """One statusd instance: store, group committer, gRPC server and background tasks."""

    def __init__(self, settings: StatusdSettings, store: Store | None = None) -> None:
        """Raises ConfigError, before opening or binding anything, when the settings would
        leave statusd open beyond loopback (see :mod:`statusd.auth`)."""
        auth.check_exposure(settings)
        codec = CursorCodec(auth.signing_keys(settings))
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.committer = GroupCommitter(
            self.store,
            max_reports=settings.group_commit_max_reports,
            window=settings.group_commit_window_ms / 1000,
            on_commit=self._committed,
            on_failure=self._commit_failed,
            on_receipts=observe_receipts,
        )
        self.hub = ChangeHub(
            self.store,
            capacity=settings.watch_queue_size,
            max_streams=settings.watch_max_streams,
            max_streams_per_client=settings.watch_max_streams_per_client,
            quiet=self.committer.quiet,
            cpu_share=settings.watch_cpu_share,
        )
        self.health = health.aio.HealthServicer()
        self.auth = BearerAuth(auth.role_tokens(settings))
        self.reader = Reader(self.store, codec, settings.multipart_policy)
        self.sweeper = ReportSweeper(
            self.store, self.committer, interval=settings.report_sweep_seconds
        )
        self.server = grpc.aio.server(
            interceptors=_interceptors(self.auth),
            options=[
                NO_REUSEPORT,
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                *_connection_age(settings.grpc_max_connection_age_seconds),
                # Calls that arrived but await their handler. Above gRPC's default (1,000) it
                # drops calls at random, and the clients wait forever: a burst of Watch
                # streams (thousands reconnecting after a restart) would hang some of them.
                ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ],
        )
        #: Plaintext health only (DLRHUB_STATUSD_HEALTH_PORT), for probes that cannot speak TLS.
        self.health_server: grpc.aio.Server | None = None
        self.port = 0
        self.health_port = 0
        self.metrics_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_server: Any = None
        self.store_open = asyncio.Event()
        self._serving: bool | None = None
        self._open_error = ""
        #: Set after ``health_commit_failures`` failed commits in a row; cleared by a
        #: successful commit or write probe.
        self._commits_failing = False
        self._last_idle = 0.0
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Serves at once; readiness follows the store. A store that cannot be opened yet (a
        MongoDB that is still starting) keeps health NOT_SERVING while statusd retries, and
        Watch answers UNAVAILABLE until its change hub can read the store. A port that cannot
        be bound raises :class:`~dlrhub_common.net.BindError` naming its variable."""
        settings = self.settings
        self.committer.start()
        ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(
            IngestService(self.committer, self.reader), self.server
        )
        status_service_pb2_grpc.add_StatusServiceServicer_to_server(
            StatusService(
                self.reader,
                self.hub,
                Registrar(self.committer, settings.report_timeout_micros),
                heartbeat_seconds=self.settings.watch_heartbeat_seconds,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*HEALTH_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = _add_port(self._bind, "DLRHUB_STATUSD_PORT", settings.statusd_port, settings)
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        if self.settings.statusd_health_port:
            self.health_server = grpc.aio.server(options=[NO_REUSEPORT])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = _add_port(
                self.health_server.add_insecure_port,
                "DLRHUB_STATUSD_HEALTH_PORT",
                settings.statusd_health_port,
                settings,
            )
            await self.health_server.start()
        await self._open_store()
        await self.hub.start()
        await self._check_store()
        if settings.statusd_metrics_port:
            host, port = settings.statusd_metrics_host, settings.statusd_metrics_port
            try:
                self._metrics_server, _ = start_http_server(port, host)
            except OSError as exc:
                reason = "is already in use" if exc.errno == errno.EADDRINUSE else ""
                raise BindError("DLRHUB_STATUSD_METRICS_PORT", host, port, reason) from None
            self.metrics_port = self._metrics_server.server_port
        self._tasks = [
            asyncio.create_task(self._watch_store(), name="store-health"),
            asyncio.create_task(self._purge_forever(), name="retention-purge"),
            asyncio.create_task(self.sweeper.run(self.store_open), name="report-timeouts"),
        ]

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, finish calls in flight, drain commits, close."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.hub.stop()
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        await self.committer.stop()
        await self.store.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()

    def _bind(self, address: str) -> int:
        """Adds the gRPC port, with TLS (and client certificates) when configured."""
        settings = self.settings
        if settings.tls_cert is None or settings.tls_key is None:
            if not loopback(settings.statusd_host):
                log.warning(
                    "gRPC on %s is plaintext: set DLRHUB_TLS_CERT_FILE and DLRHUB_TLS_KEY_FILE "
                    "unless a mesh or proxy encrypts it",
                    settings.grpc_address,
                )
            return self.server.add_insecure_port(address)
        client_ca = settings.tls_client_ca
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.get_secret_value().encode(), settings.tls_cert.encode())],
            root_certificates=client_ca.encode() if client_ca else None,
            require_client_auth=client_ca is not None,
        )
        return self.server.add_secure_port(address, credentials)

    async def _open_store(self) -> bool:
        """Opens the store (connect, create the schema or indexes); False while it cannot."""
        try:
            await self.store.open()
        except StoreUnavailable as exc:
            if str(exc) != self._open_error:  # one line per distinct reason, not per attempt
                log.warning(
                    "store not reachable; retrying every %g s: %s", HEALTH_INTERVAL_SECONDS, exc
                )
                self._open_error = str(exc)
            return False
        log.info("store open", extra={"store": self.store.name})
        self.store_open.set()
        return True

    def _committed(self) -> None:
        self.hub.notify()
        if self._commits_failing:
            self._commits_failing = False
            log.info("store commits succeed again", extra={"store": self.store.name})
            self._soon(self._check_store())

    def _commit_failed(self, consecutive: int) -> None:
        if consecutive >= self.settings.health_commit_failures and not self._commits_failing:
            self._commits_failing = True
            log.warning(
                "store commits failing: %d in a row; readiness is NOT_SERVING until one succeeds",
                consecutive,
            )
            self._soon(self._publish(serving=False))

    def _soon(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _check_store(self) -> bool:
        """Pings the store (after failed commits: a write probe) and publishes readiness."""
        serving = False
        if self.store_open.is_set():
            failing = self._commits_failing
            try:
                await (self.store.probe_write() if failing else self.store.ping())
            except StoreUnavailable as exc:
                if self._serving is not False:  # log the change, not every failed ping
                    log.warning("store unavailable: %s", exc)
            else:
                if failing and self._commits_failing:
                    self._commits_failing = False
                    log.info("store write probe succeeded", extra={"store": self.store.name})
                serving = not self._commits_failing
                if serving and self._serving is False:
                    log.info("store available again", extra={"store": self.store.name})
            self._serving = serving
        await self._publish(serving)
        if serving:
            with contextlib.suppress(StoreUnavailable):
                metrics.QUARANTINE_SIZE.set(await self.store.count_quarantined())
        return serving

    async def _publish(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            await self.health.set(service, status)
        metrics.STORE_UP.labels(self.store.name).set(1 if serving else 0)

    async def _watch_store(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
            if not self.store_open.is_set():
                await self._open_store()
            await self._check_store()
            await self._housekeep()

    async def _housekeep(self) -> None:
        """The store's idle housekeeping, once per quiet spell after commits."""
        last = self.committer.last_commit
        quiet_for = time.monotonic() - last
        if last <= self._last_idle or quiet_for < self.settings.store_idle_seconds:
            return
        if not self.committer.quiet.is_set():
            return
        self._last_idle = time.monotonic()
        try:
            await self.store.idle()
        except StoreUnavailable as exc:
            log.warning("store housekeeping failed: %s", exc)

    async def _purge_forever(self) -> None:
        await self.store_open.wait()
        while True:
            cutoff = time.time_ns() // 1_000 - self.settings.retention_days * 86_400 * 1_000_000
            try:
                purged = await self.store.purge(cutoff)
            except StoreUnavailable as exc:
                log.warning("retention purge failed: %s", exc)
            else:
                if purged:
                    log.info("retention purge", extra={"purged_messages": purged})
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def _interceptors(bearer: BearerAuth) -> list[grpc.aio.ServerInterceptor]:
    """Traces, then metrics, then the token check (so the metrics count refused calls too)."""
    return [*tracing.interceptors(), GrpcMetrics(), *([bearer] if bearer.enabled else [])]


def _add_port(
    add: Callable[[str], int], variable: str, port: int, settings: StatusdSettings
) -> int:
    """Binds ``statusd_host:port`` with ``add``; the port bound, or :class:`BindError`."""
    host = settings.statusd_host
    try:
        bound = add(f"{host}:{port}")
    except RuntimeError:  # grpcio >= 1.62 raises where older ones returned 0
        bound = 0
    if bound == 0:
        raise BindError(variable, host, port)
    return bound


def _connection_age(seconds: float) -> list[tuple[str, int]]:
    """Server options that end each connection after ``seconds`` (±10%, gRPC's jitter), so
    clients balancing over a DNS name see replicas added since; calls in flight (a Watch
    stream too) finish on the old connection."""
    return [("grpc.max_connection_age_ms", round(seconds * 1000))] if seconds else []


async def serve(settings: StatusdSettings) -> None:
    """Runs statusd until SIGTERM or SIGINT, then shuts down gracefully."""
    daemon = Statusd(settings)
    try:
        await daemon.start()
    except Exception:
        await daemon.stop(0)  # a store it cannot use: stop what already runs, then say why
        raise
    # Everything loaded so far (modules, the servers) lives as long as the process: leave it
    # out of the garbage collector's full passes, which otherwise walk all of it each time (a
    # pause of the event loop that grows with what is loaded).
    gc.freeze()
    log.info(
        "statusd listening",
        extra={
            "grpc": f"{settings.statusd_host}:{daemon.port}",
            "metrics": f"{settings.statusd_metrics_host}:{daemon.metrics_port}"
            if daemon.metrics_port
            else "off",
            "store": daemon.store.name,
            "tls": "mutual" if settings.tls_client_ca else "on" if settings.tls_cert else "off",
            "auth": ",".join(daemon.auth.roles) or "OFF",
        },
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("statusd stopping", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await daemon.stop()
    log.info("statusd stopped")
