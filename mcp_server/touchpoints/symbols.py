"""Symbol association: which function, class or block a ``@touchpoint`` marker annotates.

A marker annotates the declaration that follows its comment in the same block,
or else the declaration that encloses it. Python is parsed with the standard
:mod:`ast` module. Other languages use tree-sitter grammars from the optional
``tree-sitter-language-pack`` package (extra ``symbols``), imported lazily so
the extractor stays importable, and fast to import, without it. When neither
applies, a heuristic reads the first code line after the marker and accepts it
when it starts with a declaration keyword. :mod:`.extract` calls
:func:`associate` for files that contain markers.
"""

from __future__ import annotations

import ast
import bisect
import functools
import logging
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .edits import common_prefix_length, common_suffix_length

__all__ = ["Symbol", "SymbolCache", "associate", "tree_sitter_available"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Symbol:
    """A declaration a marker annotates.

    Attributes:
        name: Name qualified by its enclosing declarations, such as ``Cart.render``.
        kind: ``"function"``, ``"method"``, ``"class"``, ``"module"``, ``"type"`` or
            another declaration kind of the language.
        start_line: 1-based first line, including decorators and annotations.
        end_line: 1-based last line; equals ``start_line`` when the heuristic found it.
    """

    name: str
    kind: str
    start_line: int
    end_line: int


class SymbolCache:
    """State :func:`associate` keeps between calls for one file, so that the next call parses only what changed.

    It contains the tree-sitter tree and its source bytes, or, for Python, the
    lines parsed so far as pieces that each parse on their own, with the symbols
    found in them. A call with a cache gives what a call without it gives, which
    ``tests/touchpoints/test_incremental.py`` checks after random edits. A cache
    is not safe for concurrent use, so give each thread its own.
    """

    __slots__ = ("data", "outline", "python_text", "tree")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.tree: Any = None
        self.python_text: str | None = None
        self.outline: _Block | None = None


def associate(
    text: str, language: str, markers: list[tuple[int, int]], cache: SymbolCache | None = None
) -> list[Symbol | None]:
    """Return the symbol each marker annotates, or None, in the order of ``markers``.

    Args:
        text: Source text with LF line breaks.
        language: Language name from the scanner's table.
        markers: ``(line, column)`` of each marker, both 1-based.
        cache: State kept from earlier calls for the same file, updated in place.
    """
    if not markers:
        return []
    if language == "python":
        try:
            found = _python_symbols(text, markers, cache)
        except _StaleCacheError as exc:
            logger.warning("symbol cache out of step with the file (%s); parsing without it", exc)
            if cache is not None:
                cache.outline = cache.python_text = None
            found = _python_symbols(text, markers, None)
        if found is not None:
            return found
    grammar = _TREE_SITTER_NAMES.get(language)
    if grammar is not None:
        parser = _parser(grammar)
        if parser is not None:
            return _tree_sitter_symbols(parser, text, language, markers, cache)
    return _heuristic_symbols(text, markers)


# -- Python ------------------------------------------------------------------------------

_PYTHON_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _python_symbols(
    text: str, markers: list[tuple[int, int]], cache: SymbolCache | None
) -> list[Symbol | None] | None:
    """Resolve markers by parsing only the top-level statements around each one.

    ``ast.parse`` costs about 15 ms per 1,000 lines (2 vCPU Xeon, Python 3.11.7),
    so parsing a whole generated file of 200,000 lines for a few markers would
    take seconds. A region runs from the top-level statement before the marker
    to the end of the one after it; when that slice does not parse (a line at
    column 0 inside a string, a continuation), the whole file is parsed once. So
    is a file whose markers' regions add up to more lines than the file has.
    """
    lines = text.split("\n")
    boundaries = _top_level_starts(lines)
    spans = [_region(boundaries, line, len(lines)) for line, _ in markers]
    source = _PythonSource(text, lines, cache)
    if sum(end - start for start, end in set(spans)) > len(lines) and source.whole() is not None:
        # Regions of neighbouring markers overlap, so together they would parse more lines
        # than the file has. A file that does not parse as a whole still goes region by region.
        spans = [(0, len(lines))] * len(spans)
    symbols: list[Symbol | None] = []
    for (line, column), (start, end) in zip(markers, spans, strict=True):
        resolver = source.whole() if (start, end) == (0, len(lines)) else source.region(start, end)
        if resolver is None:
            resolver = source.whole()
            if resolver is None:
                source.finish()
                return None
        symbols.append(resolver(line, column))
    source.finish()
    return symbols


_Resolver = Callable[[int, int], "Symbol | None"]


class _PythonSource:
    """The parses one call needs of one version of a Python file.

    Each region's resolver, or its failure, is kept for the call, so no region is
    parsed twice. A call redone after :class:`_StaleCacheError` starts over.
    Without a cache, the whole file and each region are parsed with ``ast.parse``.
    With one, both are read from the cache's :class:`_Block` of pieces, which parses
    lines where it has no piece yet, together with a neighbouring piece when a gap
    does not parse alone. Those are usually the lines that changed since the
    previous call.
    """

    def __init__(self, text: str, lines: list[str], cache: SymbolCache | None) -> None:
        self.lines = lines
        self.cache = cache
        self._resolvers: dict[tuple[int, int], _Resolver | None] = {}
        if cache is not None:
            cache.outline = _advance(cache.outline, cache.python_text, text, len(lines))
            cache.outline.forget_failures()
            cache.python_text = text

    def whole(self) -> _Resolver | None:
        """Return a resolver over the whole file, or None when the file does not parse."""
        return self.region(0, len(self.lines))

    def region(self, start: int, end: int) -> _Resolver | None:
        """Return a resolver over lines ``start`` to ``end`` (0-based, end excluded), or None when they do not parse."""
        key = (start, end)
        if key not in self._resolvers:
            if self.cache is None or self.cache.outline is None:
                module = _parse_region(self.lines, start, end)
                resolver = None if module is None else functools.partial(_resolve_in_module, module.body, start)
            else:
                resolver = self.cache.outline.resolver(start, end, self.lines)
            self._resolvers[key] = resolver
        return self._resolvers[key]

    def finish(self) -> None:
        """Drop the parsed trees, which take megabytes, keeping only the symbols found in them."""
        if self.cache is not None and self.cache.outline is not None:
            self.cache.outline.drop_trees()


def _resolve_in_module(body: list[ast.stmt], offset: int, line: int, column: int) -> Symbol | None:
    """Resolve a marker in a module parsed from the file's lines from ``offset`` (0-based) on."""
    # Shifting the marker and the result is cheaper than ast.increment_lineno, which
    # walks every node of the module.
    return _shifted(_python_symbol(body, (line - offset, column - 1), []), offset)


def _shifted(symbol: Symbol | None, lines: int) -> Symbol | None:
    if symbol is None or not lines:
        return symbol
    # A direct call: dataclasses.replace costs several times as much, once per piece.
    return Symbol(symbol.name, symbol.kind, symbol.start_line + lines, symbol.end_line + lines)


class _StaleCacheError(Exception):
    """Raised when text kept in a :class:`SymbolCache` no longer parses as it did, so the call is redone without it."""


# -- Python: pieces that parse on their own ----------------------------------------------
#
# Lines cut at statement starts into pieces that each parse on their own parse as a
# whole, and their module body is the pieces' bodies in order. Each piece is tokenized
# from a clean state. Its predecessor parsed, so it left no string, bracket or
# backslash continuation open. It starts at the block's indentation, so its first
# statement is in the same block. A region or the whole file is therefore resolved
# from the pieces that cover it, parsing only the lines no piece covers yet.
#
# The cache keeps, per file, a _Block: pieces and gaps that cover every line. After an
# edit, the pieces that overlap the changed lines become a gap and the pieces after
# them move. A gap is parsed when a region that needs it is resolved, with one piece
# more on each side if it does not parse alone. If that fails too, the region itself
# is parsed, as without a cache.
#
# A long top-level class is a piece whose body is a _Block of its own. Its statements are
# parsed in parts, each wrapped in "if 1:" so that it keeps its indentation. An edit
# inside the body then parses only the parts it touches.
# NOTE: functions and nested classes are not split, so an edit inside a long function
# parses the whole function again.

_MIN_SPLIT_CLASS_LINES = 100
"""Minimum length in lines of a top-level class whose body is cut into parts. A shorter one is parsed whole."""

_WRAPPER = "if 1:\n"

_EMPTY = object()
"""``first`` of a piece without statements."""

_AFTER = object()
"""Result of a piece for a marker after its last statement: the next statement decides."""


class _Gap:
    """Lines ``start`` to ``end`` (0-based, end excluded) that no parse covers yet."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def move(self, lines: int) -> None:
        self.start += lines
        self.end += lines


class _Piece:
    """Lines ``start`` to ``end`` (0-based, end excluded) that parse on their own.

    ``body`` is the parsed statements, whose line ``n`` is file line ``n + delta``,
    or None once the call that parsed it has finished. The other fields count lines
    from ``start``, so they stay valid when the piece moves. ``results`` maps a
    marker's position to its symbol. ``first`` is what a marker just before the
    piece annotates, and ``last_end`` is where the last statement ends.
    """

    __slots__ = ("body", "delta", "end", "first", "last_end", "results", "start", "wrapped")

    def __init__(self, start: int, end: int, body: list[ast.stmt], delta: int, *, wrapped: bool) -> None:
        self.start = start
        self.end = end
        self.body: list[ast.stmt] | None = body
        self.delta = delta
        # Whether the lines parse only inside "if 1:", as the parts of a class body do.
        self.wrapped = wrapped
        self.results: dict[tuple[int, int], Any] = {}
        self.first: Any = _EMPTY
        self.last_end: tuple[int, int] | None = None
        if body:
            if isinstance(body[0], _PYTHON_DEFINITIONS):
                self.first = _shifted(_python_describe([body[0]]), delta - start)
            else:
                self.first = None
            last = body[-1]
            self.last_end = ((last.end_lineno or last.lineno) + delta - start, last.end_col_offset or 0)

    def move(self, lines: int) -> None:
        self.start += lines
        self.end += lines
        self.delta += lines

    def resolve(self, lines: list[str], line: int, column: int) -> Any:
        """Return the symbol, in lines from ``start``, for a marker in this piece, or :data:`_AFTER`."""
        key = (line - self.start, column)
        if key not in self.results:
            if self.body is None:
                self._load(lines)
            assert self.body is not None
            resolved = _python_resolve(self.body, (line - self.delta, column - 1), [])
            self.results[key] = _AFTER if resolved is None else _shifted(resolved[1], self.delta - self.start)
        return self.results[key]

    def drop_trees(self) -> None:
        self.body = None

    def _load(self, lines: list[str]) -> None:
        if self.wrapped:
            module = _parse_text(_WRAPPER + "\n".join(lines[self.start : self.end]))
            body = module.body[0].body if module is not None and isinstance(module.body[0], ast.If) else None
            delta = self.start - 1
        else:
            module = _parse_region(lines, self.start, self.end)
            body = None if module is None else module.body
            delta = self.start
        if body is None:
            raise _StaleCacheError(f"lines {self.start + 1}-{self.end} no longer parse on their own")
        self.body, self.delta = body, delta


class _ClassPiece:
    """A long top-level class: its header, then the statements of its body as a :class:`_Block` of parts.

    ``class_start`` is the class's first line (its first decorator), counted from
    ``start``, with its column. Its body block must be complete, with no gap,
    before ``resolve``, ``first`` or ``last_end`` is used.
    """

    __slots__ = ("block", "class_start", "end", "name", "start")

    def __init__(self, start: int, end: int, node: ast.ClassDef, delta: int, lines: list[str]) -> None:
        self.start = start
        self.end = end
        self.name = node.name
        line, column = _python_start(node)
        self.class_start = (line + delta - start, column)
        first_line, first_column = _python_start(node.body[0])
        body_start = first_line + delta - 1
        indent = lines[body_start][:first_column]
        self.block = _Block(_cut(node.body, delta, body_start, end, lines, indent=indent), indent)

    @staticmethod
    def splits(node: ast.stmt, delta: int, lines: list[str]) -> bool:
        """Tell whether ``node`` is a top-level class long enough to split, with its body on lines of its own."""
        if not isinstance(node, ast.ClassDef) or not node.body:
            return False
        if (node.end_lineno or node.lineno) - node.lineno + 1 < _MIN_SPLIT_CLASS_LINES:
            return False
        first_line, first_column = _python_start(node.body[0])
        indent = lines[first_line + delta - 1][:first_column]
        return first_line > node.lineno and first_column > 0 and not indent.strip()

    @property
    def last_end(self) -> tuple[int, int]:
        """End of the class, in lines from ``start``: the end of its last statement."""
        last = next(part for part in reversed(self.block.entries) if part.last_end is not None)
        return (last.last_end[0] + last.start - self.start, last.last_end[1])

    @property
    def first(self) -> Symbol:
        """The class itself, which a marker just before it annotates."""
        return Symbol(self.name, "class", self.class_start[0], self.last_end[0])

    def move(self, lines: int) -> None:
        self.start += lines
        self.end += lines
        for part in self.block.entries:
            part.move(lines)

    def resolve(self, lines: list[str], line: int, column: int) -> Any:
        """Resolve a marker as ``_python_resolve`` does at the class node, with the body read part by part."""
        position = (line - self.start, column - 1)
        if position < self.class_start:
            return self.first
        if position > self.last_end:
            return _AFTER
        parts = self.block.entries
        index = bisect.bisect_right(parts, line - 1, key=_entry_start) - 1
        if index >= 0:
            part = parts[index]
            found = part.resolve(lines, line, column)
            if found is not _AFTER:
                return self._member(found, part.start)
        for following in parts[index + 1 :]:
            if following.first is not _EMPTY:
                return self._member(following.first, following.start)
        return self.first

    def _member(self, found: Symbol | None, part_start: int) -> Symbol | None:
        """Qualify a symbol found in a part, as if the class had been in scope, in lines from ``start``."""
        if found is None:
            return self.first
        kind = "method" if found.kind == "function" and "." not in found.name else found.kind
        shift = part_start - self.start
        return Symbol(f"{self.name}.{found.name}", kind, found.start_line + shift, found.end_line + shift)

    def drop_trees(self) -> None:
        self.block.drop_trees()


_Entry = _Gap | _Piece | _ClassPiece
_entry_start = operator.attrgetter("start")


class _Block:
    """Pieces and gaps covering consecutive lines, in order: the top level of a file, or a long class's body.

    ``indent`` is the block's indentation: empty at the top level, where lines
    parse as a module, else that of the class body, whose lines parse inside
    ``if 1:``.
    """

    __slots__ = ("entries", "failed", "indent")

    def __init__(self, entries: list[_Entry], indent: str) -> None:
        self.entries = entries
        self.indent = indent
        # Line ranges whose parse failed during the current call, so that none is parsed twice.
        self.failed: set[tuple[int, int]] = set()

    def edit(self, first: int, after: int, shift: int) -> None:
        """Turn the entries that overlap old lines ``first`` to ``after`` into a gap and move the later ones."""
        entries = self.entries
        low = bisect.bisect_right(entries, first, key=_entry_start) - 1
        high = bisect.bisect_left(entries, after, key=_entry_start) - 1
        entry = entries[low]
        if low == high and isinstance(entry, _ClassPiece) and first >= entry.block.entries[0].start:
            entry.block.edit(first, after, shift)
            entry.end += shift
        else:
            entries[low : high + 1] = [_Gap(entries[low].start, entries[high].end + shift)]
        for following in entries[low + 1 :]:
            following.move(shift)

    def resolver(self, start: int, end: int, lines: list[str]) -> _Resolver | None:
        """Return a resolver over top-level lines ``start`` to ``end``, as parsing just those lines gives, or None."""
        if not self.ensure(start, end, lines):
            if (start, end) in self.failed:
                return None
            module = _parse_region(lines, start, end)
            if module is None:
                self.failed.add((start, end))
                return None
            self.place(start, end, _cut(module.body, start, start, end, lines))
        pieces = self.entries[self._index(start) : self._index(end)]
        starts = [piece.start for piece in pieces]
        return functools.partial(_resolve_in_pieces, pieces, starts, lines)

    def ensure(self, start: int, end: int, lines: list[str]) -> bool:
        """Parse what is needed so that pieces cover exactly lines ``start`` to ``end``, or return False."""
        if not (self._split(start) and self._split(end)):
            return False
        index = self._index(start)
        while index < len(self.entries) and self.entries[index].start < end:
            entry = self.entries[index]
            if isinstance(entry, _Gap):
                if not self._fill(index, start, end, lines):
                    return False
                continue
            if isinstance(entry, _ClassPiece):
                body = entry.block
                if not body.ensure(body.entries[0].start, body.entries[-1].end, lines):
                    self.entries[index] = _Gap(entry.start, entry.end)
                    continue
            index += 1
        return True

    def place(self, start: int, end: int, pieces: list[_Piece | _ClassPiece]) -> None:
        """Put ``pieces``, which cover lines ``start`` to ``end``, in place of what covered them before."""
        entries = self.entries
        low = bisect.bisect_right(entries, start, key=_entry_start) - 1
        high = bisect.bisect_left(entries, end, key=_entry_start) - 1
        before = [_Gap(entries[low].start, start)] if entries[low].start < start else []
        after = [_Gap(end, entries[high].end)] if entries[high].end > end else []
        entries[low : high + 1] = [*before, *pieces, *after]

    def drop_trees(self) -> None:
        for entry in self.entries:
            if not isinstance(entry, _Gap):
                entry.drop_trees()

    def forget_failures(self) -> None:
        """Clear the failed ranges of this block and of its classes' bodies, which hold for one version of the text."""
        self.failed.clear()
        for entry in self.entries:
            if isinstance(entry, _ClassPiece):
                entry.block.failed.clear()

    def _index(self, line: int) -> int:
        """Return the index of the entry that starts at ``line``, or the number of entries past the last one."""
        return bisect.bisect_left(self.entries, line, key=_entry_start)

    def _split(self, line: int) -> bool:
        """Make ``line`` the start of an entry by splitting a gap, or return False if it is inside a parsed piece."""
        entries = self.entries
        index = bisect.bisect_right(entries, line, key=_entry_start) - 1
        if index < 0 or index == len(entries) or entries[index].start == line or line >= entries[index].end:
            return True
        entry = entries[index]
        if not isinstance(entry, _Gap):
            return False
        entries[index : index + 1] = [_Gap(entry.start, line), _Gap(line, entry.end)]
        return True

    def _fill(self, index: int, start: int, end: int, lines: list[str]) -> bool:
        """Parse the gap at ``index``, alone or with the entries beside it inside ``start`` to ``end``."""
        entries = self.entries
        for widen in (0, 1):
            low = index - widen if index - widen >= 0 and entries[index - widen].start >= start else index
            high = index + widen if index + widen < len(entries) and entries[index + widen].end <= end else index
            if widen and (low, high) == (index, index):
                break
            first, last = entries[low].start, entries[high].end
            parsed = None if (first, last) in self.failed else self._parse(first, last, lines)
            if parsed is not None:
                body, delta = parsed
                entries[low : high + 1] = _cut(body, delta, first, last, lines, indent=self.indent)
                return True
            self.failed.add((first, last))
        return False

    def _parse(self, start: int, end: int, lines: list[str]) -> tuple[list[ast.stmt], int] | None:
        """Parse lines ``start`` to ``end`` as this block's statements: their body and line delta, or None."""
        if not self.indent:
            module = _parse_region(lines, start, end)
            return None if module is None else (module.body, start)
        body = _parse_part(lines, start, end, self.indent)
        return None if body is None else (body, start - 1)


def _parse_part(lines: list[str], start: int, end: int, indent: str) -> list[ast.stmt] | None:
    """Parse lines of a class body inside ``if 1:``.

    Return None unless they form one block whose first line keeps ``indent``.
    """
    module = _parse_text(_WRAPPER + "\n".join(lines[start:end]))
    if module is None or len(module.body) != 1:
        return None
    block = module.body[0]
    if not isinstance(block, ast.If) or block.orelse:
        return None
    line, column = _python_start(block.body[0])
    if column != len(indent) or not lines[line + start - 2].startswith(indent):
        return None
    return block.body


def _advance(block: _Block | None, old_text: str | None, text: str, line_count: int) -> _Block:
    """Return ``block`` brought from ``old_text`` to ``text``: the changed lines become a gap, the rest move."""
    if block is None or old_text is None:
        return _Block([_Gap(0, line_count)], "")
    if old_text == text:
        return block
    prefix = common_prefix_length(old_text, text)
    suffix = common_suffix_length(old_text, text, min(len(old_text), len(text)) - prefix)
    old_count = block.entries[-1].end
    first = old_text.count("\n", 0, prefix)
    # Lines after the first line break of the common suffix are the same in both versions.
    newline = old_text.find("\n", len(old_text) - suffix)
    after = old_count if newline < 0 else old_text.count("\n", 0, newline) + 1
    block.edit(first, after, line_count - old_count)
    return block


def _cut(
    body: list[ast.stmt], delta: int, start: int, end: int, lines: list[str], *, indent: str = ""
) -> list[_Piece | _ClassPiece]:
    """Split parsed lines ``start`` to ``end`` into pieces at the statements of ``body`` that start a line.

    A cut needs the statement to start at the block's indentation, ``indent``,
    and the previous statement to end on an earlier line. No line between them
    may end with a backslash, which would continue it onto the next. With an empty
    ``indent`` the lines are top-level code and a long class becomes a
    :class:`_ClassPiece`.
    """
    groups: list[tuple[int, list[ast.stmt]]] = []
    nodes: list[ast.stmt] = []
    piece_start = start
    last_line = start
    for node in body:
        line, column = _python_start(node)
        first_line = line + delta - 1
        if (
            nodes
            and column == len(indent)
            and last_line < first_line
            and lines[first_line].startswith(indent)
            and not _continued(lines, last_line, first_line)
        ):
            groups.append((piece_start, nodes))
            piece_start, nodes = first_line, []
        nodes.append(node)
        last_line = (node.end_lineno or node.lineno) + delta - 1
    groups.append((piece_start, nodes))

    pieces: list[_Piece | _ClassPiece] = []
    for index, (group_start, group) in enumerate(groups):
        group_end = groups[index + 1][0] if index + 1 < len(groups) else end
        if len(group) == 1 and not indent and _ClassPiece.splits(group[0], delta, lines):
            pieces.append(_ClassPiece(group_start, group_end, group[0], delta, lines))  # type: ignore[arg-type]
        else:
            pieces.append(_Piece(group_start, group_end, group, delta, wrapped=bool(indent)))
    return pieces


def _continued(lines: list[str], start: int, end: int) -> bool:
    """Tell whether one of lines ``start`` to ``end`` ends with a backslash, which joins it to the next."""
    for index in range(start, end):
        if lines[index].endswith("\\"):
            return True
    return False


def _resolve_in_pieces(
    pieces: list[_Piece | _ClassPiece], starts: list[int], lines: list[str], line: int, column: int
) -> Symbol | None:
    """Resolve a marker as in the module that ``pieces`` make up together.

    The statements before the marker's piece all end before it, so only that piece
    and, when the marker follows its last statement, the next one are read.
    """
    index = bisect.bisect_right(starts, line - 1) - 1
    piece = pieces[index]
    found = piece.resolve(lines, line, column)
    if found is not _AFTER:
        return _shifted(found, piece.start)
    for following in pieces[index + 1 :]:
        first = following.first
        if first is not _EMPTY:
            return _shifted(first, following.start)
    return None


def _region(boundaries: list[int], line: int, line_count: int) -> tuple[int, int]:
    """Return the 0-based line span from the top-level statement before ``line`` to the end of the one after it."""
    index = bisect.bisect_right(boundaries, line - 1)
    start = boundaries[index - 1] if index > 0 else 0
    end = boundaries[index + 1] if index + 1 < len(boundaries) else line_count
    return start, end


_CONTINUATION_KEYWORDS = ("else", "elif", "except", "finally", "case")


def _top_level_starts(lines: list[str]) -> list[int]:
    """Return 0-based indexes of lines that look like the start of a top-level statement."""
    starts: list[int] = []
    previous = ""
    for index, line in enumerate(lines):
        first = line[:1]
        if first and first not in " \t#)]}" and not line.startswith(_CONTINUATION_KEYWORDS):
            if not previous.startswith("@"):
                starts.append(index)
        if line.strip() and not line.startswith("#"):
            previous = line
    return starts


def _parse_region(lines: list[str], start: int, end: int) -> ast.Module | None:
    return _parse_text("\n".join(lines[start:end]))


def _parse_text(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _python_start(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        first = min(decorators, key=lambda d: (d.lineno, d.col_offset))
        # The "@" sits one column before the decorator expression.
        return first.lineno, max(0, first.col_offset - 1)
    return node.lineno, node.col_offset


def _python_end(node: Any) -> tuple[int, int]:
    # An except handler or a match case ends where its last statement does, and a case has no position of its own.
    if isinstance(node, ast.excepthandler | ast.match_case):
        node = node.body[-1]
    return node.end_lineno or node.lineno, node.end_col_offset or 0


def _python_symbol(body: list[Any], position: tuple[int, int], scope: list[ast.AST]) -> Symbol | None:
    resolved = _python_resolve(body, position, scope)
    return resolved[1] if resolved is not None else _python_describe(scope)


def _python_resolve(
    body: list[Any], position: tuple[int, int], scope: list[ast.AST]
) -> tuple[bool, Symbol | None] | None:
    """Return ``(True, symbol)`` once the marker's place in ``body`` is known, or None if it lies after ``body``.

    The statements of a body follow each other in the text, so their ends ascend
    and a binary search finds the first one that does not end before the marker.
    Scanning from the first statement instead made a file with thousands of
    markers quadratic.
    """
    first = bisect.bisect_left(body, position, key=_python_end)
    for index in range(first, len(body)):
        node = body[index]
        if isinstance(node, ast.excepthandler | ast.match_case):
            resolved = _python_resolve(node.body, position, scope)
            if resolved is not None:
                return resolved
            continue
        start = _python_start(node)
        end = _python_end(node)
        if position < start:
            if isinstance(node, _PYTHON_DEFINITIONS):
                return True, _python_describe([*scope, node])
            return True, _python_describe(scope)
        if position > end:
            continue

        inner = [*scope, node] if isinstance(node, _PYTHON_DEFINITIONS) else scope
        for field in _BODY_FIELDS:
            resolved = _python_resolve(getattr(node, field, None) or [], position, inner)
            if resolved is not None:
                return resolved
        return True, _python_describe(inner)
    return None


def _python_describe(scope: list[ast.AST]) -> Symbol | None:
    definitions = [node for node in scope if isinstance(node, _PYTHON_DEFINITIONS)]
    if not definitions:
        return None
    node = definitions[-1]
    if isinstance(node, ast.ClassDef):
        kind = "class"
    elif len(definitions) > 1 and isinstance(definitions[-2], ast.ClassDef):
        kind = "method"
    else:
        kind = "function"
    name = ".".join(definition.name for definition in definitions)  # type: ignore[attr-defined]
    start_line, _ = _python_start(node)  # type: ignore[arg-type]
    return Symbol(name, kind, start_line, node.end_lineno or start_line)  # type: ignore[attr-defined]


# -- tree-sitter -------------------------------------------------------------------------

# Scanner language name -> grammar name in tree-sitter-language-pack 0.13.
_TREE_SITTER_NAMES = {
    "javascript": "javascript", "jsx": "javascript", "typescript": "typescript", "tsx": "tsx",
    "go": "go", "rust": "rust", "java": "java", "kotlin": "kotlin", "c": "c", "cpp": "cpp",
    "csharp": "csharp", "swift": "swift", "scala": "scala", "ruby": "ruby", "php": "php",
    "lua": "lua", "shell": "bash", "dart": "dart", "elixir": "elixir", "haskell": "haskell",
    "julia": "julia", "r": "r", "groovy": "groovy", "erlang": "erlang",
}

# Node type -> symbol kind. A type missing here is not a declaration.
_DECLARATIONS = {
    "function_declaration": "function", "generator_function_declaration": "function",
    "function_definition": "function", "function_item": "function", "function": "function",
    "method_definition": "method", "method_declaration": "method", "method": "method",
    "singleton_method": "method", "constructor_declaration": "method", "function_signature": "function",
    "class_declaration": "class", "abstract_class_declaration": "class", "class_definition": "class",
    "class_specifier": "class", "class": "class", "object_declaration": "class", "record_declaration": "class",
    "struct_specifier": "struct", "struct_item": "struct", "struct_declaration": "struct",
    "interface_declaration": "interface", "trait_item": "trait", "protocol_declaration": "interface",
    "enum_declaration": "enum", "enum_item": "enum", "enum_specifier": "enum",
    "type_alias_declaration": "type", "type_declaration": "type", "type_item": "type",
    "impl_item": "impl", "mod_item": "module", "module": "module", "namespace_definition": "namespace",
    "namespace_declaration": "namespace", "internal_module": "namespace", "trait_declaration": "trait",
    "local_function_declaration": "function", "function_definition_statement": "function",
}
# Nodes that hold a declaration without being one: an "export" prefix, a template.
_WRAPPERS = frozenset({"body_statement", "export_statement", "template_declaration", "decorated_definition", "ambient_declaration"})
_VARIABLE_DECLARATIONS = frozenset({"lexical_declaration", "variable_declaration"})
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_NAME_NODES = frozenset({
    "identifier", "type_identifier", "field_identifier", "property_identifier", "constant", "name",
    "simple_identifier", "qualified_identifier", "scoped_identifier", "destructor_name", "operator_name",
    "word", "namespace_identifier",
})


def tree_sitter_available() -> bool:
    """Return whether tree-sitter grammars can be loaded in this environment."""
    return _parser("javascript") is not None


@functools.cache
def _parser(grammar: str) -> Any:
    try:
        from tree_sitter_language_pack import get_parser
    except ImportError:
        return None
    try:
        return get_parser(grammar)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a missing or broken grammar falls back to the heuristic
        logger.debug("no tree-sitter grammar %r: %s", grammar, exc)
        return None


def _tree_sitter_symbols(
    parser: Any, text: str, language: str, markers: list[tuple[int, int]], cache: SymbolCache | None
) -> list[Symbol | None]:
    data = text.encode("utf-8")
    tree = parser.parse(data) if cache is None else _parse_incrementally(parser, data, cache)
    lines = text.split("\n")
    results: list[Symbol | None] = []
    for line, column in markers:
        # tree-sitter columns count bytes, the marker's column counts characters.
        prefix = lines[line - 1][: column - 1] if line <= len(lines) else ""
        point = (line - 1, len(prefix.encode("utf-8")))
        node = tree.root_node.descendant_for_point_range(point, point)
        results.append(_tree_sitter_symbol(node, data) if node is not None else None)
    return results


def _parse_incrementally(parser: Any, data: bytes, cache: SymbolCache) -> Any:
    """Parse ``data`` reusing the cached tree of the previous version, and keep the new tree in the cache.

    The edit given to tree-sitter spans from the first to the last byte that
    differs, so tree-sitter re-reads only the nodes around it. Error recovery
    can build a different tree when parsing incrementally than from scratch
    (tree-sitter 0.26, TSX grammar), so a tree with errors is neither reused nor
    kept. Such text is parsed from scratch.
    """
    old_tree, old = cache.tree, cache.data
    cache.tree = cache.data = None
    if old_tree is not None and old is not None and old == data:
        tree = old_tree
    elif old_tree is not None and old is not None:
        prefix = common_prefix_length(old, data)
        suffix = common_suffix_length(old, data, min(len(old), len(data)) - prefix)
        old_tree.edit(
            start_byte=prefix,
            old_end_byte=len(old) - suffix,
            new_end_byte=len(data) - suffix,
            start_point=_point(old, prefix),
            old_end_point=_point(old, len(old) - suffix),
            new_end_point=_point(data, len(data) - suffix),
        )
        tree = parser.parse(data, old_tree)
        if tree.root_node.has_error:
            tree = parser.parse(data)
    else:
        tree = parser.parse(data)
    if not tree.root_node.has_error:
        cache.tree, cache.data = tree, data
    return tree


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """Return the 0-based row and byte column of ``offset``, as tree-sitter counts them."""
    return data.count(b"\n", 0, offset), offset - data.rfind(b"\n", 0, offset) - 1


def _tree_sitter_symbol(node: Any, data: bytes) -> Symbol | None:
    # The point may fall on a part of the comment, such as a doc-comment body.
    ancestor = node.parent
    while ancestor is not None:
        if "comment" in ancestor.type:
            node = ancestor
        ancestor = ancestor.parent
    node = _hoisted(node)
    following = node.next_named_sibling
    while following is not None and "comment" in following.type:
        following = following.next_named_sibling
    if following is not None:
        declaration = _unwrap(following)
        if declaration is not None:
            return _describe(declaration, data)

    ancestor = node.parent
    while ancestor is not None:
        if _kind(ancestor, data) is not None:
            return _describe(ancestor, data)
        ancestor = ancestor.parent
    return None


def _hoisted(comment: Any) -> Any:
    """Return the node the comment follows once comments on lines after a node's last token count as after it.

    tree-sitter may attach a comment on the lines after a node's last token, such
    as a function's closing brace, to that node or to its parent. Parsing the same
    text incrementally and from scratch can differ there (tree-sitter 0.26, TSX).
    Read this way, both trees give the same symbol. A comment on the same line as
    the last token stays where the parser put it. Returns ``comment`` itself when
    it is not trailing.
    """
    node = comment
    row = comment.start_point[0]
    while (
        node.parent is not None
        and node.parent.parent is not None
        and _only_extras_after(node)
        and _last_token(node.parent).end_point[0] < row
    ):
        node = node.parent
    return node


def _only_extras_after(node: Any) -> bool:
    following = node.next_sibling
    while following is not None:
        if not following.is_extra:
            return False
        following = following.next_sibling
    return True


def _unwrap(node: Any) -> Any:
    """Return the declaration ``node`` is or contains through an ``export`` or template prefix, or None."""
    for _ in range(4):
        if node.type in _DECLARATIONS or _variable_function(node) is not None:
            return node
        if node.type not in _WRAPPERS:
            return None
        if node.type == "body_statement":
            node = node.named_children[0] if node.named_children else None
            if node is None:
                return None
            continue
        inner = node.child_by_field_name("declaration") or node.child_by_field_name("definition")
        if inner is None:
            named = [child for child in node.named_children if child.type not in ("decorator", "comment")]
            inner = named[-1] if named else None
        if inner is None:
            return None
        node = inner
    return None


def _variable_function(node: Any) -> Any:
    """Return the declarator of ``const f = () => ...``, which declares a function, or None."""
    if node.type not in _VARIABLE_DECLARATIONS:
        return None
    for child in node.named_children:
        if child.type == "variable_declarator":
            value = child.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                return child
    return None


def _kind(node: Any, data: bytes) -> str | None:
    kind = _DECLARATIONS.get(node.type)
    if kind == "function" and node.type == "function" and node.child_by_field_name("name") is None:
        return None  # an anonymous function expression
    if kind is not None:
        return kind
    return "function" if _variable_function(node) is not None else None


def _describe(node: Any, data: bytes) -> Symbol | None:
    kind = _kind(node, data)
    name = _name(_variable_function(node) or node, data)
    if kind is None or name is None:
        return None
    qualified = [name]
    ancestor = node.parent
    while ancestor is not None:
        if _kind(ancestor, data) is not None:
            outer = _name(_variable_function(ancestor) or ancestor, data)
            if outer:
                qualified.append(outer)
                if kind == "function" and _DECLARATIONS.get(ancestor.type) in ("class", "struct", "impl", "interface"):
                    kind = "method"
        ancestor = ancestor.parent
    return Symbol(".".join(reversed(qualified)), kind, node.start_point[0] + 1, _last_token(node).end_point[0] + 1)


def _last_token(node: Any) -> Any:
    """Return the last descendant of ``node`` that is not a comment, which ends where ``node`` really ends."""
    while node.child_count:
        child = node.child(node.child_count - 1)
        while child is not None and child.is_extra:
            child = child.prev_sibling
        if child is None:
            break
        node = child
    return node


def _name(node: Any, data: bytes) -> str | None:
    target = node.child_by_field_name("name")
    if target is None and node.type == "impl_item":
        target = node.child_by_field_name("type")
    if target is None:
        # Go declares types in a type_spec child: "type Cart struct {...}".
        spec = next((child for child in node.named_children if child.type.endswith("_spec")), None)
        target = spec.child_by_field_name("name") if spec is not None else None
    if target is None:
        target = node.child_by_field_name("declarator")
        for _ in range(6):
            if target is None or target.type in _NAME_NODES:
                break
            target = target.child_by_field_name("declarator") or target.child_by_field_name("name")
    if target is None:
        # Ruby, Lua and some grammars name the declaration with a plain child.
        target = next((child for child in node.named_children if child.type in _NAME_NODES), None)
    if target is None:
        return None
    return data[target.start_byte : target.end_byte].decode("utf-8", "replace")


# -- heuristic ---------------------------------------------------------------------------

_DECLARATION_LINE = re.compile(
    r"\s*(?:(?:export|default|public|private|protected|internal|static|abstract|final|async|pub(?:\([\w:]+\))?|"
    r"extern|inline|unsafe|open|override|local|sealed|partial|virtual)\s+)*"
    r"(?P<keyword>def|defp|defmodule|function|func|fn|fun|sub|proc|class|struct|interface|trait|enum|"
    r"module|object|impl|type|macro|resource|data|variable|output)\s+[\"']?(?P<name>[\w$.:]+)"
)
_HEURISTIC_KINDS = {
    "def": "function", "defp": "function", "function": "function", "func": "function", "fn": "function",
    "fun": "function", "sub": "function", "proc": "function", "macro": "function", "defmodule": "module",
    "class": "class", "object": "class", "struct": "struct", "interface": "interface", "trait": "trait",
    "enum": "enum", "module": "module", "impl": "impl", "type": "type", "resource": "resource",
    "data": "resource", "variable": "variable", "output": "variable",
}
_COMMENT_LINE = re.compile(r"\s*(?:$|//|#|--|;|%|\*|/\*|<!--|\{-|\(\*|'|REM\b|\")")


def _heuristic_symbols(text: str, markers: list[tuple[int, int]]) -> list[Symbol | None]:
    lines = text.split("\n")
    return [_heuristic_symbol(lines, line) for line, _ in markers]


def _heuristic_symbol(lines: list[str], line: int) -> Symbol | None:
    """Return the declaration on the first code line after ``line``, or None.

    NOTE: a line that starts like a comment is skipped, so code inside a
    multi-line comment can be taken for a declaration.
    """
    for number in range(line, min(len(lines), line + 20)):
        candidate = lines[number]
        if _COMMENT_LINE.match(candidate):
            continue
        match = _DECLARATION_LINE.match(candidate)
        if match is None:
            return None
        return Symbol(match.group("name"), _HEURISTIC_KINDS[match.group("keyword")], number + 1, number + 1)
    return None


_WORD = re.compile(r"\w")


def followed_by_code(text: str, language: str, line: int, column: int) -> bool:
    """Return whether any code, not only comments and blanks, follows the marker at ``(line, column)``.

    A marker followed by nothing annotates nothing: its code was deleted or
    moved away. Code is any word character outside comments and docstrings.
    """
    from .scanner import scan_comments

    lines = text.split("\n")
    position = sum(len(part) + 1 for part in lines[: line - 1]) + column - 1
    resume = position
    for span in scan_comments(text, language):
        if span.end < position:
            continue
        if span.start > resume and _WORD.search(text, resume, span.start):
            return True
        resume = max(resume, span.end)
    return _WORD.search(text, resume) is not None
