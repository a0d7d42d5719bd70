"""The chart's probes and scrape paths against the real processes, started on loopback.

Each process gets the environment the chart renders for it; only the bind addresses, ports
and the SQLite path are moved to loopback and a temporary directory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.deploy.chart import Object, mounted_files, one, pod_spec, render

pytestmark = pytest.mark.e2e

LOOPBACK = "127.0.0.1"
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running(command: str, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a console script of this environment until the block ends."""
    script = Path(sys.executable).parent / command
    log = (cwd / f"{command}.log").open("wb")
    process = subprocess.Popen(
        [str(script)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode} while waiting for {what}"
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def serving(target: str, service: str) -> bool:
    """What a kubelet's gRPC probe asks: grpc.health.v1.Health/Check for ``service``."""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            answer = check(health_pb2.HealthCheckRequest(service=service), timeout=1)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def answers_ok(url: str) -> bool:
    return http_status(url) == 200


def probes(deployment: Object) -> list[Object]:
    (container,) = pod_spec(deployment)["containers"]
    return [container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")]


def test_probes_and_metrics_answer_on_the_running_processes(tmp_path: Path) -> None:
    objects = render()
    statusd, gateway = one(objects, "Deployment", "statusd"), one(objects, "Deployment", "gateway")
    grpc_port, metrics_port, http_port = free_port(), free_port(), free_port()
    statusd_env = mounted_files(objects, statusd, tmp_path) | {
        "DLRHUB_STATUSD_HOST": LOOPBACK,
        "DLRHUB_STATUSD_PORT": str(grpc_port),
        "DLRHUB_STATUSD_METRICS_HOST": LOOPBACK,
        "DLRHUB_STATUSD_METRICS_PORT": str(metrics_port),
        "DLRHUB_SQLITE_PATH": str(tmp_path / "dlrhub.sqlite3"),
    }
    gateway_env = mounted_files(objects, gateway, tmp_path) | {
        "DLRHUB_GATEWAY_HOST": LOOPBACK,
        "DLRHUB_GATEWAY_PORT": str(http_port),
    }
    # The chart's target, scheme and all, with the headless Service's name moved to loopback.
    chart_target = gateway_env["DLRHUB_STATUSD_TARGET"]
    assert chart_target.startswith("dns:///")
    gateway_env["DLRHUB_STATUSD_TARGET"] = f"dns:///{LOOPBACK}:{grpc_port}"
    target = f"{LOOPBACK}:{grpc_port}"
    with running("dlrhub-statusd", statusd_env, tmp_path) as statusd_process:
        for probe in probes(statusd):
            service = probe["grpc"].get("service", "")
            check = functools.partial(serving, target, service)
            wait_for(check, f"gRPC health {service!r}", statusd_process)
        metrics = f"http://{LOOPBACK}:{metrics_port}/metrics"
        assert http_status(metrics) == 200
        with running("dlrhub-gateway", gateway_env, tmp_path) as gateway_process:
            for probe in probes(gateway):
                url = f"http://{LOOPBACK}:{http_port}{probe['httpGet']['path']}"
                wait_for(functools.partial(answers_ok, url), url, gateway_process)
            assert http_status(f"http://{LOOPBACK}:{http_port}/metrics") == 200
