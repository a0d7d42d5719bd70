"""Fetching SNS signing certificates: real HTTP to a local server for what the fetch refuses
(redirects, size, errors, a host that trickles), and the cache around it: one fetch per URL
however many wait, a bound on fetches at once, refusals and outages remembered for a while
(under a fake clock), keys kept within a bound, the trusted directory first."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.auth import sns_certificates, sns_signature
from gateway.auth.sns_certificates import CertificateCache, CertificateUnavailable, Refused

URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


@functools.cache
def certificate() -> bytes:
    return sns_signature.signing_pair("sns.eu-west-1.amazonaws.com (test)")[0]


class Handler(BaseHTTPRequestHandler):
    """``/cert.pem`` serves the certificate; the other paths misbehave as named."""

    seen: Counter[str]

    def do_GET(self) -> None:
        self.seen[self.path] += 1
        route = {
            "/cert.pem": lambda: self.answer(200, certificate()),
            "/redirect.pem": lambda: self.answer(302, b"", Location="/cert.pem"),
            "/moved.pem": lambda: self.answer(301, b"", Location="/cert.pem"),
            "/missing.pem": lambda: self.answer(404, b"not here"),
            "/broken.pem": lambda: self.answer(500, b"oops"),
            "/busy.pem": lambda: self.answer(429, b"slow down"),
            "/large.pem": lambda: self.answer(
                200, b"x" * (sns_signature.MAX_CERTIFICATE_BYTES + 1)
            ),
            "/undeclared.pem": self.undeclared,
            "/trickle.pem": self.trickle,
        }.get(self.path, lambda: self.answer(404, b""))
        route()

    def answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def undeclared(self) -> None:
        """More than the limit, with no Content-Length (the connection's end ends it)."""
        self.close_connection = True
        self.send_response(200)
        self.end_headers()
        for _ in range(sns_signature.MAX_CERTIFICATE_BYTES // 1024 + 2):
            self.wfile.write(b"y" * 1024)

    def trickle(self) -> None:
        """A byte every 50 ms: each read is quick, the whole never ends in time."""
        self.close_connection = True
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"-")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return  # the client gave up, as it should

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[tuple[str, Counter[str]]]:
    seen: Counter[str] = Counter()
    handler = type("Recording", (Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_the_fetch_reads_a_certificate(server: tuple[str, Counter[str]]) -> None:
    base, _ = server
    assert sns_certificates.fetch_https(f"{base}/cert.pem") == certificate()


@pytest.mark.parametrize("path", ["/redirect.pem", "/moved.pem"])
def test_redirects_are_refused_not_followed(server: tuple[str, Counter[str]], path: str) -> None:
    base, seen = server
    with pytest.raises(Refused, match="redirects are not followed"):
        sns_certificates.fetch_https(base + path)
    assert seen == {path: 1}  # the target was never asked for


@pytest.mark.parametrize("path", ["/large.pem", "/undeclared.pem"])
def test_more_than_the_size_limit_is_refused(server: tuple[str, Counter[str]], path: str) -> None:
    base, _ = server
    with pytest.raises(Refused, match="larger than"):
        sns_certificates.fetch_https(base + path)


def test_client_errors_are_refusals_server_errors_may_pass(
    server: tuple[str, Counter[str]],
) -> None:
    base, _ = server
    with pytest.raises(Refused, match="404"):
        sns_certificates.fetch_https(f"{base}/missing.pem")
    for path, status in (("/broken.pem", 500), ("/busy.pem", 429)):
        with pytest.raises(OSError, match=f"answered {status}"):
            sns_certificates.fetch_https(base + path)


def test_a_host_that_trickles_is_cut_off_at_the_deadline(
    server: tuple[str, Counter[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    monkeypatch.setattr(sns_certificates, "FETCH_DEADLINE_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="took longer"):
        sns_certificates.fetch_https(f"{base}/trickle.pem")
    assert time.monotonic() - started < 5  # not the 10 s the whole answer would take


def test_nothing_listens_is_a_failure_that_may_pass(server: tuple[str, Counter[str]]) -> None:
    base, _ = server
    closed = base.rsplit(":", 1)[0] + ":1"
    with pytest.raises(OSError):  # noqa: PT011 -- any OSError: connection refused
        sns_certificates.fetch_https(f"{closed}/cert.pem")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Blocking:
    """A fetcher that holds every caller until released, counting calls per URL."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.calls: Counter[str] = Counter()
        self.error = error

    def __call__(self, url: str) -> bytes:
        self.calls[url] += 1
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return certificate()


async def test_waiting_requests_share_one_fetch() -> None:
    fetch = Blocking()
    cache = CertificateCache(None, fetch)
    waiting = [asyncio.create_task(cache.load(URL)) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    waiting[0].cancel()  # a request that leaves does not cancel the others' fetch
    fetch.release.set()
    keys = await asyncio.gather(*waiting[1:])
    assert fetch.calls == {URL: 1}
    assert len({id(key) for key in keys}) == 1
    assert cache.get(URL) is keys[0]


async def test_a_failed_fetch_is_shared_too() -> None:
    fetch = Blocking(error=OSError("connection reset"))
    cache = CertificateCache(None, fetch)
    waiting = [asyncio.create_task(cache.load(URL)) for _ in range(5)]
    await asyncio.sleep(0.05)
    fetch.release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, CertificateUnavailable) for outcome in outcomes)
    assert fetch.calls == {URL: 1}


async def test_fetches_at_once_are_bounded() -> None:
    fetch = Blocking()
    cache = CertificateCache(None, fetch)
    urls = [URL.replace("test", f"n{index}") for index in range(10)]
    bound = sns_certificates.MAX_FETCHES_IN_FLIGHT
    waiting = [asyncio.create_task(cache.load(url)) for url in urls[:bound]]
    await asyncio.sleep(0.05)
    with pytest.raises(CertificateUnavailable, match="too many"):
        await cache.load(urls[bound])
    fetch.release.set()
    await asyncio.gather(*waiting)
    assert await cache.load(urls[bound])  # room again
    assert sum(fetch.calls.values()) == bound + 1


async def test_a_slow_fetch_answers_the_waiter_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sns_certificates, "WAIT_SECONDS", 0.1)
    fetch = Blocking()
    cache = CertificateCache(None, fetch)
    with pytest.raises(CertificateUnavailable, match="did not answer"):
        await cache.load(URL)
    fetch.release.set()
    for _ in range(100):  # the fetch finishes on its own and fills the cache
        if fetch.calls and not cache._in_flight:
            break
        await asyncio.sleep(0.02)
    assert await cache.load(URL)
    assert fetch.calls == {URL: 1}


@pytest.mark.parametrize(
    ("error", "raised", "ttl"),
    [
        (Refused("answered 404"), sns_signature.SnsError, sns_certificates.REFUSED_TTL_SECONDS),
        (OSError("timed out"), CertificateUnavailable, sns_certificates.UNAVAILABLE_TTL_SECONDS),
    ],
)
async def test_failures_are_remembered_for_a_while(
    error: Exception, raised: type[Exception], ttl: float
) -> None:
    calls: list[str] = []

    def failing(url: str) -> bytes:
        calls.append(url)
        raise error

    clock = Clock()
    cache = CertificateCache(None, failing, clock=clock)
    with pytest.raises(raised):
        await cache.load(URL)
    clock.now += ttl - 0.5
    with pytest.raises(raised, match="remembered"):
        await cache.load(URL)
    assert len(calls) == 1  # answered from memory
    clock.now += 1
    with pytest.raises(raised):
        await cache.load(URL)
    assert len(calls) == 2  # asked again once the time ran out


def test_an_outage_is_remembered_for_less_than_snss_retry_delay() -> None:
    """SNS's default policy retries 20 s apart: its next retry must fetch again."""
    assert sns_certificates.UNAVAILABLE_TTL_SECONDS < 20


async def test_a_certificate_that_is_no_certificate_is_refused_and_remembered() -> None:
    clock = Clock()
    calls: list[str] = []

    def junk(url: str) -> bytes:
        calls.append(url)
        return b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"

    cache = CertificateCache(None, junk, clock=clock)
    for _ in range(3):
        with pytest.raises(sns_signature.SnsError, match="PEM"):
            await cache.load(URL)
    assert len(calls) == 1


async def test_remembered_failures_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sns_certificates, "MAX_FAILURES", 4)
    cache = CertificateCache(None, lambda url: b"junk", clock=Clock())
    for index in range(10):
        with pytest.raises(sns_signature.SnsError):
            await cache.load(f"{URL}?{index}")
    assert len(cache._failures) == 4


async def test_keys_are_kept_least_recently_used_first_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sns_certificates, "MAX_CACHED", 3)
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return certificate()

    cache = CertificateCache(None, fetch)
    for name in ("a", "b", "c", "a", "d"):  # "a" used again, so "b" is the one to go
        await cache.load(name)
    assert calls == ["a", "b", "c", "d"]
    await cache.load("a")
    await cache.load("b")
    assert calls == ["a", "b", "c", "d", "b"]


async def test_the_trusted_directory_comes_first_and_alone_without_a_fetcher(
    tmp_path: Path,
) -> None:
    (tmp_path / "SimpleNotificationService-test.pem").write_bytes(certificate())
    refuse = Blocking(error=OSError("must not be called"))
    assert await CertificateCache(tmp_path, refuse).load(URL)
    assert CertificateCache(tmp_path, refuse).get(URL)
    assert refuse.calls == {}
    directory_only = CertificateCache(tmp_path, None)
    other = URL.replace("test", "other")
    with pytest.raises(sns_signature.SnsError, match="no trusted certificate"):
        await directory_only.load(other)
    with pytest.raises(sns_signature.SnsError, match="no trusted certificate"):
        directory_only.get(other)


def test_get_never_fetches() -> None:
    fetch = Blocking()
    with pytest.raises(CertificateUnavailable, match="not loaded"):
        CertificateCache(None, fetch).get(URL)
    assert fetch.calls == {}
