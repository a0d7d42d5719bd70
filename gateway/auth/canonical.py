"""Refusing parameters a signature cannot tell apart from others.

A signature over a string proves the string, not the parameters: when two different sets of
parameters build the same string, a captured signature also fits the forged set. Providers
whose canonical string can be built ambiguously refuse, before trusting the signature, the
parameters that could have been re-split; each function here returns why (the provider raises
401 with it) or ``""``.

* ``&k=v`` and ``k=v&k=v`` joins (Vonage, Plivo V3 GET and the URL query of V3 POST) are
  unambiguous once no name contains ``&`` or ``=`` and, where values are not escaped, no
  value contains ``&``: :func:`separators_in`.
* Name-then-value concatenations (Twilio, the form of Plivo V3 POST) can always be re-split:
  ``ErrorCode`` + ``30007`` is also ``ErrorCode3`` + ``0007`` or ``Error`` + ``Code30007``.
  :func:`concatenation_problem` refuses every re-split that moves characters into or out of a
  field dlrhub reads (a *decisive* field).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from itertools import chain

#: How both providers with concatenated parameters name them: a capital, then letters and
#: digits. A name made of a value's tail (``deliveredTo``, ``0007``) does not look like this.
PROVIDER_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
#: Provider-style names, each followed by a newline (which no such name holds): every name of
#: a request checked in one match.
_PROVIDER_NAMES = re.compile(r"(?:[A-Z][A-Za-z0-9]*\n)*")


def separators_in(pairs: Iterable[tuple[str, object]], in_names: str, in_values: str = "") -> str:
    """Why the pairs cannot be joined unambiguously: a name containing a character of
    ``in_names`` or a string value containing one of ``in_values``; ``""`` when none does.
    (For ``k=v&k=v``: ``&`` and ``=`` in names, ``&`` in values; a value's ``=`` is harmless
    once no name holds one, since a pair splits at its first ``=``.)"""
    for name, value in pairs:
        texts = ((name, in_names, "name"), (value, in_values, "value"))
        for text, separators, kind in texts:
            if not isinstance(text, str):
                continue
            found = next((char for char in separators if char in text), "")
            if found:
                return (
                    f"parameter {kind} {text[:64]!r} contains {found!r}, a separator of the "
                    "signed string: the signature is ambiguous"
                )
    return ""


def concatenation_problem(
    prefix: str,
    pairs: Iterable[tuple[str, str]],
    decisive: frozenset[str],
    known: frozenset[str],
) -> str:
    """Why ``prefix`` + name + value + name + value ... could have been built from other
    parameters that change a decisive field; ``""`` when it could not. ``pairs`` come in the
    order the provider's signature joins them (sorted, for Twilio and Plivo), not the order
    they arrived in: a re-split across a boundary of the signed string is found even when the
    request lists its parameters in an order that hides it.

    Refused: a name that is not a provider-style name (:data:`PROVIDER_NAME`), so no value's
    tail can become a name; a decisive field's name anywhere in the string but as (part of) a
    decisive parameter's own name, so no decisive field can appear, vanish or lose characters to
    a neighbour; and a decisive field's value that contains a name in ``known`` (the names the
    provider sends), so no decisive value can swallow the parameters after it.
    """
    pairs = list(pairs)
    names_text = "".join([f"{name}\n" for name, _ in pairs])
    if names_text.count("\n") != len(pairs) or not _PROVIDER_NAMES.fullmatch(names_text):
        for name, _ in pairs:  # which one
            if not PROVIDER_NAME.fullmatch(name):
                return f"parameter name {name[:64]!r} is not a provider parameter name"
    names = _any_of(known)
    # All decisive values searched at once (no name holds a newline); which one, only if any.
    if names.search("\n".join(value for name, value in pairs if name in decisive)):
        for name, value in pairs:
            swallowed = names.search(value) if name in decisive else None
            if swallowed:
                return f"{name} contains the parameter name {swallowed.group()}"
    text = prefix + "".join(chain.from_iterable(pairs))
    # Where each decisive name starts and ends in ``text``: disjoint spans, in order.
    starts: list[int] = []
    stops: list[int] = []
    position = len(prefix)
    for name, value in pairs:
        if name in decisive:
            starts.append(position)
            stops.append(position + len(name))
        position += len(name) + len(value)
    for field in decisive:
        found = text.find(field)
        while found >= 0:  # each occurrence, left to right, as a regular expression finds them
            end = found + len(field)
            # The one span that may hold it: the last to start at or before it.
            span = bisect_right(starts, found) - 1
            if span < 0 or end > stops[span]:
                return f"{field} appears in the signed string outside its own parameter name"
            found = text.find(field, end)
    return ""


@lru_cache(maxsize=64)
def _any_of(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern matching any of ``names`` (each provider's set, compiled once); none
    when there are none."""
    longest_first = sorted((name for name in names if name), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first)) or "(?!)")
