"""Comment spans of source text, found in one linear pass driven by the language table.

The scanner owns lexing. It compiles each entry of :data:`.languages.LANGUAGES`
into one regular expression that finds the next token able to change state: a
comment, string or embedded-block opener, a JSX tag, or a brace inside embedded
code. It jumps from token to token with ``Pattern.search`` and finds closers with
``str.find`` or with possessive patterns that cannot backtrack. The run time is
therefore linear in the text, and an unterminated comment or string simply runs to
the end. A small state stack covers template literals with ``${...}``, JSX
element text and ``{...}`` expressions. :mod:`.extract` sits above and looks for
markers inside the spans reported here.
"""

from __future__ import annotations

import bisect
import functools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from .edits import common_prefix_length, common_suffix_length
from .languages import LANGUAGES, BlockComment, EmbeddedBlock, LineComment, StringLiteral

__all__ = ["CommentScan", "CommentSpan", "normalize_newlines", "rescan_comments", "scan_comments"]


class CommentSpan(NamedTuple):
    """Text of one comment, or of one documentation string, without its delimiters.

    Attributes:
        start: Offset of the first character after the opener.
        end: Offset of the closer, or of the line break or end of text that ends
            the comment when there is no closer.
        line: 1-based line of ``start``.
        column: 1-based column of ``start``, counted in characters.
    """

    start: int
    end: int
    line: int
    column: int


def normalize_newlines(text: str) -> str:
    """Replace CRLF and lone CR line breaks with LF.

    Every break stays one break and stays at the end of its line, so line and
    column numbers in the result are those of the original text.
    """
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def scan_comments(text: str, language: str, *, containing: str | None = None) -> Iterator[CommentSpan]:
    """Yield the comment spans of ``text`` in the order they appear.

    Python docstrings are yielded like comments. Strings, JSX text and other
    literals are not.

    Args:
        text: Source text whose line breaks are all LF; see :func:`normalize_newlines`.
        language: A key of :data:`.languages.LANGUAGES`.
        containing: When set, only spans whose text contains this substring are
            yielded. Line numbers are computed for those spans alone, which saves
            time on files with many comments.

    Raises:
        KeyError: ``language`` is not a key of ``LANGUAGES``.
    """
    scanner = _Scanner(text)
    scanner.run(language, 0, len(text))
    spans = scanner.spans if containing is None else _spans_containing(text, scanner.spans, containing)
    yield from _located(text, spans)


def _located(text: str, spans: list[tuple[int, int, int, int]]) -> Iterator[CommentSpan]:
    line = 1
    line_start = 0
    counted = 0
    for start, end, _, _ in spans:
        breaks = text.count("\n", counted, start)
        if breaks:
            line += breaks
            line_start = text.rfind("\n", counted, start) + 1
        counted = start
        yield CommentSpan(start, end, line, start - line_start + 1)


def _spans_containing(
    text: str, spans: list[tuple[int, int, int, int]], needle: str
) -> list[tuple[int, int, int, int]]:
    """Return the spans whose content contains ``needle``, found from its occurrences rather than span by span.

    Spans are disjoint and in text order, so the one that may hold an occurrence
    is the last that starts at or before it.
    """
    found: list[tuple[int, int, int, int]] = []
    last = -1
    occurrence = text.find(needle)
    while occurrence >= 0:
        index = bisect.bisect_right(spans, occurrence, key=_span_start) - 1
        if index > last and occurrence + len(needle) <= spans[index][1]:
            found.append(spans[index])
            last = index
        occurrence = text.find(needle, occurrence + 1)
    return found


_span_start = operator.itemgetter(0)


@dataclass(frozen=True, slots=True)
class CommentScan:
    """Comment spans of one text, with the scanner states :func:`rescan_comments` needs to redo only an edited part.

    Attributes:
        text: The scanned text, with LF line breaks.
        language: Language the text was scanned as.
        spans: ``(content start, content end, opener start, closer end)`` of each
            comment, in text order.
        checkpoints: ``(offset, span count, retry budget, reach)`` at offsets where
            the scanner stood in the file's own code with nothing pending, in
            increasing order. ``reach`` is the furthest offset read on the way there.
        budget: Retry budget left at the end of the text.
    """

    text: str
    language: str
    spans: list[tuple[int, int, int, int]]
    checkpoints: list[tuple[int, int, int, int]]
    budget: int

    def spans_containing(self, needle: str) -> list[CommentSpan]:
        """Return the comment spans whose content contains ``needle``, as :func:`scan_comments` yields them."""
        return list(_located(self.text, _spans_containing(self.text, self.spans, needle)))


def rescan_comments(text: str, language: str, previous: CommentScan | None = None) -> CommentScan:
    """Scan ``text`` for comments, reusing the scan of an earlier version of the same file.

    The result is the one a scan from scratch gives. With ``previous``, scanning
    resumes at the last checkpoint safely before the first changed character. It
    stops at the first checkpoint after the change where the new scan is in the
    same state as the old one, and the old spans after that point are shifted.

    Raises:
        KeyError: ``language`` is not a key of ``LANGUAGES``.
    """
    if previous is not None and previous.language == language and previous.text == text:
        return previous
    if previous is None or previous.language != language:
        scanner = _Scanner(text)
        checkpoints: list[tuple[int, int, int, int]] = []
        scanner.run_recording(language, 0, len(text), checkpoints)
        return CommentScan(text, language, scanner.spans, checkpoints, scanner.retry_budget)
    return _rescan(previous, text, language)


# Kinds of token in a compiled grammar.
_LINE, _BLOCK, _STRING, _EMBED, _JSX, _REGEX, _OPEN_BRACE, _CLOSE_BRACE = range(8)

# Frames on the state stack. Each frame is a list whose first item is its mode:
#   [_CODE, brace depth] is code. The bottom frame is the file's own code. A
#       frame above it is code inside ${...} or a JSX {...} and ends at its "}".
#   [_TEMPLATE, body pattern, multiline] is the inside of an interpolating string.
#   [_TAG, offset of "<", span count at "<", opened from code] is a JSX tag.
#   [_CHILDREN] is JSX element text, which is not code.
_CODE, _TEMPLATE, _TAG, _CHILDREN = range(4)

_Spec = LineComment | BlockComment | StringLiteral | EmbeddedBlock

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_GROUP_NAME = re.compile(r"\(\?P<\w+>")
_WHITESPACE = frozenset(" \t\n\f\v")

_JSX_NAME = re.compile(r"[\w$.:-]*")
# <T,> and <T extends U> open TypeScript type parameters, not JSX elements.
_TYPE_PARAMETERS = re.compile(r"\s*,|\s+extends\b")
_TAG_TEXT = re.compile(r"[\w\s.:$=-]*+")
_CHILD_TOKEN = re.compile(r"[<{]")
_EXPRESSION_CHARS = frozenset("(,=:[!&|?{};>")
_REGEX_CHARS = frozenset("(,=:[!&|?{};+-*%<>~^")
_EXPRESSION_KEYWORDS = frozenset(
    {"return", "yield", "await", "default", "case", "else", "do", "typeof", "void", "delete",
     "in", "of", "new", "throw", "instanceof"}
)
_REGEX_BODY = re.compile(r"(?:[^\\/\[\n]++|\\[^\n]|\[(?:[^\\\]\n]++|\\[^\n])*+\]?)*+(/)?")

_PYTHON_OPERATORS = frozenset("=([{,\\+-*/%&|^<>~@.")
_PYTHON_EXPRESSION_KEYWORDS = frozenset(
    {"return", "yield", "await", "in", "is", "not", "and", "or", "else", "if", "elif", "while",
     "lambda", "assert", "del", "raise"}
)
_DOCSTRING_PREFIXES = frozenset({"", "r", "u"})
_DEFINITION = re.compile(r"[ \t]*(?:async[ \t]+)?(?:def|class)\b")

_KEY_INDENT = re.compile(r"[ ]*(?:-[ ]+)*")
_ATTRIBUTE = re.compile(r"""(?<![\w-])(lang|type)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: int
    index: int
    opener: re.Pattern[str]
    spec: _Spec | None = None
    not_after: re.Pattern[str] | None = None
    after: str | None = None
    templated: bool = False
    # Whether handling needs the opener's own named groups, which the combined
    # token pattern drops: closer placeholders or a heredoc tag.
    needs_groups: bool = False
    # Body pattern of a string literal whose closer is fixed, compiled once.
    body: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class _Grammar:
    """Token patterns of one language.

    Each ``*_search`` pattern is a plain alternation of the openers, so that the
    regular expression engine can skip ahead by the set of first characters. The
    matching ``*_named`` pattern wraps each opener in a named group and is only
    matched at the offset found, to tell which rule applies.
    """

    by_group: dict[str, _Rule]
    rules: tuple[_Rule, ...]
    top_search: re.Pattern[str]
    top_named: re.Pattern[str]
    nested_search: re.Pattern[str]
    nested_named: re.Pattern[str]


@functools.cache
def _grammar(language: str) -> _Grammar:
    """Compile a language's syntax into token patterns, once per process."""
    syntax = LANGUAGES[language]
    specs: list[tuple[int, _Spec]] = [(_BLOCK, spec) for spec in syntax.block_comments]
    specs += [(_LINE, spec) for spec in syntax.line_comments]
    specs += [(_STRING, spec) for spec in syntax.strings]
    specs += [(_EMBED, spec) for spec in syntax.embedded]

    rules = [_rule(kind, index, spec) for index, (kind, spec) in enumerate(specs)]
    if syntax.jsx:
        rules.append(_Rule(_JSX, len(rules), re.compile("<")))
    if syntax.regex_literals:
        rules.append(_Rule(_REGEX, len(rules), re.compile("/")))
    braces = [
        _Rule(_OPEN_BRACE, len(rules), re.compile(r"\{")),
        _Rule(_CLOSE_BRACE, len(rules) + 1, re.compile(r"\}")),
    ]
    return _Grammar(
        by_group={f"r{rule.index}": rule for rule in rules + braces},
        rules=tuple(rules),
        top_search=_alternation(rules, named=False),
        top_named=_alternation(rules, named=True),
        nested_search=_alternation(rules + braces, named=False),
        nested_named=_alternation(rules + braces, named=True),
    )


def _rule(kind: int, index: int, spec: _Spec) -> _Rule:
    closer = getattr(spec, "closer", "")
    not_after = getattr(spec, "not_after", None)
    templated = bool(_PLACEHOLDER.search(closer))
    body = None
    if isinstance(spec, StringLiteral) and closer and not templated and not spec.closer_is_pattern:
        body = _body_pattern(closer, spec.escape, spec.doubled, spec.multiline, spec.interpolation)
    return _Rule(
        kind=kind,
        index=index,
        opener=re.compile(spec.opener, re.MULTILINE),
        spec=spec,
        not_after=None if not_after is None else re.compile(not_after),
        after=getattr(spec, "after", None),
        templated=templated,
        needs_groups=templated or getattr(spec, "body", "") == "heredoc",
        body=body,
    )


def _alternation(rules: list[_Rule], *, named: bool) -> re.Pattern[str]:
    # Each opener's own named groups are dropped because two openers may use the
    # same name. A rule whose closer needs them matches its own pattern again.
    branches = [_GROUP_NAME.sub("(?:", rule.opener.pattern) for rule in rules]
    if named:
        branches = [f"(?P<r{rule.index}>{branch})" for rule, branch in zip(rules, branches, strict=True)]
    return re.compile("|".join(branches), re.MULTILINE)


def _fill(template: str, match: re.Match[str], *, escape: bool) -> str:
    """Replace ``{group}`` placeholders in a closer with text the opener matched."""

    def value(placeholder: re.Match[str]) -> str:
        text = match.group(placeholder.group(1)) or ""
        return re.escape(text) if escape else text

    return _PLACEHOLDER.sub(value, template)


@functools.lru_cache(maxsize=512)
def _body_pattern(closer: str, escape: str, doubled: bool, multiline: bool, interpolation: str) -> re.Pattern[str]:
    """Compile a pattern that consumes a literal's body up to and including its closer.

    The pattern always matches. Group ``closer`` is set when the closer was found
    and group ``interpolation`` when embedded code starts. Otherwise the match stops
    at a line break that ends a single-line literal, or at the end of the text.
    Every repetition is possessive, so matching never backtracks.
    """
    stops = {closer[0]}
    if escape:
        stops.add(escape)
    if not multiline:
        stops.add("\n")
    if interpolation:
        stops.add(interpolation[0])

    units = ["[^" + "".join(re.escape(char) for char in sorted(stops)) + "]++"]
    if escape:
        units.append(re.escape(escape) + r"[\s\S]")
    if doubled:
        units.append(re.escape(closer * 2))
    if len(closer) > 1:
        units.append(f"{re.escape(closer[0])}(?!{re.escape(closer[1:])})")
    if interpolation and interpolation[0] != closer[0]:
        units.append(f"{re.escape(interpolation[0])}(?!{re.escape(interpolation[1:])})")

    tail = f"(?P<closer>{re.escape(closer)})"
    if interpolation:
        tail += f"|(?P<interpolation>{re.escape(interpolation)})"
    return re.compile(f"(?:{'|'.join(units)})*+(?:{tail})?")


@functools.lru_cache(maxsize=256)
def _line_pattern(source: str) -> re.Pattern[str]:
    return re.compile(source, re.MULTILINE)


@functools.lru_cache(maxsize=64)
def _caseless(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text), re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _nesting_pattern(opener: str, closer: str) -> re.Pattern[str]:
    return re.compile(f"(?P<close>{re.escape(closer)})|{_GROUP_NAME.sub('(?:', opener)}", re.MULTILINE)


@functools.lru_cache(maxsize=64)
def _dedent_pattern(indent: int) -> re.Pattern[str]:
    """Compile a pattern for the first non-blank line indented ``indent`` spaces or less."""
    return re.compile(rf"^ {{0,{indent}}}+[^ \n]", re.MULTILINE)


def _match_end(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    """Return where ``pattern``, which also matches the empty string, stops matching at ``pos``."""
    match = pattern.match(text, pos, end)
    return pos if match is None else match.end()


def _word_ending_at(text: str, last: int) -> str:
    """Return the identifier that ends at ``last``, or "" when it is longer than any keyword."""
    start = last
    while start > 0 and start > last - 12 and (text[start - 1].isalnum() or text[start - 1] in "_$"):
        start -= 1
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_$"):
        return ""
    return text[start : last + 1]


class _Scanner:
    """State of one scan: the text, the spans found so far and a pending heredoc body."""

    __slots__ = ("horizon", "pending", "retry_budget", "spans", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # (content start, content end, opener start, closer end) for each comment.
        self.spans: list[tuple[int, int, int, int]] = []
        # Heredoc body still ahead, as the offset of the line break after its
        # opener and the offset where the body ends. Code resumes at the body's
        # end once the rest of the opener's line is scanned.
        self.pending: tuple[int, int] | None = None
        # Characters that may still be read twice after a "<" or "/" turned out
        # not to start JSX or a regular expression. Once spent, both guesses are
        # off for the rest of the text, which keeps crafted input linear.
        self.retry_budget = len(text)
        # Furthest offset read by a step that then resumed before it, such as a "<"
        # that turned out not to open a JSX tag. Steps that resume at the end of
        # what they read, plus a short lookahead, do not move it.
        self.horizon = 0

    def run(self, language: str, pos: int, end: int) -> None:
        """Scan ``text[pos:end]`` as code of ``language``, appending to ``spans``."""
        grammar = _grammar(language)
        stack: list[list[Any]] = [[_CODE, 0]]
        while pos < end:
            mode = stack[-1][0]
            if mode == _CODE:
                pos = self._code(grammar, stack, pos, end)
            elif mode == _TEMPLATE:
                pos = self._template(stack, pos, end)
            elif mode == _TAG:
                pos = self._tag(stack, pos, end)
            else:
                pos = self._children(stack, pos, end)

    def run_recording(
        self,
        language: str,
        pos: int,
        end: int,
        checkpoints: list[tuple[int, int, int, int]],
        converged: _Convergence | None = None,
    ) -> int | None:
        """Scan like :meth:`run`, appending a checkpoint about every :data:`_CHECKPOINT_SPACING` characters.

        A checkpoint is taken only in the file's own code with nothing pending,
        where the scanner's whole state is its offset, its span count and its
        retry budget. From ``converged.start`` on, ``converged`` is asked at every
        such offset whether an earlier scan continues identically from there.

        Returns:
            The offset where ``converged`` accepted, or None when the scan reached ``end``.
        """
        grammar = _grammar(language)
        stack: list[list[Any]] = [[_CODE, 0]]
        record_at = pos
        check_at = end if converged is None else converged.start
        watch = min(record_at, check_at)
        while pos < end:
            mode = stack[-1][0]
            if mode == _CODE:
                if pos >= watch and len(stack) == 1 and self.pending is None:
                    if pos >= check_at and converged is not None and converged.accepts(self, pos):
                        return pos
                    if pos >= record_at:
                        checkpoints.append((pos, len(self.spans), self.retry_budget, max(pos, self.horizon)))
                        record_at = pos + _CHECKPOINT_SPACING
                    watch = pos + 1 if pos >= check_at else min(record_at, check_at)
                pos = self._code(grammar, stack, pos, end)
            elif mode == _TEMPLATE:
                pos = self._template(stack, pos, end)
            elif mode == _TAG:
                pos = self._tag(stack, pos, end)
            else:
                pos = self._children(stack, pos, end)
        return None

    def _code(self, grammar: _Grammar, stack: list[list[Any]], pos: int, end: int) -> int:
        nested = len(stack) > 1
        pending = self.pending
        limit = end if pending is None else min(end, pending[0])
        found = (grammar.nested_search if nested else grammar.top_search).search(self.text, pos, limit)
        if found is None:
            if pending is None:
                return end
            self.pending = None
            return pending[1]

        start = found.start()
        match = (grammar.nested_named if nested else grammar.top_named).match(self.text, start, limit)
        assert match is not None
        rule = grammar.by_group[match.lastgroup or ""]
        if (rule.not_after is not None or rule.after is not None) and not self._allowed(rule, start):
            fallback, rule = self._fallback(grammar, rule, start, limit)
            if fallback is None or rule is None:
                self.horizon = max(self.horizon, match.end())
                return start + 1
            match = fallback
        if rule.kind == _LINE and pending is None:
            # The same steps as _line_comment, inlined. Line comments are the most frequent
            # token in most files, and the two calls took 15 % of the scan of a Python file
            # with a comment on every line.
            body = match.end()
            stop = self.text.find("\n", body, end)
            if stop < 0:
                stop = end
            self.spans.append((body, stop, start, stop))
            return stop
        new_pos = self._dispatch(rule, match, stack, end)
        if pending is not None and self.pending is pending and new_pos > pending[0]:
            # A literal that crosses the line break means the opener was probably
            # not a heredoc, so its body is not skipped.
            self.pending = None
        return new_pos

    def _allowed(self, rule: _Rule, start: int) -> bool:
        text = self.text
        if rule.not_after is not None and start > 0 and rule.not_after.match(text, start - 1):
            return False
        if rule.after is not None:
            before = start - 1
            while before >= 0 and text[before] in " \t":
                before -= 1
            if before >= 0 and text[before] != "\n" and text[before] not in rule.after:
                return False
        return True

    def _fallback(
        self, grammar: _Grammar, failed: _Rule, start: int, limit: int
    ) -> tuple[re.Match[str] | None, _Rule | None]:
        """Try the rules after ``failed`` at the same offset, as the alternation would have."""
        for rule in grammar.rules[failed.index + 1 :]:
            match = rule.opener.match(self.text, start, limit)
            if match is not None and self._allowed(rule, start):
                return match, rule
        return None, None

    def _dispatch(self, rule: _Rule, match: re.Match[str], stack: list[list[Any]], end: int) -> int:
        if rule.needs_groups and match.re is not rule.opener:
            match = rule.opener.match(self.text, match.start(), end) or match
        kind = rule.kind
        if kind == _LINE:
            return self._line_comment(match, end)
        if kind == _BLOCK:
            return self._block_comment(rule, match, end)
        if kind == _STRING:
            return self._string(rule, match, stack, end)
        if kind == _EMBED:
            return self._embedded(rule, match, end)
        if kind == _JSX:
            return self._jsx_start(stack, match.start(), end)
        if kind == _REGEX:
            return self._regex_literal(match.start(), end)

        frame = stack[-1]
        if kind == _OPEN_BRACE:
            frame[1] += 1
        elif frame[1]:
            frame[1] -= 1
        else:
            stack.pop()
        return match.end()

    def _line_comment(self, match: re.Match[str], end: int) -> int:
        body = match.end()
        stop = self.text.find("\n", body, end)
        if stop < 0:
            stop = end
        self.spans.append((body, stop, match.start(), stop))
        return stop

    def _block_comment(self, rule: _Rule, match: re.Match[str], end: int) -> int:
        spec = rule.spec
        assert isinstance(spec, BlockComment)
        body = match.end()
        closer = _fill(spec.closer, match, escape=False) if rule.templated else spec.closer
        if spec.nests:
            stop, after = self._nested_end(spec.opener, closer, body, end)
        else:
            stop = self.text.find(closer, body, end)
            after = end if stop < 0 else stop + len(closer)
            stop = end if stop < 0 else stop
        self.spans.append((body, stop, match.start(), after))
        return after

    def _nested_end(self, opener: str, closer: str, body: int, end: int) -> tuple[int, int]:
        """Return where a nesting comment's closer starts and ends, or ``end`` twice."""
        depth = 1
        for token in _nesting_pattern(opener, closer).finditer(self.text, body, end):
            if token.group("close") is None:
                depth += 1
                continue
            depth -= 1
            if depth == 0:
                return token.start(), token.end()
        return end, end

    def _string(self, rule: _Rule, match: re.Match[str], stack: list[list[Any]], end: int) -> int:
        spec = rule.spec
        assert isinstance(spec, StringLiteral)
        if spec.body != "inline":
            return self._deferred_body(spec, match, end)

        body = match.end()
        if not spec.closer:
            return body
        if spec.closer_is_pattern:
            closer = _fill(spec.closer, match, escape=True) if rule.templated else spec.closer
            found = _line_pattern(closer).search(self.text, body, end)
            return end if found is None else found.end()

        pattern = rule.body
        if pattern is None:
            return self._delimited_end(_fill(spec.closer, match, escape=False), spec.multiline, body, end)
        if spec.interpolation:
            stack.append([_TEMPLATE, pattern, spec.multiline])
            return body

        literal = pattern.match(self.text, body, end)
        assert literal is not None
        stop = self._literal_end(literal, spec.multiline, end)
        if spec.docstring and self._is_docstring(match.start()):
            closed = literal.group("closer") is not None
            # The empty opener-to-closer range makes _previous_code stop at the
            # docstring, as at any string, instead of looking back across it.
            self.spans.append((body, literal.start("closer") if closed else stop, stop, stop))
        return stop

    def _delimited_end(self, closer: str, multiline: bool, body: int, end: int) -> int:
        """Return where code resumes after a literal whose closer came from its opener.

        Such literals (raw strings, dollar quotes, long brackets) have no escapes,
        so ``str.find`` is enough and no pattern is compiled per distinct closer.
        """
        text = self.text
        stop = text.find(closer, body, end)
        if not multiline:
            line_end = text.find("\n", body, end if stop < 0 else stop)
            if line_end >= 0:
                return line_end
        return end if stop < 0 else stop + len(closer)

    def _literal_end(self, literal: re.Match[str], multiline: bool, end: int) -> int:
        """Return where code resumes after a literal matched by a body pattern."""
        if literal.group("closer") is not None:
            return literal.end()
        stop = literal.end()
        if not multiline and stop < end and self.text[stop] == "\n":
            return stop
        return end

    def _template(self, stack: list[list[Any]], pos: int, end: int) -> int:
        _, pattern, multiline = stack[-1]
        literal = pattern.match(self.text, pos, end)
        if literal.group("interpolation") is not None:
            stack.append([_CODE, 0])
            return literal.end()
        stack.pop()
        return self._literal_end(literal, multiline, end)

    def _deferred_body(self, spec: StringLiteral, match: re.Match[str], end: int) -> int:
        """Register a heredoc or YAML block scalar whose body starts on the next line.

        The rest of the opener's line is still code, so only the body's extent is
        recorded here. A second heredoc on the same line starts after the first.
        """
        text = self.text
        if self.pending is not None and self.pending[0] >= match.end():
            line_end, body = self.pending
        else:
            line_end = text.find("\n", match.end(), end)
            if line_end < 0:
                return match.end()
            body = line_end + 1

        if spec.body == "heredoc":
            stop = self._terminator_end(spec, match.group("tag"), body, end)
        else:
            line_start = text.rfind("\n", 0, match.start()) + 1
            indent = _KEY_INDENT.match(text, line_start).end() - line_start
            found = _dedent_pattern(indent).search(text, body, end)
            stop = end if found is None else found.start()
        self.pending = (line_end, max(stop, body))
        return match.end()

    def _terminator_end(self, spec: StringLiteral, tag: str, body: int, end: int) -> int:
        """Return the end of the first line from ``body`` that terminates the heredoc ``tag``."""
        terminator = _line_pattern(spec.closer)
        found = terminator.search(self.text, body, end)
        while found is not None and found.group("tag") != tag:
            found = terminator.search(self.text, found.end(), end)
        return end if found is None else found.end()

    def _embedded(self, rule: _Rule, match: re.Match[str], end: int) -> int:
        spec = rule.spec
        assert isinstance(spec, EmbeddedBlock)
        body = match.end()
        found = _caseless(spec.closer).search(self.text, body, end)
        stop = end if found is None else found.start()
        language = _embedded_language(spec, match.group())
        if language is not None:
            pending = self.pending
            self.pending = None
            self.run(language, body, stop)
            self.pending = pending
        return end if found is None else found.end()

    def _jsx_start(self, stack: list[list[Any]], lt: int, end: int) -> int:
        text = self.text
        following = text[lt + 1 : lt + 2]
        if following != ">" and not (following.isalpha() or following in ("_", "$")):
            return lt + 1
        if self.retry_budget <= 0:
            return lt + 1
        if not self._expects_operand(lt, _EXPRESSION_CHARS):
            return lt + 1
        if following == ">":
            stack.append([_CHILDREN])
            return lt + 2

        name_end = _match_end(_JSX_NAME, text, lt + 1, end)
        parameters = _TYPE_PARAMETERS.match(text, name_end, end)
        if parameters is not None:
            self.horizon = max(self.horizon, parameters.end() + 1)
            return lt + 1
        stack.append([_TAG, lt, len(self.spans), True])
        return name_end

    def _tag(self, stack: list[list[Any]], pos: int, end: int) -> int:
        text = self.text
        at = _match_end(_TAG_TEXT, text, pos, end)
        if at >= end:
            return end
        char = text[at]
        frame = stack[-1]
        if char in "\"'":
            value = _body_pattern(char, "", False, True, "").match(text, at + 1, end)
            return end if value is None or value.group("closer") is None else value.end()
        if char == "{":
            stack.append([_CODE, 0])
            return at + 1
        if char == ">":
            # <T>(x: T) => x in a .tsx file is a generic arrow function.
            # NOTE: so is <p>(text)</p> right after an operator, whose text is then read as code.
            if frame[3] and text.startswith("(", at + 1):
                return self._undo_tag(stack, at)
            stack[-1] = [_CHILDREN]
            return at + 1
        if char == "/" and text.startswith(">", at + 1):
            stack.pop()
            return at + 2
        if frame[3]:
            return self._undo_tag(stack, at)
        return at + 1

    def _undo_tag(self, stack: list[list[Any]], at: int) -> int:
        """Read a "<" that looked like a JSX tag as an operator, dropping what was found since."""
        _, lt, span_count, _ = stack.pop()
        del self.spans[span_count:]
        self.retry_budget -= at - lt
        self.horizon = max(self.horizon, at + 2)
        return lt + 1

    def _children(self, stack: list[list[Any]], pos: int, end: int) -> int:
        text = self.text
        found = _CHILD_TOKEN.search(text, pos, end)
        if found is None:
            return end
        at = found.start()
        if text[at] == "{":
            stack.append([_CODE, 0])
            return at + 1

        following = text[at + 1 : at + 2]
        if following == "/":
            close = text.find(">", at + 2, end)
            stack.pop()
            return end if close < 0 else close + 1
        if following == ">":
            stack.append([_CHILDREN])
            return at + 2
        if following.isalpha() or following in ("_", "$"):
            stack.append([_TAG, at, len(self.spans), False])
            return _match_end(_JSX_NAME, text, at + 1, end)
        return at + 1

    def _regex_literal(self, slash: int, end: int) -> int:
        if self.retry_budget <= 0 or not self._expects_operand(slash, _REGEX_CHARS):
            return slash + 1
        literal = _REGEX_BODY.match(self.text, slash + 1, end)
        assert literal is not None  # the pattern also matches the empty string
        if literal.group(1) is None:
            self.retry_budget -= literal.end() - slash
            self.horizon = max(self.horizon, literal.end() + 1)
            return slash + 1
        return literal.end()

    def _expects_operand(self, pos: int, operators: frozenset[str]) -> bool:
        """Tell whether an operand, not an operator, is expected at ``pos``."""
        before = self._previous_code(pos)
        if before < 0:
            return True
        char = self.text[before]
        if char in operators:
            return True
        if char.isalnum() or char in "_$":
            return _word_ending_at(self.text, before) in _EXPRESSION_KEYWORDS
        return False

    def _is_docstring(self, quote: int) -> bool:
        """Tell whether the triple-quoted string at ``quote`` starts a Python statement.

        The rule is lexical. The string, with an optional r or u prefix, must be
        the first thing on its line, or follow the colon of a one-line ``def``
        or ``class`` header. The code before it must not end with an operator,
        an open bracket or a keyword that expects an expression.
        """
        # NOTE: brackets are not tracked, so a string that starts a line inside
        # f(a,\n  b\n  """...""") after a name still counts as a docstring.
        text = self.text
        start = quote
        while start > 0 and start > quote - 2 and text[start - 1].isalpha():
            start -= 1
        if text[start:quote].lower() not in _DOCSTRING_PREFIXES:
            return False
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            return False

        before = start - 1
        while before >= 0 and text[before] in " \t":
            before -= 1
        if before >= 0 and text[before] != "\n":
            line_start = text.rfind("\n", 0, before) + 1
            return text[before] == ":" and _DEFINITION.match(text, line_start) is not None

        before = self._previous_code(start)
        if before < 0:
            return True
        char = text[before]
        if char.isalnum() or char == "_":
            return _word_ending_at(text, before) not in _PYTHON_EXPRESSION_KEYWORDS
        return char not in _PYTHON_OPERATORS

    def _previous_code(self, pos: int) -> int:
        """Return the offset of the last character before ``pos`` that is neither blank nor in a comment, or -1."""
        return _code_before(self.text, self.spans, len(self.spans), pos)


def _code_before(text: str, spans: list[tuple[int, int, int, int]], count: int, pos: int) -> int:
    """Return the offset of the last character before ``pos`` that is neither blank nor in one of ``spans[:count]``."""
    index = count - 1
    before = pos - 1
    while before >= 0:
        if text[before] in _WHITESPACE:
            before -= 1
            continue
        while index >= 0 and spans[index][2] > before:
            index -= 1
        if index >= 0 and spans[index][3] > before:
            before = spans[index][2] - 1
            continue
        return before
    return -1


def _lookback(text: str, spans: list[tuple[int, int, int, int]], count: int, pos: int) -> tuple[str, str] | None:
    """Return what a look back from ``pos`` can tell the scanner: the last code character and the word it ends."""
    before = _code_before(text, spans, count, pos)
    return None if before < 0 else (text[before], _word_ending_at(text, before))


def _rescan(previous: CommentScan, text: str, language: str) -> CommentScan:
    old = previous.text
    prefix = common_prefix_length(old, text)
    suffix = common_suffix_length(old, text, min(len(old), len(text)) - prefix)
    shift = len(text) - len(old)

    scanner = _Scanner(text)
    checkpoints: list[tuple[int, int, int, int]] = []
    pos = 0
    resume = _resume_index(previous, prefix, language)
    if resume >= 0:
        pos, count, budget, reach = previous.checkpoints[resume]
        scanner.spans = previous.spans[:count]
        scanner.retry_budget = budget + shift
        scanner.horizon = reach
        # The retry budget starts at the text's length, so before the change it differs
        # by the change in length.
        checkpoints = [
            (offset, spans_before, left + shift, limit)
            for offset, spans_before, left, limit in previous.checkpoints[:resume]
        ]

    # Convergence is tried only on lines that start after the change, so that
    # looking back along the current line reads unchanged text.
    line_end = text.find("\n", len(text) - suffix)
    converged = None if line_end < 0 else _Convergence(previous, line_end + 1, shift)
    if scanner.run_recording(language, pos, len(text), checkpoints, converged) is None or converged is None:
        return CommentScan(text, language, scanner.spans, checkpoints, scanner.retry_budget)
    return converged.join(scanner, checkpoints, language)


def _resume_index(previous: CommentScan, prefix: int, language: str) -> int:
    """Return the index of the last checkpoint whose state was reached without reading past ``prefix``, or -1.

    Besides what :attr:`_Scanner.horizon` records, a step reads at most to the end
    of its line plus a short lookahead. An embedded block's opener may read up to
    4,000 characters ahead, across lines.
    """
    lookahead = _EMBEDDED_LOOKAHEAD if LANGUAGES[language].embedded else _LOOKAHEAD
    checkpoints = previous.checkpoints
    index = bisect.bisect_right(checkpoints, prefix - lookahead, key=_checkpoint_reach) - 1
    while index >= 0 and previous.text.find("\n", checkpoints[index][3], prefix) < 0:
        index -= 1
    return index


_checkpoint_offset = operator.itemgetter(0)
_checkpoint_reach = operator.itemgetter(3)
_CHECKPOINT_SPACING = 512
"""Characters of text between two checkpoints. A rescan redoes about this much on each side of an edit."""
_LOOKAHEAD = 64
_EMBEDDED_LOOKAHEAD = 4096 + _LOOKAHEAD


class _Convergence:
    """Check of where a rescan may stop and reuse the previous scan's spans, shifted by ``shift``."""

    __slots__ = ("index", "previous", "shift", "start")

    def __init__(self, previous: CommentScan, start: int, shift: int) -> None:
        self.previous = previous
        self.start = start
        self.shift = shift
        self.index = -1

    def accepts(self, scanner: _Scanner, pos: int) -> bool:
        """Tell whether the previous scan, at its checkpoint for ``pos``, continues as ``scanner`` would.

        Both scanners are in the file's own code with nothing pending and read the
        same text from here. What remains to compare is what a look back past ``pos``
        finds, and whether every retry-budget check ahead passes in both.
        """
        previous = self.previous
        old_pos = pos - self.shift
        checkpoints = previous.checkpoints
        index = bisect.bisect_left(checkpoints, old_pos, key=_checkpoint_offset)
        if index == len(checkpoints) or checkpoints[index][0] != old_pos:
            return False
        _, count, budget, _ = checkpoints[index]
        spent_after = budget - previous.budget
        if previous.budget <= 0 or scanner.retry_budget - spent_after <= 0:
            return False
        old_lookback = _lookback(previous.text, previous.spans, count, old_pos)
        if old_lookback != _lookback(scanner.text, scanner.spans, len(scanner.spans), pos):
            return False
        self.index = index
        return True

    def join(self, scanner: _Scanner, checkpoints: list[tuple[int, int, int, int]], language: str) -> CommentScan:
        """Return the rescan's result: its own spans and checkpoints, then the previous scan's after the accepted one."""
        previous = self.previous
        _, count, budget, _ = previous.checkpoints[self.index]
        shift = self.shift
        span_offset = len(scanner.spans) - count
        budget_change = scanner.retry_budget - budget
        horizon = scanner.horizon
        spans = scanner.spans
        spans += [(a + shift, b + shift, c + shift, d + shift) for a, b, c, d in previous.spans[count:]]
        checkpoints += [
            (offset + shift, spans_before + span_offset, left + budget_change, max(reach + shift, horizon))
            for offset, spans_before, left, reach in previous.checkpoints[self.index :]
        ]
        return CommentScan(scanner.text, language, spans, checkpoints, previous.budget + budget_change)


def _embedded_language(spec: EmbeddedBlock, tag: str) -> str | None:
    """Return the language of an embedded block from its start tag, or None to skip it."""
    values = {name.lower(): value.lower() for name, value in _ATTRIBUTE.findall(tag)}
    value = values.get("lang", values.get("type"))
    if value is None:
        return spec.language
    return dict(spec.by_attribute).get(value)
