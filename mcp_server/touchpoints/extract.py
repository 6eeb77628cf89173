"""Extraction of ``@touchpoint`` markers from a file's bytes.

This module owns the path from bytes to touchpoints: the size and binary checks,
decoding, Jupyter notebooks and the marker grammar. A marker is
``@touchpoint NAME [description]`` written inside a comment or a Python
docstring. :mod:`.scanner` finds the comments, using the syntax in
:mod:`.languages`. Callers above this module store the results, keyed by
:data:`EXTRACTOR_VERSION`. :func:`extract` reports problems with the file as a
skip reason and warnings instead of raising.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .languages import KERNEL_LANGUAGES, LANGUAGES, NOTEBOOK, language_for_path
from .scanner import CommentScan, CommentSpan, normalize_newlines, rescan_comments, scan_comments
from .symbols import SymbolCache, associate

__all__ = [
    "EXTRACTOR_VERSION",
    "MAX_FILE_BYTES",
    "MAX_NOTEBOOK_BYTES",
    "Extraction",
    "Extractor",
    "Touchpoint",
    "decode_text",
    "extract",
    "extract_text",
    "language_for_path",
]

EXTRACTOR_VERSION = 2
"""Version of the extraction rules, part of every cache key.

Bump it whenever the same bytes can yield different results, so that cached
extractions made by older rules are recomputed.
"""

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Size in bytes above which a source file is skipped with reason ``"size"``.

Hand-written source files are far smaller: a 2,000-line module is about 80 KB.
Files above a few MiB are almost always bundles, lockfiles or data dumps, which
the index does not need. 4 MiB still admits large generated modules, such as a
200,000-line Python file of about 3.3 MB, while bounding the memory and time
that one save can cost. Checked before decoding.
"""

MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024
"""Size in bytes above which a Jupyter notebook is skipped with reason ``"size"``.

Notebooks carry their outputs, often base64 images, so a notebook with a few
plots passes :data:`MAX_FILE_BYTES` while its cell sources stay small. Only the
JSON parser reads the whole file, and the scanner reads the cell sources alone.
"""

logger = logging.getLogger(__name__)

_BINARY_PROBE_BYTES = 8192
_MARKER = "@touchpoint"
_NAME = re.compile(r"[ \t]+([A-Za-z0-9_][A-Za-z0-9_.:/-]*)")
# Characters that may come right before the marker: comment punctuation and
# blanks. A letter, digit, "." or "@" there means the text is something else,
# such as the address ops@touchpoint.example.
_MARKER_PREFIXES = frozenset(" \t\n\f\v/*#-!{;%")
_NAME_TRAILING_PUNCTUATION = ".:/-"
_DESCRIPTION_CLOSERS = ("*/}", "*/", "-->")
_MAX_NAMELESS_WARNINGS = 10

# Cell magics that switch a notebook code cell to another language. Other
# magics, such as %%time, run the cell in the kernel's language.
_CELL_MAGIC_LANGUAGES = {
    "bash": "shell",
    "sh": "shell",
    "javascript": "javascript",
    "js": "javascript",
    "html": "html",
    "markdown": "markdown",
    "sql": "sql",
    "ruby": "ruby",
}


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One ``@touchpoint`` marker found in a comment.

    Attributes:
        name: Marker name, matching ``[A-Za-z0-9_][A-Za-z0-9_.:/-]*`` and never
            ending in ``.``, ``:``, ``/`` or ``-``.
        line: 1-based line of the marker itself, within the cell for notebooks.
        column: 1-based column of the ``@``, counted in characters.
        description: Rest of the marker's line inside the comment, stripped,
            without comment closers or a leading ``*``, ``-`` or ``:``; ``""`` if none.
        language: Language the text was scanned as, such as ``"python"`` or
            ``"tsx"``. For a notebook it is the cell's language.
        cell: 0-based notebook cell index, or None outside notebooks.
        symbol: Qualified name of the declaration the marker annotates, such as
            ``Cart.render``: the one that follows the comment in the same block,
            else the one enclosing it. None when there is neither.
        symbol_kind: ``"function"``, ``"method"``, ``"class"`` or another
            declaration kind; None with ``symbol``.
        symbol_start: 1-based first line of the symbol, within the cell for notebooks.
        symbol_end: 1-based last line of the symbol.
    """

    name: str
    line: int
    column: int
    description: str
    language: str
    cell: int | None = None
    symbol: str | None = None
    symbol_kind: str | None = None
    symbol_start: int | None = None
    symbol_end: int | None = None


@dataclass(frozen=True, slots=True)
class Extraction:
    """Result of extracting one file.

    Attributes:
        language: Language chosen from the path, or None when it is unknown.
        touchpoints: Markers in the order they appear in the file.
        skipped: None when the file was read, otherwise why it was not:
            ``"size"``, ``"binary"``, ``"unknown-language"`` or ``"invalid-notebook"``.
        warnings: Human-readable messages, one per problem, such as a failed
            UTF-8 decode or a marker without a name. A skip for size, binary
            content or an unknown language adds none, because ``skipped`` gives
            the reason. An invalid notebook adds the parse error.
    """

    language: str | None
    touchpoints: tuple[Touchpoint, ...]
    skipped: str | None
    warnings: tuple[str, ...]


class _InvalidNotebookError(Exception):
    """Raised when notebook JSON does not contain an nbformat 4 cell list."""


def extract(path: str, data: bytes) -> Extraction:
    """Extract the touchpoints of one file from its bytes.

    Checks run in this order: size, binary content (a NUL byte in the first
    8 KiB), then language. Text that is not valid UTF-8 is decoded as Latin-1
    with one warning. A UTF-8 byte order mark is dropped.

    Args:
        path: File path, used only to pick the language.
        data: Complete file content.
    """
    return _extract(path, data, None)


class Extractor:
    """Extracts files as :func:`extract` does, reusing what it kept from the previous extraction of each path.

    After a small edit, the comment scan resumes at a checkpoint before the
    change, Python statements are parsed again only where lines changed, and
    tree-sitter reparses its previous tree with the edit. Results equal those of
    :func:`extract` on the same bytes, which the random-edit tests in
    ``tests/touchpoints/test_incremental.py`` check. If the incremental path
    raises, the error is logged and the file is extracted from scratch.

    State is kept for the ``max_files`` paths extracted last, and only for
    source files that contain a marker. Calls from several threads are safe:
    two concurrent calls for one path simply do not share state.
    """

    def __init__(self, max_files: int = 16) -> None:
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, got {max_files}")
        self.max_files = max_files
        self._states: OrderedDict[str, _FileState] = OrderedDict()
        self._lock = threading.Lock()

    def extract(self, path: str, data: bytes) -> Extraction:
        """Extract the touchpoints of one file from its bytes, as :func:`extract` does."""
        with self._lock:
            state = self._states.pop(path, None)
        if state is None:
            state = _FileState()
        state.scanned = False
        try:
            extraction = _extract(path, data, state)
        except Exception:  # noqa: BLE001 - the state only saves time, so a failure in it must not lose the file
            logger.exception("touchpoints: incremental extraction of %s failed; extracting it from scratch", path)
            return _extract(path, data, None)
        if state.scanned:
            with self._lock:
                self._states[path] = state
                while len(self._states) > self.max_files:
                    self._states.popitem(last=False)
        return extraction

    def forget(self, path: str) -> None:
        """Drop the state kept for ``path``, for example because the file was deleted."""
        with self._lock:
            self._states.pop(path, None)


class _FileState:
    """State an :class:`Extractor` keeps for one path: the last comment scan and the parsers' state."""

    __slots__ = ("scan", "scanned", "symbols")

    def __init__(self) -> None:
        self.scan: CommentScan | None = None
        self.symbols = SymbolCache()
        # Whether the current extraction scanned the file; one that returned early keeps nothing.
        self.scanned = False


def _extract(path: str, data: bytes, state: _FileState | None) -> Extraction:
    """Extract one file, reusing and updating ``state`` when given."""
    language = language_for_path(path)
    limit = MAX_NOTEBOOK_BYTES if language == NOTEBOOK else MAX_FILE_BYTES
    if len(data) > limit:
        return Extraction(language, (), "size", ())
    # NOTE: UTF-16 text has NUL bytes too, so it is skipped as binary.
    if b"\x00" in data[:_BINARY_PROBE_BYTES]:
        return Extraction(language, (), "binary", ())

    if language is None:
        return Extraction(None, (), "unknown-language", ())

    text, warnings = _decode(data)
    text = _prepare(text)
    if _MARKER not in text:
        return Extraction(language, (), None, tuple(warnings))

    if language == NOTEBOOK:
        try:
            touchpoints, notes = _extract_notebook(text)
        except _InvalidNotebookError as exc:
            return Extraction(language, (), "invalid-notebook", (*warnings, str(exc)))
    else:
        touchpoints, notes = _extract_source(text, language, None, state)
    return Extraction(language, tuple(touchpoints), None, (*warnings, *notes))


def extract_text(text: str, language: str) -> tuple[Touchpoint, ...]:
    """Extract the touchpoints of already decoded text.

    Args:
        text: File content. Any line-break style and a leading byte order mark are accepted.
        language: A language name as returned by :func:`language_for_path`.

    Raises:
        ValueError: ``language`` is unknown, or it is ``"jupyter"`` and ``text``
            is not a notebook.
    """
    if language != NOTEBOOK and language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; pass a name returned by language_for_path()")
    text = _prepare(text)
    if _MARKER not in text:
        return ()

    if language == NOTEBOOK:
        try:
            touchpoints, _ = _extract_notebook(text)
        except _InvalidNotebookError as exc:
            raise ValueError(str(exc)) from exc
    else:
        touchpoints, _ = _extract_source(text, language, None)
    return tuple(touchpoints)


def decode_text(data: bytes) -> str:
    """Decode a file's bytes as :func:`extract` does: UTF-8, else Latin-1, with LF line breaks and no BOM."""
    return _prepare(_decode(data)[0])


def _decode(data: bytes) -> tuple[str, list[str]]:
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8"), []
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        message = f"not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset}); decoded as Latin-1"
        return data[bom:].decode("latin-1"), [message]


def _prepare(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    return normalize_newlines(text)


def _extract_source(
    text: str, language: str, cell: int | None, state: _FileState | None = None
) -> tuple[list[Touchpoint], list[str]]:
    """Find the markers in every comment of ``text``, with warnings for markers that have no name."""
    if state is None:
        spans: Iterable[CommentSpan] = scan_comments(text, language, containing=_MARKER)
    else:
        state.scan = rescan_comments(text, language, state.scan)
        state.scanned = True
        spans = state.scan.spans_containing(_MARKER)
    touchpoints: list[Touchpoint] = []
    nameless: list[int] = []
    for span in spans:
        _parse_span(text, span, language, cell, touchpoints, nameless)
    markers = [(touchpoint.line, touchpoint.column) for touchpoint in touchpoints]
    symbols = associate(text, language, markers, None if state is None else state.symbols)
    for index, symbol in enumerate(symbols):
        if symbol is not None:
            touchpoints[index] = replace(
                touchpoints[index], symbol=symbol.name, symbol_kind=symbol.kind,
                symbol_start=symbol.start_line, symbol_end=symbol.end_line,
            )
    return touchpoints, _nameless_warnings(nameless, cell)


def _parse_span(
    text: str,
    span: CommentSpan,
    language: str,
    cell: int | None,
    touchpoints: list[Touchpoint],
    nameless: list[int],
) -> None:
    """Append the markers in one comment span to ``touchpoints``, and the lines of nameless ones to ``nameless``."""
    line = span.line
    line_start = span.start - span.column + 1
    counted = span.start
    at = text.find(_MARKER, span.start, span.end)
    while at >= 0:
        breaks = text.count("\n", counted, at)
        if breaks:
            line += breaks
            line_start = text.rfind("\n", counted, at) + 1
        counted = at

        after = at + len(_MARKER)
        if at == span.start or text[at - 1] in _MARKER_PREFIXES:
            name = _NAME.match(text, after, span.end)
            if name is not None:
                description = _description(text, name.end(), span.end)
                touchpoints.append(
                    Touchpoint(
                        name=name.group(1).rstrip(_NAME_TRAILING_PUNCTUATION),
                        line=line,
                        column=at - line_start + 1,
                        description=description,
                        language=language,
                        cell=cell,
                    )
                )
            elif after == span.end or text[after] in " \t\n":
                nameless.append(line)
        at = text.find(_MARKER, after, span.end)


def _description(text: str, start: int, span_end: int) -> str:
    """Return the cleaned rest of the marker's line, from ``start`` to the line or comment end."""
    line_end = text.find("\n", start, span_end)
    description = text[start : span_end if line_end < 0 else line_end].strip()
    for closer in _DESCRIPTION_CLOSERS:
        if description.endswith(closer):
            description = description[: -len(closer)].rstrip()
            break
    return description.lstrip("*-: \t").strip()


def _nameless_warnings(lines: list[int], cell: int | None) -> list[str]:
    where = "" if cell is None else f"cell {cell}, "
    warnings = [f"{where}line {line}: @touchpoint without a name" for line in lines[:_MAX_NAMELESS_WARNINGS]]
    if len(lines) > _MAX_NAMELESS_WARNINGS:
        hidden = len(lines) - _MAX_NAMELESS_WARNINGS
        warnings.append(f"{where}{hidden} more @touchpoint markers without a name")
    return warnings


def _extract_notebook(text: str) -> tuple[list[Touchpoint], list[str]]:
    """Extract the touchpoints of every markdown and code cell of an nbformat 4 notebook.

    Raises:
        _InvalidNotebookError: The text is not JSON or has no ``cells`` list.
    """
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        # RecursionError comes from arrays or objects nested too deep.
        raise _InvalidNotebookError(f"notebook is not valid JSON: {exc}") from exc
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise _InvalidNotebookError("notebook has no 'cells' list; only nbformat 4 notebooks are read")

    kernel = _kernel_language(document)
    touchpoints: list[Touchpoint] = []
    warnings: list[str] = []
    if kernel is None:
        warnings.append(f"kernel language {_kernel_name(document)!r} is not supported; code cells not scanned")

    for index, cell in enumerate(cells):
        source = _cell_source(cell)
        if source is None:
            warnings.append(f"cell {index}: no 'source' string or list of strings; cell not scanned")
            continue
        language = _cell_language(cell, source, kernel)
        if language is None or _MARKER not in source:
            continue
        found, notes = _extract_source(normalize_newlines(source), language, index)
        touchpoints += found
        warnings += notes
    return touchpoints, warnings


def _kernel_name(document: dict[str, Any]) -> str:
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return "python"
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field), str):
            return str(section[field])
    return "python"


def _kernel_language(document: dict[str, Any]) -> str | None:
    return KERNEL_LANGUAGES.get(_kernel_name(document).lower())


def _cell_source(cell: object) -> str | None:
    source = cell.get("source") if isinstance(cell, dict) else None
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    return None


def _cell_language(cell: dict[str, Any], source: str, kernel: str | None) -> str | None:
    """Return the language to scan a cell with, or None for raw cells and unsupported kernels."""
    kind = cell.get("cell_type")
    if kind == "markdown":
        return "markdown"
    if kind != "code":
        return None

    if source.startswith("%%"):
        magic = source[2:].split(None, 1)[0] if source[2:].strip() else ""
        if magic in _CELL_MAGIC_LANGUAGES:
            return _CELL_MAGIC_LANGUAGES[magic]

    metadata = cell.get("metadata")
    vscode = metadata.get("vscode") if isinstance(metadata, dict) else None
    if isinstance(vscode, dict) and isinstance(vscode.get("languageId"), str):
        return KERNEL_LANGUAGES.get(vscode["languageId"].lower(), kernel)
    return kernel
