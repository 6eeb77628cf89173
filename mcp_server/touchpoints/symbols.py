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
import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Symbol", "associate", "tree_sitter_available"]

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


def associate(text: str, language: str, markers: list[tuple[int, int]]) -> list[Symbol | None]:
    """Return the symbol each marker annotates, or None, in the order of ``markers``.

    Args:
        text: Source text with LF line breaks.
        language: Language name from the scanner's table.
        markers: ``(line, column)`` of each marker, both 1-based.
    """
    if not markers:
        return []
    if language == "python":
        found = _python_symbols(text, markers)
        if found is not None:
            return found
    grammar = _TREE_SITTER_NAMES.get(language)
    if grammar is not None:
        parser = _parser(grammar)
        if parser is not None:
            return _tree_sitter_symbols(parser, text, language, markers)
    return _heuristic_symbols(text, markers)


# -- Python ------------------------------------------------------------------------------

_PYTHON_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _python_symbols(text: str, markers: list[tuple[int, int]]) -> list[Symbol | None] | None:
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
    regions: dict[tuple[int, int], ast.Module | None] = {}
    whole: list[ast.Module | None] = []
    if sum(end - start for start, end in set(spans)) > len(lines):
        # Regions of neighbouring markers overlap, so together they would parse more lines
        # than the file has. A file that does not parse as a whole still goes region by region.
        module = _parse_region(lines, 0, len(lines))
        whole.append(module)
        if module is not None:
            spans = [(0, len(lines))] * len(spans)
            regions[(0, len(lines))] = module
    symbols: list[Symbol | None] = []
    for (line, column), (start, end) in zip(markers, spans, strict=True):
        if (start, end) not in regions:
            regions[(start, end)] = _parse_region(lines, start, end)
        module = regions[(start, end)]
        if module is None:
            if not whole:
                whole.append(_parse_region(lines, 0, len(lines)))
            module, start = whole[0], 0
            if module is None:
                return None
        # The region's line numbers start at 1 on line start + 1. Shifting the marker and
        # the result is cheaper than ast.increment_lineno, which walks every node of the region.
        symbol = _python_symbol(module.body, (line - start, column - 1), [])
        if symbol is not None and start:
            symbol = replace(symbol, start_line=symbol.start_line + start, end_line=symbol.end_line + start)
        symbols.append(symbol)
    return symbols


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
    try:
        return ast.parse("\n".join(lines[start:end]))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _python_start(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        first = min(decorators, key=lambda d: (d.lineno, d.col_offset))
        # The "@" sits one column before the decorator expression.
        return first.lineno, max(0, first.col_offset - 1)
    return node.lineno, node.col_offset


def _python_symbol(body: list[Any], position: tuple[int, int], scope: list[ast.AST]) -> Symbol | None:
    resolved = _python_resolve(body, position, scope)
    return resolved[1] if resolved is not None else _python_describe(scope)


def _python_resolve(
    body: list[Any], position: tuple[int, int], scope: list[ast.AST]
) -> tuple[bool, Symbol | None] | None:
    """Return ``(True, symbol)`` once the marker's place in ``body`` is known, or None if it lies after ``body``."""
    for node in body:
        if isinstance(node, ast.excepthandler | ast.match_case):
            resolved = _python_resolve(node.body, position, scope)
            if resolved is not None:
                return resolved
            continue
        start = _python_start(node)
        end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
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
    parser: Any, text: str, language: str, markers: list[tuple[int, int]]
) -> list[Symbol | None]:
    data = text.encode("utf-8")
    tree = parser.parse(data)
    lines = text.split("\n")
    results: list[Symbol | None] = []
    for line, column in markers:
        # tree-sitter columns count bytes, the marker's column counts characters.
        prefix = lines[line - 1][: column - 1] if line <= len(lines) else ""
        point = (line - 1, len(prefix.encode("utf-8")))
        node = tree.root_node.descendant_for_point_range(point, point)
        results.append(_tree_sitter_symbol(node, data) if node is not None else None)
    return results


def _tree_sitter_symbol(node: Any, data: bytes) -> Symbol | None:
    # The point may fall on a part of the comment, such as a doc-comment body.
    ancestor = node.parent
    while ancestor is not None:
        if "comment" in ancestor.type:
            node = ancestor
        ancestor = ancestor.parent
    following = node.next_named_sibling
    while following is not None and "comment" in following.type:
        following = following.next_named_sibling
    if following is not None:
        declaration = _unwrap(following)
        if declaration is not None:
            return _describe(declaration, data)

    ancestor = node
    while ancestor is not None:
        if _kind(ancestor, data) is not None:
            return _describe(ancestor, data)
        ancestor = ancestor.parent
    return None


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
    return Symbol(".".join(reversed(qualified)), kind, node.start_point[0] + 1, node.end_point[0] + 1)


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
