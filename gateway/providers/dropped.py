"""Informational fields left out of a report: strict on identity, lenient on information.

An item is quarantined only when what identifies it (message id, account) or what it says
(its status) is unusable. When an informational field (MCC/MNC, price, segment counts,
times, error text, recipient formatting, ...) cannot be read, the normalizer leaves it out
(:func:`gateway.providers.fields.lenient`), the raw item keeps it, and the omission is
recorded here: :meth:`gateway.providers.base.Parsed.of` collects them per item; for a stored
request the gateway counts them (``dlrhub_report_fields_dropped_total{provider,field}``,
:mod:`gateway.metrics`) and logs them in the rejection log (:mod:`gateway.audit`,
rate-limited per provider and field).
"""

from __future__ import annotations

from contextvars import ContextVar, Token

#: The fields a report may lose, by class: the ``field`` label values of the counter.
FIELDS = frozenset(
    {
        "mcc_mnc",  # MCC and MNC of the destination network
        "price",  # amount, unit amount, currency
        "segments",  # segment or part counts
        "parts",  # part index and count of a multipart message
        "sequence",  # a provider's ordering sequence number
        "sent_time",
        "event_time",  # an event time unreadable: the next documented one, or receive time
        "error_text",  # error name, description, group
        "recipient",
        "sender",
        "client_ref",
        "batch_id",
    }
)

_recorded: ContextVar[list[tuple[str, str]] | None] = ContextVar("dropped_fields", default=None)


def drop(field_class: str, reason: str) -> None:
    """Records that ``field_class`` (one of FIELDS) of the item being normalized was left out
    because of ``reason``. Outside :func:`recording` (quarantine replay) it is left out all
    the same, unrecorded."""
    if field_class not in FIELDS:
        raise ValueError(f"{field_class!r} is not one of the droppable fields")
    recorded = _recorded.get()
    if recorded is not None:
        recorded.append((field_class, reason))


class recording:  # noqa: N801  (used as a function: ``with recording() as found``)
    """Collects the fields :func:`drop` records while the block normalizes one item (a
    plain context manager: it is entered once per normalized item)."""

    __slots__ = ("found", "token")
    found: list[tuple[str, str]]
    token: Token[list[tuple[str, str]] | None]

    def __enter__(self) -> list[tuple[str, str]]:
        self.found = []
        self.token = _recorded.set(self.found)
        return self.found

    def __exit__(self, *exc_info: object) -> None:
        _recorded.reset(self.token)
