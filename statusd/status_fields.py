"""The stored fields of a message status that List and Watch filter on, declared once.

Each :class:`StatusField` names an attribute that ``DeliveryReport`` and ``MessageStatus``
share. Every field in :data:`FIELDS` is:

* stored with the message, *filled by the first report that carries it* (a later report
  never overwrites a value already stored, and an empty value never clears one);
* filterable: :class:`~statusd.storage.base.MessageFilter` selects on it by equality, in
  memory (:meth:`~statusd.storage.base.MessageFilter.matches`), in SQL
  (:mod:`statusd.storage.sqlite_sql`) and in MongoDB (:mod:`statusd.storage.mongo_docs`);
* indexed (only where it is set) in both stores, after ``index_prefix``, then list order;
* part of a page token's filter fingerprint (:mod:`statusd.reads`).

``in_requests`` fields are also filters of ``ListMessageStatusesRequest`` and
``WatchMessageStatusesRequest`` (the proto must have them); the others are internal (the
multipart read selects the parts of a message by ``parent_message_id``).

Adding a field: one line here (with the proto fields it names); the SQLite store adds the
column and index to an existing file when it opens it (:mod:`statusd.storage.sqlite_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class StatusField:
    """One filterable, fill-if-empty field of a message (see the module docstring)."""

    #: The attribute of DeliveryReport, MessageStatus and (``in_requests``) the List/Watch
    #: requests, and the field name of :class:`~statusd.storage.base.MessageFilter`.
    name: str
    #: The SQLite column of ``messages`` ("": the name).
    column: str = ""
    #: The key in a MongoDB ``messages`` document ("": the name).
    key: str = ""
    #: Names the index: ``messages_<index>`` (SQLite), ``list_<index>`` (MongoDB) ("": the name).
    index: str = ""
    #: Fields indexed before this one (``provider``, ``account``): same name in both stores.
    index_prefix: tuple[str, ...] = ()
    #: Whether List and Watch requests carry this filter.
    in_requests: bool = True

    def __post_init__(self) -> None:
        for attribute in ("column", "key", "index"):
            if not getattr(self, attribute):
                object.__setattr__(self, attribute, self.name)


FIELDS: Final[tuple[StatusField, ...]] = (
    StatusField("recipient"),
    StatusField("client_ref"),
    StatusField(
        "parent_message_id", index="parent", index_prefix=("provider", "account"), in_requests=False
    ),
)

#: The names of :data:`FIELDS`, in table order.
NAMES: Final[tuple[str, ...]] = tuple(field.name for field in FIELDS)
