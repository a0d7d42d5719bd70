"""SNS signing certificates, found without ever holding up the event loop.

A certificate comes from the trusted directory (``DLRHUB_AWS_SNS_CERT_DIR``: a file named like
the URL's last path segment) or else is fetched: in a worker thread, over https, following no
redirect, at most :data:`~gateway.providers.sns_signature.MAX_CERTIFICATE_BYTES` within
:data:`FETCH_DEADLINE_SECONDS`. Requests for one URL share one fetch; at most
:data:`MAX_FETCHES_IN_FLIGHT` URLs are fetched at once. Keys are kept (least recently used
first out); failures are remembered too: a refusal (the host answered with a redirect, a 4xx,
too much, or no certificate) for :data:`REFUSED_TTL_SECONDS`, a failure that may pass (network,
timeout, 5xx) for :data:`UNAVAILABLE_TTL_SECONDS`, shorter than SNS's 20 s between retries so
that its next retry fetches again.

The caller checks the URL first (:func:`gateway.providers.sns_signature.is_certificate_url`), awaits
:meth:`CertificateCache.load` and then verifies with :meth:`CertificateCache.get`.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import sns_signature

#: Seconds one connect or read may take.
FETCH_TIMEOUT_SECONDS = 3.0
#: Seconds a whole fetch may take (a host trickling its answer is cut off).
FETCH_DEADLINE_SECONDS = 5.0
#: Seconds a request waits for a fetch before it is answered 503 (the fetch goes on).
WAIT_SECONDS = 8.0
#: Distinct URLs fetched at once (also the number of worker threads).
MAX_FETCHES_IN_FLIGHT = 8
#: Keys kept, and failures remembered.
MAX_CACHED = 64
MAX_FAILURES = 1024
#: Seconds a refused URL is refused without asking again.
REFUSED_TTL_SECONDS = 60.0
#: Seconds a URL that could not be fetched is answered 503 without asking again.
UNAVAILABLE_TTL_SECONDS = 5.0

#: GETs a URL and returns the body; raises Refused or OSError (see :func:`fetch_https`).
Fetcher = Callable[[str], bytes]
_T = TypeVar("_T")


class Refused(Exception):
    """The host answered, but not with what was asked for: asking again will not help."""


class CertificateUnavailable(Exception):
    """The certificate could not be had now (network, timeout, 5xx); SNS should retry."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_https(url: str) -> bytes:
    """GETs ``url`` (the caller checked it), following no redirect, reading at most
    MAX_CERTIFICATE_BYTES within FETCH_DEADLINE_SECONDS. Raises Refused for a redirect, a
    4xx or too large a body, and OSError for what may pass (network, timeout, 5xx, 429)."""
    deadline = time.monotonic() + FETCH_DEADLINE_SECONDS
    limit = sns_signature.MAX_CERTIFICATE_BYTES
    try:
        response = _OPENER.open(url, timeout=FETCH_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise OSError(f"{url} answered {exc.code}") from None
        if 300 <= exc.code < 400:
            raise Refused(f"{url} answered {exc.code}: redirects are not followed") from None
        raise Refused(f"{url} answered {exc.code}") from None
    except http.client.HTTPException as exc:
        raise OSError(f"{url}: {type(exc).__name__}") from None
    with response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refused(f"{url} is larger than {limit} bytes")
        body = bytearray()
        while chunk := _read(response, url):
            body += chunk
            if len(body) > limit:
                raise Refused(f"{url} is larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} took longer than {FETCH_DEADLINE_SECONDS:g} s")
    return bytes(body)


def _read(response: Any, url: str) -> bytes:
    try:
        chunk: bytes = response.read1(4096)
    except http.client.HTTPException as exc:
        raise OSError(f"{url}: {type(exc).__name__}") from None
    return chunk


_executor: ThreadPoolExecutor | None = None


async def in_thread(function: Callable[[str], _T], url: str) -> _T:
    """``function(url)`` in a worker thread of this module's own small pool (so fetches
    never take the threads other work of the event loop uses)."""
    global _executor  # noqa: PLW0603 -- one pool per process, made on first use
    if _executor is None:
        _executor = ThreadPoolExecutor(MAX_FETCHES_IN_FLIGHT, thread_name_prefix="sns-fetch")
    return await asyncio.get_running_loop().run_in_executor(_executor, function, url)


class CertificateCache:
    """Signing certificates' public keys by URL: the trusted directory first, then a fetch
    with ``fetch`` (None: the directory only). ``clock`` times remembered failures."""

    def __init__(
        self,
        trusted_dir: Path | None,
        fetch: Fetcher | None = fetch_https,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trusted_dir = trusted_dir
        self.fetch = fetch
        self.clock = clock
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        #: URL → (until, refused, reason)
        self._failures: OrderedDict[str, tuple[float, bool, str]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[rsa.RSAPublicKey]] = {}

    def get(self, url: str) -> rsa.RSAPublicKey:
        """The key, when :meth:`load` has it or the trusted directory holds it; raises
        SnsError when there is none to be had, CertificateUnavailable when it is not loaded."""
        key = self._known(url)
        if key is not None:
            return key
        if self.fetch is None:
            raise sns_signature.SnsError(f"no trusted certificate for {url}")
        raise CertificateUnavailable(f"the certificate at {url} is not loaded yet")

    async def load(self, url: str) -> rsa.RSAPublicKey:
        """The key, fetched if need be (once, however many requests wait for it); raises
        SnsError when it is refused and CertificateUnavailable when it may come later."""
        key = self._known(url)
        if key is not None:
            return key
        self._raise_remembered(url)
        if self.fetch is None:
            raise sns_signature.SnsError(f"no trusted certificate for {url}")
        task = self._in_flight.get(url)
        if task is None:
            if len(self._in_flight) >= MAX_FETCHES_IN_FLIGHT:
                raise CertificateUnavailable("too many signing certificates are being fetched")
            task = asyncio.get_running_loop().create_task(self._fetch(url, self.fetch))
            self._in_flight[url] = task
        try:
            # shielded: a request that leaves (or times out) does not cancel the others' fetch
            return await asyncio.wait_for(asyncio.shield(task), WAIT_SECONDS)
        except TimeoutError:
            raise CertificateUnavailable(
                f"{url} did not answer within {WAIT_SECONDS:g} s"
            ) from None

    async def _fetch(self, url: str, fetch: Fetcher) -> rsa.RSAPublicKey:
        try:
            key = await in_thread(functools.partial(_fetched_key, fetch), url)
        except sns_signature.SnsError as exc:
            self._remember_failure(url, refused=True, reason=exc.reason)
            raise
        except CertificateUnavailable as exc:
            self._remember_failure(url, refused=False, reason=str(exc))
            raise
        finally:
            del self._in_flight[url]
        self._remember(url, key)
        return key

    def _known(self, url: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(url)
        if key is not None:
            self._keys.move_to_end(url)
            return key
        pem = self._trusted(url)
        if pem is None:
            return None
        key = sns_signature.load_public_key(pem)
        self._remember(url, key)
        return key

    def _trusted(self, url: str) -> bytes | None:
        if self.trusted_dir is None:
            return None
        name = url.rsplit("/", 1)[-1]
        path = self.trusted_dir / name
        return path.read_bytes() if name and path.is_file() else None

    def _remember(self, url: str, key: rsa.RSAPublicKey) -> None:
        self._keys[url] = key
        self._keys.move_to_end(url)
        while len(self._keys) > MAX_CACHED:
            self._keys.popitem(last=False)

    def _remember_failure(self, url: str, *, refused: bool, reason: str) -> None:
        ttl = REFUSED_TTL_SECONDS if refused else UNAVAILABLE_TTL_SECONDS
        self._failures[url] = (self.clock() + ttl, refused, reason)
        self._failures.move_to_end(url)
        while len(self._failures) > MAX_FAILURES:
            self._failures.popitem(last=False)

    def _raise_remembered(self, url: str) -> None:
        failure = self._failures.get(url)
        if failure is None:
            return
        until, refused, reason = failure
        if self.clock() >= until:
            del self._failures[url]
            return
        if refused:
            raise sns_signature.SnsError(f"{reason} (remembered)")
        raise CertificateUnavailable(f"{reason} (remembered)")


def _fetched_key(fetch: Fetcher, url: str) -> rsa.RSAPublicKey:
    """Runs in a worker thread: the fetch and the certificate's parsing."""
    try:
        pem = fetch(url)
    except Refused as exc:
        raise sns_signature.SnsError(f"signing certificate refused: {exc}") from None
    except OSError as exc:
        raise CertificateUnavailable(f"cannot fetch {url}: {exc}") from None
    return sns_signature.load_public_key(pem)
