"""The chart's statusd auth: a generated Secret kept across upgrades (Helm's own lookup
against a stand-in API server), each component's files, and the processes authenticating
with what the chart renders."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import grpc
import helm_python
import pytest
import yaml

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.deploy import app_contract as app
from tests.deploy.chart import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    Object,
    chart,
    container_env,
    mounted_files,
    of_kind,
    one,
    pod_spec,
    render,
    render_files,
    secret_value,
)
from tests.deploy.test_chart_processes import LOOPBACK, free_port, running, serving, wait_for

AUTH_SECRET = f"{RELEASE}-statusd-auth"
KEYS = ["admin-token", "ingest-token", "read-token", "token-signing-key"]
#: Auth Secret key → the statusd setting it fills.
STATUSD_FILES = {
    "ingest-token": "DLRHUB_INGEST_TOKENS_FILE",
    "read-token": "DLRHUB_READ_TOKENS_FILE",
    "admin-token": "DLRHUB_ADMIN_TOKENS_FILE",
    "token-signing-key": "DLRHUB_TOKEN_SIGNING_KEYS_FILE",
}
EXISTING = {"statusd": {"auth": {"existingSecret": "sms-statusd-auth"}}}
DENIED = grpc.StatusCode.PERMISSION_DENIED


def auth_secret(objects: list[Object]) -> Object:
    (secret,) = [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == AUTH_SECRET]
    return secret


def decoded(secret: Object) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def auth_files(objects: list[Object], name: str) -> dict[str, tuple[str, str]]:
    """A component's DLRHUB_*_FILE variables under the auth mount → (Secret, key)."""
    deployment = one(objects, "Deployment", name)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "auth"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == "auth"]
    items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    found = {}
    for variable, value in container_env(objects, deployment).items():
        path = Path(value)
        if variable.endswith("_FILE") and str(path.parent) == mount["mountPath"]:
            found[variable] = (volume["secret"]["secretName"], items.pop(path.name))
    assert items == {}, "every mounted key is read"
    return found


def test_the_chart_generates_every_token_and_the_signing_key() -> None:
    first, second = decoded(auth_secret(render())), decoded(auth_secret(render()))
    assert sorted(first) == KEYS
    for values in (first, second):
        for value in values.values():
            assert re.fullmatch(r"[A-Za-z0-9]{48}", value)
        assert len(set(values.values())) == len(KEYS), "each role its own token"
    assert set(first.values()).isdisjoint(second.values()), "random, not fixed in the chart"


@pytest.mark.parametrize("values", [{}, EXISTING], ids=["generated", "existingSecret"])
def test_statusd_reads_every_key_and_the_gateway_only_the_ingest_token(
    values: dict[str, Any],
) -> None:
    objects = render(values)
    secret = values.get("statusd", {}).get("auth", {}).get("existingSecret") or AUTH_SECRET
    statusd = auth_files(objects, "statusd")
    assert statusd == {variable: (secret, key) for key, variable in STATUSD_FILES.items()}
    gateway = auth_files(objects, "gateway")
    assert gateway == {"DLRHUB_GATEWAY_INGEST_TOKEN_FILE": (secret, "ingest-token")}
    for name, files in (("statusd", statusd), ("gateway", gateway)):
        assert set(files) <= app.component_variables(name), "real settings"
    generated = [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == AUTH_SECRET]
    assert len(generated) == (0 if values else 1)


def checksum(objects: list[Object], name: str) -> str:
    template = one(objects, "Deployment", name)["spec"]["template"]
    return str(template["metadata"]["annotations"]["checksum/auth"])


def test_an_existing_secret_rolls_the_pods_when_its_name_changes() -> None:
    other = {"statusd": {"auth": {"existingSecret": "another"}}}
    for name in ("gateway", "statusd"):
        assert checksum(render(EXISTING), name) == checksum(render(EXISTING), name)
        assert checksum(render(EXISTING), name) != checksum(render(other), name)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"secrets": {"statusd": {"INGEST_TOKENS": "x"}}}, "INGEST_TOKENS"),
        ({"secrets": {"statusd": {"TOKEN_SIGNING_KEYS": "x"}}}, "TOKEN_SIGNING_KEYS"),
        ({"secrets": {"gateway": {"GATEWAY_INGEST_TOKEN": "x"}}}, "GATEWAY_INGEST_TOKEN"),
        ({"statusd": {"config": {"READ_TOKENS": "x"}}}, "READ_TOKENS"),
        ({"gateway": {"config": {"GATEWAY_INGEST_TOKEN": "x"}}}, "GATEWAY_INGEST_TOKEN"),
    ],
)
def test_auth_settings_elsewhere_are_refused(
    values: dict[str, Any], where: str, tmp_path: Path
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=where):
        render(values)
    copy = Path(chart().save_dir(tmp_path))
    (copy / "values.schema.json").unlink()
    with (
        helm_python.Chart.load(copy) as unchecked,
        pytest.raises(helm_python.HelmRenderError, match=rf"{where}.*statusd\.auth"),
    ):
        unchecked.render(values, name=RELEASE, namespace=NAMESPACE)


def test_notes_tell_a_client_how_to_get_its_read_token() -> None:
    for values, secret in (({}, AUTH_SECRET), (EXISTING, "sms-statusd-auth")):
        notes = render_files(values)[f"{CHART_DIR.name}/templates/NOTES.txt"]
        command = (
            f"kubectl --namespace {NAMESPACE} get secret {secret} "
            "-o jsonpath='{.data.read-token}' | base64 -d"
        )
        assert command in notes
        assert "authorization: Bearer" in notes
        assert "admin-token" in notes


class FakeApiServer(BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for Helm's lookup of a Secret: discovery of v1, and
    GET of a Secret in :attr:`secrets` (404 for any other)."""

    secrets: ClassVar[dict[str, Object]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
        if path == "/api/v1":
            resource = {"name": "secrets", "namespaced": True, "kind": "Secret", "verbs": ["get"]}
            body: Object = {"kind": "APIResourceList", "groupVersion": "v1"}
            body["resources"] = [resource]
            code = 200
        elif path.startswith(prefix) and path.removeprefix(prefix) in self.secrets:
            body, code = self.secrets[path.removeprefix(prefix)], 200
        else:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            body["reason"], code = "NotFound", 404
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[helm_python.Config]:
    """A Helm configuration whose lookups reach :class:`FakeApiServer` on loopback."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no kubeconfig of this machine is read
    monkeypatch.delenv("KUBECONFIG", raising=False)
    FakeApiServer.secrets = {}
    server = ThreadingHTTPServer((LOOPBACK, 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{LOOPBACK}:{server.server_address[1]}"
    try:
        with helm_python.Config(kube_apiserver=url, namespace=NAMESPACE) as config:
            yield config
    finally:
        server.shutdown()
        server.server_close()


def render_in(config: helm_python.Config, *, upgrade: bool) -> list[Object]:
    files = config.render(
        chart(), {}, name=RELEASE, namespace=NAMESPACE, is_install=not upgrade, is_upgrade=upgrade
    )
    return [
        document
        for path, text in files.items()
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def test_upgrades_keep_the_generated_values(cluster: helm_python.Config) -> None:
    installed = render_in(cluster, upgrade=False)
    secret = auth_secret(installed)
    FakeApiServer.secrets = {AUTH_SECRET: secret}  # what the install stored
    upgrades = [render_in(cluster, upgrade=True) for _ in range(2)]
    for upgraded in upgrades:
        assert auth_secret(upgraded)["data"] == secret["data"]
    for name in ("gateway", "statusd"):  # unchanged tokens do not roll the pods
        assert checksum(upgrades[0], name) == checksum(upgrades[1], name)
    older = {**secret, "data": {k: v for k, v in secret["data"].items() if k != "admin-token"}}
    FakeApiServer.secrets = {AUTH_SECRET: older}  # a key the Secret does not have yet
    added = decoded(auth_secret(render_in(cluster, upgrade=True)))
    assert {k: v for k, v in added.items() if k != "admin-token"} == decoded(older)
    assert re.fullmatch(r"[A-Za-z0-9]{48}", added["admin-token"])


INFOBIP_URL_TOKEN = "url-token-for-the-test"
DELIVERED = {
    "results": [
        {
            "messageId": "chart-1",
            "to": "41793026727",
            "doneAt": "2026-01-01T12:00:00.000+0000",
            "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED"},
        }
    ]
}


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def code_of(call: Any, *args: Any, token: str | None) -> grpc.StatusCode:
    metadata = bearer(token) if token else None
    try:
        call(*args, metadata=metadata, timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.e2e
def test_the_processes_authenticate_with_what_the_chart_renders(tmp_path: Path) -> None:
    """statusd and the gateway, each with only its own files of the generated Secret: a
    webhook is stored through the gateway's ingest token; reads need the read token."""
    objects = render({"secrets": {"gateway": {"INFOBIP_URL_TOKEN": INFOBIP_URL_TOKEN}}})
    tokens = decoded(auth_secret(objects))
    grpc_port, http_port = free_port(), free_port()
    statusd_env = mounted_files(objects, one(objects, "Deployment", "statusd"), tmp_path) | {
        "DLRHUB_STATUSD_HOST": LOOPBACK,
        "DLRHUB_STATUSD_PORT": str(grpc_port),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        "DLRHUB_SQLITE_PATH": str(tmp_path / "dlrhub.sqlite3"),
    }
    gateway_dir = tmp_path / "gateway"
    gateway_env = mounted_files(objects, one(objects, "Deployment", "gateway"), gateway_dir) | {
        "DLRHUB_GATEWAY_HOST": LOOPBACK,
        "DLRHUB_GATEWAY_PORT": str(http_port),
        "DLRHUB_STATUSD_TARGET": f"dns:///{LOOPBACK}:{grpc_port}",  # the headless name, moved
    }
    assert secret_value(objects, AUTH_SECRET, "read-token") == tokens["read-token"]
    assert sorted(p.name for p in (gateway_dir / AUTH_SECRET).iterdir()) == ["ingest-token"]
    target = f"{LOOPBACK}:{grpc_port}"
    with running("dlrhub-statusd", statusd_env, tmp_path) as statusd_process:
        wait_for(lambda: serving(target, ""), "statusd", statusd_process)
        with running("dlrhub-gateway", gateway_env, gateway_dir) as gateway_process:
            base = f"http://{LOOPBACK}:{http_port}"
            wait_for(lambda: _get(base + "/readyz") == 200, "gateway", gateway_process)
            url = f"{base}/webhooks/infobip?token={INFOBIP_URL_TOKEN}"
            assert _post(url, DELIVERED) == 200
        with grpc.insecure_channel(target) as channel:
            get = status_grpc.StatusServiceStub(channel).GetMessageStatus
            request = status_pb.GetMessageStatusRequest(provider="infobip", message_id="chart-1")
            assert code_of(get, request, token=None) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(get, request, token=tokens["ingest-token"]) == DENIED
            answer = get(request, metadata=bearer(tokens["read-token"]), timeout=5)
            assert answer.message_status.status == pb.DELIVERY_STATUS_DELIVERED
            quarantine = ingest_grpc.IngestServiceStub(channel).ListQuarantinedItems
            listing = ingest_pb.ListQuarantinedItemsRequest()
            assert code_of(quarantine, listing, token=tokens["ingest-token"]) == DENIED
            assert code_of(quarantine, listing, token=tokens["admin-token"]) == grpc.StatusCode.OK


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return int(response.status)
    except OSError:
        return 0


def _post(url: str, body: object) -> int:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return int(response.status)


def test_senders_register_tokens_come_from_the_statusd_secrets() -> None:
    """The chart generates no register token: secrets.statusd.REGISTER_TOKENS gives the
    senders' tokens to statusd (as a file), and to nothing else."""
    objects = render({"secrets": {"statusd": {"REGISTER_TOKENS": "sender-token-0123456789"}}})
    statusd_env = container_env(objects, one(objects, "Deployment", "statusd"))
    gateway_env = container_env(objects, one(objects, "Deployment", "gateway"))
    assert statusd_env["DLRHUB_REGISTER_TOKENS_FILE"].endswith("/REGISTER_TOKENS")
    assert not any("REGISTER" in name for name in gateway_env)
