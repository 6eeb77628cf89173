"""Compact JSON encoding and decoding that the capture hook can afford.

The stdlib ``json`` package imports ``re`` and ``enum`` on start-up, which costs
about 4 ms per hook run (measured on the development machine, Python 3.11,
``python -X importtime``); the whole hook budget is a few milliseconds above
the interpreter's own start-up. The C accelerator ``_json`` that ``json`` uses
internally needs none of that, so this module drives it directly and falls back
to ``json`` when the accelerator is missing or input is invalid.
"""

from __future__ import annotations

try:
    import _json as _accelerator
except ImportError:  # pragma: no cover - CPython always ships _json
    _accelerator = None

__all__ = ["JSONDecodeFailure", "dumps", "escape_lone_surrogates", "loads"]


class JSONDecodeFailure(ValueError):
    """Raised when text is not a single valid JSON document; the message says where."""


class _ScannerOptions:
    """The attributes ``_json.make_scanner`` reads from a decoder object."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # maps NaN, Infinity and -Infinity like json does
    memo: dict[str, str] = {}


def _reject_unserialisable(value: object) -> object:
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable: {value!r}")


if _accelerator is not None:
    _scan = _accelerator.make_scanner(_ScannerOptions())
    # The last argument is allow_nan: JSON has no NaN or infinity, and SQLite's JSON functions
    # reject the NaN and Infinity tokens that json.dumps writes by default.
    _encode = _accelerator.make_encoder(
        None, _reject_unserialisable, _accelerator.encode_basestring, None, ":", ",", False, False, False
    )
else:  # pragma: no cover
    _scan = None
    _encode = None

_WHITESPACE = " \t\n\r"


def loads(text: str) -> object:
    """Parse one JSON document.

    Raises:
        JSONDecodeFailure: ``text`` is empty, invalid, or followed by extra data.
    """
    if _scan is not None:
        try:
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        except (StopIteration, ValueError, SystemError):
            pass
    return _loads_with_message(text)


def _loads_with_message(text: str) -> object:
    """Parse with the stdlib decoder, which gives the line and column of a failure."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONDecodeFailure(f"invalid JSON: {exc}") from exc


def dumps(value: object) -> str:
    """Serialise ``value`` as compact JSON with non-ASCII text kept as is.

    Lone surrogates stay in the result as they are, so encoding it as UTF-8 can fail.

    Raises:
        ValueError: ``value`` contains NaN or an infinity.
        TypeError: ``value`` contains something other than dicts, lists, strings, numbers, booleans and None.
    """
    if _encode is not None:
        return "".join(_encode(value, 0))
    import json  # pragma: no cover

    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # pragma: no cover


def escape_lone_surrogates(value: object) -> object:
    """Return ``value`` with every string that UTF-8 cannot encode made encodable.

    Each lone surrogate becomes its Python escape as plain text (U+D800 becomes
    the six characters ``\\ud800``), so the text stays readable and nothing
    else changes. Dicts, lists and tuples are copied; other values come back as they are.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {escape_lone_surrogates(key): escape_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_lone_surrogates(item) for item in value]
    return value
