"""What every provider module implements, and the plumbing they share.

A provider module declares its name, its credentials class (the annotation of
``credentials``; the settings class with variables ``DLRHUB_<PROVIDER>_<SETTING>`` is derived
from the two), its status mapping tables, and two methods:
``verify(request)`` raises :class:`~gateway.errors.Unauthenticated` unless the request is
genuine and returns the method that proved it; ``parse(request)`` turns the body into
:class:`Parsed` reports, raising :class:`~gateway.errors.Malformed` when the envelope is bad and
quarantining items that are not. Providers see an :class:`InboundRequest`, never a Sanic
request. :meth:`Provider.handle` runs the two steps and stamps what every report shares; the
gateway awaits :meth:`Provider.prepare` first (I/O that verification needs, off the loop).
"""

from __future__ import annotations

import abc
import json
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import env_name
from gateway.auth import signatures
from gateway.errors import Malformed, PayloadTooLarge, Unauthenticated, UnsupportedMediaType
from gateway.providers import dropped as dropped_fields
from gateway.providers import urlencoded
from gateway.providers.credentials import Credentials, ProviderSettings
from gateway.providers.json_shape import check_json_shape

#: Longest message id accepted from a provider.
MAX_MESSAGE_ID_LENGTH = 128


@dataclass(frozen=True)
class InboundRequest:
    """A webhook request as providers see it, framework-free.

    ``url`` is the public URL the provider called (from ``DLRHUB_PUBLIC_URL``, path and query
    as received), which is what URL-signing schemes sign. ``headers`` has lower-case names.
    ``form`` holds the urlencoded body's parameters, blank values kept, in order.
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    content_type: str = ""
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()
    received_micros: int = 0
    request_id: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def params(self) -> dict[str, str]:
        """Form parameters for POST, query parameters for GET (last value wins)."""
        return dict(self.form if self.method == "POST" else self.query)


#: Most query or form parameters parsed from one request.
MAX_PARAMETERS = 1000


def build_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    request_id: str = "",
    received_micros: int = 0,
) -> InboundRequest:
    """An InboundRequest from what arrived: header names lower-cased (first value kept),
    query and urlencoded form parsed with blank values kept. Raises Malformed for a form that
    is not UTF-8 or has more than MAX_PARAMETERS parameters."""
    lowered: dict[str, str] = {}
    for name, value in headers:
        lowered.setdefault(name.lower(), value)
    content_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    parts = urlsplit(url)
    form: tuple[tuple[str, str], ...] = ()
    if method == "POST" and content_type == "application/x-www-form-urlencoded":
        try:
            form = urlencoded.pairs(body.decode("utf-8"), MAX_PARAMETERS)
        except UnicodeDecodeError:
            raise Malformed("form body is not valid UTF-8") from None
    # Every field is given, so the instance's dict is filled at once: the frozen dataclass's
    # __init__ would set each through object.__setattr__, five times the cost (once a webhook).
    request = object.__new__(InboundRequest)
    request.__dict__.update(
        method=method,
        url=url,
        path=parts.path,
        headers=lowered,
        body=body,
        content_type=content_type,
        query=urlencoded.pairs(parts.query, MAX_PARAMETERS),
        form=form,
        received_micros=received_micros,
        request_id=request_id,
    )
    return request


class InvalidItem(Exception):
    """One item of an authentic request cannot be normalized; it goes to quarantine."""


class SampleUnavailable(Exception):
    """``sample()`` cannot sign: the configuration lacks what only the provider holds (a
    private key); the message says which setting supplies it for development."""


@dataclass(frozen=True)
class SampleRequest:
    """A correctly signed webhook request, ready to send (``dlrhub send-sample``, tests)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    #: The message id the sample reports on, where the provider composes it (Sinch).
    message_id: str = ""


@dataclass
class Parsed:
    """What a request carried: normalized reports and quarantined items.

    ``replay_keys`` name the nonces the request carries, for schemes that sign one but no
    time; the gateway refuses a request any of whose keys was recorded for another request.
    ``dropped`` lists the informational fields left out of the reports because the provider's
    value was unreadable, as ``(field class, reason)``; the raw item keeps them.
    """

    reports: list[pb.DeliveryReport] = field(default_factory=list)
    quarantined: list[pb.QuarantinedItem] = field(default_factory=list)
    replay_keys: tuple[str, ...] = ()
    dropped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, item: Any, normalize: Callable[[Any], Normalized]) -> Parsed:
        """``normalize(item)``'s reports with the fields it left out, or the whole item
        quarantined (as JSON, with the reason) when it raises InvalidItem."""
        with dropped_fields.recording() as dropped:
            try:
                normalized = normalize(item)
            except InvalidItem as exc:
                return cls(quarantined=[quarantine(str(exc), raw_json(item))])
        reports = normalized if isinstance(normalized, list) else [normalized]
        return cls(reports=reports, dropped=dropped)

    @classmethod
    def of_each(cls, items: Sequence[Any], normalize: Callable[[Any], Normalized]) -> Parsed:
        """:meth:`of` for each of a batch's items, gathered in order."""
        if len(items) == 1:  # the commonest batch
            return cls.of(items[0], normalize)
        parsed = cls()
        for item in items:
            one = cls.of(item, normalize)
            parsed.reports += one.reports
            parsed.quarantined += one.quarantined
            parsed.dropped += one.dropped
        return parsed


#: What a provider's normalizer makes of one item: a report, or several.
Normalized = pb.DeliveryReport | list[pb.DeliveryReport]


class Provider(abc.ABC):
    """One provider account's verifier and parser."""

    #: Provider name: the URL path segment and ``DeliveryReport.provider``.
    name: ClassVar[str]
    #: One account's credentials; a subclass annotates it with its own Credentials class,
    #: from which ``credentials_class`` and ``settings_class`` are derived.
    credentials: Credentials
    #: The class of ``credentials``.
    credentials_class: ClassVar[type[Credentials]]
    #: The settings class with this provider's credentials (``DLRHUB_<NAME>_*``).
    settings_class: ClassVar[type[ProviderSettings]]
    #: HTTP methods the provider calls with.
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    #: Most reports one request may carry (DLRHUB_MAX_ITEMS_PER_REQUEST, set per endpoint by
    #: the gateway's configuration): see :meth:`check_items`.
    max_items: int = 1000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        credentials = typing.get_type_hints(cls).get("credentials")
        if not (isinstance(credentials, type) and issubclass(credentials, Credentials)):
            raise TypeError(f"{cls.__name__}.credentials must be annotated with its Credentials")
        cls.credentials_class = credentials
        cls.settings_class = ProviderSettings.for_provider(cls.name, credentials)

    def __init__(
        self,
        account: str,
        credentials: Credentials,
        *,
        insecure: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.credentials = credentials
        self.insecure = insecure  # DLRHUB_INSECURE_PROVIDERS: unverified, credentials or not
        #: Seconds since the epoch; injected by tests to check time-bound signatures.
        self.clock = clock

    async def prepare(self, request: InboundRequest) -> None:
        """Awaited before :meth:`handle`: the I/O a provider needs before it can verify (AWS
        SNS fetches its signing certificate here), so that handle stays synchronous and the
        event loop never waits on it. Raises like verify. Most providers need none."""
        return

    @abc.abstractmethod
    def verify(self, request: InboundRequest) -> str:
        """Raises Unauthenticated unless genuine; returns the auth method that proved it."""

    @abc.abstractmethod
    def parse(self, request: InboundRequest) -> Parsed:
        """Reports and quarantined items of a verified request; raises Malformed."""

    def handle(self, request: InboundRequest) -> Parsed:
        """Verify, then parse, then stamp what every report of the request shares."""
        auth_method = "none" if self.insecure else self.verify(request)
        parsed = self.parse(request)
        seconds, micros = divmod(request.received_micros, 1_000_000)
        for report in parsed.reports:
            report.provider = self.name
            report.account = self.account
            report.auth_method = auth_method
            report.request_id = request.request_id
            report.received_time.seconds, report.received_time.nanos = seconds, micros * 1000
        for item in parsed.quarantined:
            item.provider = self.name
            item.account = self.account
            item.content_type = request.content_type
            item.request_id = request.request_id
            item.received_time.seconds, item.received_time.nanos = seconds, micros * 1000
        nonces = () if self.insecure else self.nonces(request)
        if nonces:
            parsed.replay_keys = tuple(f"{self.name}/{self.account}/{nonce}" for nonce in nonces)
        return parsed

    def nonces(self, request: InboundRequest) -> tuple[str, ...]:
        """Every nonce of the request a signature this account accepts could cover, for
        schemes that sign a nonce but no time (replay protection); empty for the others."""
        return ()

    @abc.abstractmethod
    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """One quarantined item (``QuarantinedItem.raw``) parsed again with today's code, for
        ``dlrhub quarantine replay``; raises InvalidItem when it still does not parse."""

    @abc.abstractmethod
    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        """A request this provider would send to ``url`` for ``message_id`` reaching the
        canonical ``status`` (``delivered``, ``undelivered``, ...), signed with the first
        configured credential of each kind."""

    @classmethod
    @abc.abstractmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        """Fresh development credentials, as environment variables, that make ``verify`` and
        ``sample`` work; files a provider needs (keys, certificates) go under ``directory``."""

    @classmethod
    def env(cls, setting: str) -> str:
        """The environment variable of one of this provider's settings."""
        return env_name(cls.settings_class, setting)

    # -- helpers for subclasses ------------------------------------------------------------

    def require_content_type(self, request: InboundRequest, *allowed: str) -> None:
        if request.content_type not in allowed:
            shown = request.content_type or "none"
            raise UnsupportedMediaType(
                f"{self.name} sends {' or '.join(allowed)}, this request has {shown}"
            )

    def check_items(self, count: int) -> None:
        """Raises PayloadTooLarge when a request carries more than ``max_items`` items;
        called with the count read off the decoded envelope, before any item is normalized."""
        if count > self.max_items:
            raise PayloadTooLarge(f"more than {self.max_items} reports in one request")

    def unauthenticated(self, reason: str, *, label: str = "invalid") -> Unauthenticated:
        return Unauthenticated(f"{self.name}: {reason}", label=label)

    def required_header(self, request: InboundRequest, name: str) -> str:
        """A header the provider always signs with; raises Unauthenticated (``missing``)
        when the request lacks it."""
        value = request.header(name)
        if not value:
            raise self.unauthenticated(f"no {name} header", label="missing")
        return value

    def check_timestamp(
        self, value: object, name: str, max_age: float, *, max_future: float = 300.0
    ) -> int:
        """A signed Unix timestamp checked against ``self.clock()``
        (:func:`gateway.auth.signatures.check_timestamp`)."""
        return signatures.check_timestamp(
            value, now=self.clock(), max_age=max_age, max_future=max_future, name=name
        )


def json_body(request: InboundRequest) -> Any:
    """The decoded JSON body (strict RFC 8259: UTF-8, no NaN, integers within 64 bits);
    raises Malformed with the reason, also when it nests deeper than MAX_JSON_DEPTH, which
    no provider does, and PayloadTooLarge when it holds more than MAX_JSON_CONTAINERS arrays
    and objects: both judged on the bytes before anything is decoded
    (:func:`check_json_shape`)."""
    check_json_shape(request.body)
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"body is not valid JSON: {exc}") from None


def json_item(raw: str) -> Any:
    """A quarantined item's JSON text decoded; raises InvalidItem when it is not JSON."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidItem("quarantined item is not JSON") from None


def quarantine(reason: str, raw: str) -> pb.QuarantinedItem:
    """A quarantined item; :meth:`Provider.handle` fills in provider, account and times."""
    return pb.QuarantinedItem(reason=reason, raw=raw)


def raw_json(item: object) -> str:
    """An item as compact JSON text, for ``DeliveryReport.raw`` and quarantine."""
    try:
        return orjson.dumps(item).decode("utf-8")
    except TypeError:  # integers beyond 64 bits, from a quarantined item's replay
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def json_object(raw: str) -> dict[str, Any]:
    """A quarantined item that must be a JSON object; raises InvalidItem otherwise."""
    item = json_item(raw)
    if not isinstance(item, dict):
        raise InvalidItem("quarantined item is not a JSON object")
    return item


def only_report(reports: list[pb.DeliveryReport]) -> pb.DeliveryReport:
    """The one report a quarantined item replays into; InvalidItem for several (replay them
    as a request instead)."""
    if len(reports) != 1:
        raise InvalidItem(f"the item holds {len(reports)} reports, not one")
    return reports[0]
