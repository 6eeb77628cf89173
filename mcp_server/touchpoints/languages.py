"""Lexical syntax of every language the touchpoint scanner reads, and file-name mapping.

This module is data only: one :class:`LanguageSyntax` per language, listing where
comments and string literals start and end, plus the tables that map file
extensions, well-known file names and notebook kernel names to a language.
:mod:`.scanner` compiles these entries into token patterns and walks the text.
Openers are regular expressions. Closers are literal text unless
``closer_is_pattern`` is set or the literal is a heredoc. They may contain
``{group}`` placeholders, filled from the opener's named groups, such as the
``#`` count of a Rust raw string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "EXTENSIONS",
    "FILENAMES",
    "KERNEL_LANGUAGES",
    "LANGUAGES",
    "NOTEBOOK",
    "BlockComment",
    "EmbeddedBlock",
    "LanguageSyntax",
    "LineComment",
    "StringLiteral",
    "language_for_path",
]

NOTEBOOK = "jupyter"
"""Language name of Jupyter notebooks, which are JSON and have no entry in ``LANGUAGES``."""


@dataclass(frozen=True, slots=True)
class LineComment:
    """A comment that runs from its opener to the end of the line.

    Attributes:
        opener: Regular expression for the opener.
        not_after: Regular expression for one character. The opener is ignored
            when the character right before it matches, so ``\\S`` means the
            opener must follow whitespace or start the text.
        after: When set, the opener only counts if the last non-blank character
            before it on its line is one of these characters. ``""`` means the
            opener must be the first non-blank text on its line.
    """

    opener: str
    not_after: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class BlockComment:
    """A comment delimited by an opener and a closer, possibly over many lines.

    Attributes:
        opener: Regular expression for the opener.
        closer: Closing text, with optional ``{group}`` placeholders.
        nests: Whether an opener inside the comment needs its own closer.
        not_after: As in :class:`LineComment`.
        after: As in :class:`LineComment`.
    """

    opener: str
    closer: str
    nests: bool = False
    not_after: str | None = None
    after: str | None = None


Body = Literal["inline", "heredoc", "indented"]


@dataclass(frozen=True, slots=True)
class StringLiteral:
    """A string, character or other literal whose content is never a comment.

    Attributes:
        opener: Regular expression for the opener.
        closer: Closing text with optional ``{group}`` placeholders. ``""``
            means the opener matches the whole literal, as for Rust ``'x'``.
            A closer with placeholders is searched as plain text, so such a
            literal can have no escape character.
        escape: Character that makes the next character literal, ``""`` if none.
        doubled: Whether a doubled closer stands for one literal closer, as
            ``''`` does in SQL.
        multiline: Whether the literal may contain a bare line break. A
            single-line literal left open ends at the line break, which keeps
            one stray quote from hiding the rest of the file.
        interpolation: Text that starts embedded code, such as ``${``, which
            runs to the matching ``}`` and may contain strings and comments.
        docstring: Whether the literal counts as documentation when it starts
            a statement, as a Python docstring does. Documentation is scanned
            like a comment.
        closer_is_pattern: Whether ``closer`` is a regular expression, matched
            in multi-line mode.
        body: ``"inline"`` when the content follows the opener. ``"heredoc"``
            when it starts on the next line and ends with a line that
            ``closer``, a pattern, matches with a ``tag`` group equal to the
            opener's ``tag`` group. ``"indented"`` when it starts on the next
            line and ends before the first non-blank line indented no deeper
            than the key that owns it (YAML block scalars).
        not_after: As in :class:`LineComment`.
        after: As in :class:`LineComment`.
    """

    opener: str
    closer: str
    escape: str = "\\"
    doubled: bool = False
    multiline: bool = True
    interpolation: str = ""
    docstring: bool = False
    closer_is_pattern: bool = False
    body: Body = "inline"
    not_after: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedBlock:
    """A block of another language inside a markup file, such as ``<script>``.

    Attributes:
        opener: Regular expression for the whole start tag.
        closer: Text that ends the block, matched case-insensitively.
        language: Language of the block when its tag has no ``lang`` or ``type``
            attribute.
        by_attribute: Language for each ``lang`` or ``type`` value. A block
            whose value is missing from this table is not scanned.
    """

    opener: str
    closer: str
    language: str
    by_attribute: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class LanguageSyntax:
    """Everything the scanner needs to tell comments from code and strings in one language.

    Attributes:
        name: Language name reported with each touchpoint.
        line_comments: Comments that end at the line break.
        block_comments: Comments with a closer.
        strings: Literals whose content is not scanned, longest opener first
            where two openers share a prefix.
        embedded: Blocks scanned with another language.
        jsx: Whether ``<Tag>`` after an operator starts JSX, whose text is not code.
        regex_literals: Whether ``/`` after an operator starts a regular expression literal.
    """

    name: str
    line_comments: tuple[LineComment, ...] = ()
    block_comments: tuple[BlockComment, ...] = ()
    strings: tuple[StringLiteral, ...] = ()
    embedded: tuple[EmbeddedBlock, ...] = ()
    jsx: bool = False
    regex_literals: bool = False


def _quoted(quote: str, **options: Any) -> StringLiteral:
    """Build a literal that opens and closes with the same ``quote`` text."""
    return StringLiteral(re.escape(quote), quote, **options)


# Shared pieces. Single-line is the default for quotes in C-like languages because
# a bare line break inside them is a syntax error there.
# NOTE: Python f-string fields, Swift \(...), C# $"{...}" and shell $(...) are read
# as plain string text, so a quote nested inside one ends the literal early.
_SLASH_SLASH = LineComment("//")
_HASH = LineComment("#")
_C_BLOCK = BlockComment(r"/\*", "*/")
_C_BLOCK_NESTED = BlockComment(r"/\*", "*/", nests=True)
_HTML_COMMENT = BlockComment("<!--", "-->")
_DOUBLE = _quoted('"', multiline=False)
_SINGLE = _quoted("'", multiline=False)
# A quote right after a letter or digit is a C++14 digit separator (1'000) or a
# prefix such as L'x', and is not read as the start of a character literal.
_CHAR = _quoted("'", multiline=False, not_after=r"\w")
_DOUBLE_MULTILINE = _quoted('"', multiline=True)
_SINGLE_MULTILINE = _quoted("'", multiline=True)
# A character literal matched whole, so that a lone quote (a Rust lifetime, a
# Haskell or Scala identifier prime) does not open a string.
_CHAR_WHOLE = StringLiteral(r"'(?:[^\\'\n]|\\[^\n][^'\n]{0,8})'", "")

_SCRIPT_TYPES = (
    ("module", "javascript"),
    ("text/javascript", "javascript"),
    ("application/javascript", "javascript"),
    ("javascript", "javascript"),
    ("js", "javascript"),
    ("jsx", "jsx"),
    ("ts", "typescript"),
    ("typescript", "typescript"),
    ("text/typescript", "typescript"),
    ("tsx", "tsx"),
    ("application/json", "json"),
    ("application/ld+json", "json"),
    ("importmap", "json"),
    ("text/html", "html"),
    ("text/x-template", "html"),
)
_STYLE_TYPES = (
    ("css", "css"),
    ("text/css", "css"),
    ("postcss", "css"),
    ("scss", "scss"),
    ("less", "less"),
)
# The opener's attribute run is bounded so that an unclosed "<script" cannot make
# every later match scan to the end of the file.
_SCRIPT = EmbeddedBlock(r"<(?i:script\b[^>]{0,4000}>)", "</script", "javascript", _SCRIPT_TYPES)
_STYLE = EmbeddedBlock(r"<(?i:style\b[^>]{0,4000}>)", "</style", "css", _STYLE_TYPES)

_PYTHON = LanguageSyntax(
    name="python",
    line_comments=(_HASH,),
    strings=(
        _quoted('"""', docstring=True),
        _quoted("'''", docstring=True),
        _DOUBLE,
        _SINGLE,
    ),
)

_JAVASCRIPT = LanguageSyntax(
    name="javascript",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_DOUBLE, _SINGLE, _quoted("`", interpolation="${")),
    jsx=True,
    regex_literals=True,
)
# TypeScript proper has no JSX, because <Type>value is a type assertion there.
_TYPESCRIPT = replace(_JAVASCRIPT, name="typescript", jsx=False)

_C = LanguageSyntax(
    name="c",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_DOUBLE, _CHAR),
)

_CPP = replace(
    _C,
    name="cpp",
    strings=(
        StringLiteral(r'R"(?P<delimiter>[^()\\\s"]{0,16})\(', '){delimiter}"', escape=""),
        _DOUBLE,
        _CHAR,
    ),
)

_CSHARP = LanguageSyntax(
    name="csharp",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(
        StringLiteral('"""(?P<quotes>"*)', '"""{quotes}', escape=""),
        StringLiteral(r'@\$?"', '"', escape="", doubled=True),
        _DOUBLE,
        _CHAR,
    ),
)

_GO = LanguageSyntax(
    name="go",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_DOUBLE, _quoted("`", escape=""), _SINGLE),
)

_RUST = LanguageSyntax(
    name="rust",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK_NESTED,),
    strings=(
        StringLiteral(r'r(?P<hashes>#*)"', '"{hashes}', escape=""),
        _DOUBLE_MULTILINE,
        _CHAR_WHOLE,
    ),
)

_JAVA = LanguageSyntax(
    name="java",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_quoted('"""'), _DOUBLE, _CHAR),
)

_KOTLIN = LanguageSyntax(
    name="kotlin",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK_NESTED,),
    strings=(
        _quoted('"""', escape="", interpolation="${"),
        _quoted('"', multiline=False, interpolation="${"),
        _CHAR,
    ),
)

_SWIFT = LanguageSyntax(
    name="swift",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK_NESTED,),
    strings=(
        StringLiteral('#(?P<hashes>#*)"""', '"""#{hashes}', escape=""),
        StringLiteral('#(?P<hashes>#*)"', '"#{hashes}', escape="", multiline=False),
        _quoted('"""'),
        _DOUBLE,
    ),
)

_SCALA = LanguageSyntax(
    name="scala",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK_NESTED,),
    strings=(_quoted('"""', escape=""), _DOUBLE, _CHAR_WHOLE),
)

_DART = LanguageSyntax(
    name="dart",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK_NESTED,),
    strings=(
        StringLiteral(r"r(?P<quote>'''|\"\"\")", "{quote}", escape=""),
        StringLiteral(r"r(?P<quote>['\"])", "{quote}", escape="", multiline=False),
        _quoted("'''", interpolation="${"),
        _quoted('"""', interpolation="${"),
        _quoted("'", multiline=False, interpolation="${"),
        _quoted('"', multiline=False, interpolation="${"),
    ),
)

_GROOVY = LanguageSyntax(
    name="groovy",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(
        _quoted("'''"),
        _quoted('"""', interpolation="${"),
        _SINGLE,
        _quoted('"', multiline=False, interpolation="${"),
    ),
)

_PROTOBUF = LanguageSyntax(
    name="protobuf",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_DOUBLE, _SINGLE),
)

_JSON = LanguageSyntax(
    name="json",
    line_comments=(_SLASH_SLASH,),
    block_comments=(_C_BLOCK,),
    strings=(_DOUBLE, _SINGLE),
)

# NOTE: Ruby %q{...}-style literals and /regex/ literals are read as code.
_RUBY = LanguageSyntax(
    name="ruby",
    line_comments=(_HASH,),
    block_comments=(BlockComment(r"=begin\b", "\n=end", after=""),),
    strings=(
        # <<~TAG and <<-TAG allow an indented terminator. A bare <<TAG needs an
        # upper-case tag, because `list <<item` is an append.
        StringLiteral(
            r"<<[~-][\"'`]?(?P<tag>[A-Za-z_]\w*)[\"'`]?",
            r"^[ \t]*(?P<tag>[A-Za-z_]\w*)[ \t]*$",
            closer_is_pattern=True,
            body="heredoc",
        ),
        StringLiteral(
            r"<<[\"'`]?(?P<tag>[A-Z_][A-Z0-9_]*)\b[\"'`]?",
            r"^(?P<tag>[A-Z_][A-Z0-9_]*)[ \t]*$",
            closer_is_pattern=True,
            body="heredoc",
        ),
        _quoted('"', interpolation="#{"),
        _SINGLE_MULTILINE,
        _quoted("`", interpolation="#{"),
    ),
)

_PHP_CODE = LanguageSyntax(
    name="php-code",
    line_comments=(_SLASH_SLASH, LineComment(r"#(?!\[)")),
    block_comments=(_C_BLOCK,),
    strings=(
        StringLiteral(
            r"<<<[ \t]*[\"']?(?P<tag>[A-Za-z_]\w*)[\"']?",
            r"^[ \t]*(?P<tag>[A-Za-z_]\w*)\b",
            closer_is_pattern=True,
            body="heredoc",
        ),
        _DOUBLE_MULTILINE,
        _SINGLE_MULTILINE,
        _quoted("`"),
    ),
)

_PHP = LanguageSyntax(
    name="php",
    block_comments=(_HTML_COMMENT,),
    # NOTE: a "?>" inside a PHP string still ends the PHP block here.
    embedded=(EmbeddedBlock(r"<\?(?:php\b|=)?", "?>", "php-code"), _SCRIPT, _STYLE),
)

_SHELL = LanguageSyntax(
    name="shell",
    # "#" starts a comment only at the start of a word, so $#, ${#x} and a#b are code.
    line_comments=(LineComment("#", not_after=r"[^\s;|&()]"),),
    strings=(
        StringLiteral(
            r"<<-?[ \t]*[\"']?(?P<tag>[A-Za-z_][\w.-]*)[\"']?",
            r"^\t*(?P<tag>[A-Za-z_][\w.-]*)[ \t]*$",
            closer_is_pattern=True,
            body="heredoc",
            not_after="<",
        ),
        _quoted("$'"),
        _quoted("'", escape=""),
        _DOUBLE_MULTILINE,
        _quoted("`"),
    ),
)

_POWERSHELL = LanguageSyntax(
    name="powershell",
    line_comments=(LineComment("#", not_after=r"[^\s;|&(){}]"),),
    block_comments=(BlockComment("<#", "#>"),),
    strings=(
        StringLiteral(r'@"[ \t]*\n', '\n"@', escape=""),
        StringLiteral(r"@'[ \t]*\n", "\n'@", escape=""),
        _quoted('"', escape="`", doubled=True),
        _quoted("'", escape="", doubled=True),
    ),
)

_SQL = LanguageSyntax(
    name="sql",
    line_comments=(LineComment("--"),),
    block_comments=(_C_BLOCK,),
    strings=(
        _quoted("'", escape="", doubled=True),
        _quoted('"', escape="", doubled=True),
        _quoted("`", escape="", doubled=True, multiline=False),
        # PostgreSQL dollar quoting: $$...$$ or $tag$...$tag$. Positional
        # parameters such as $1 do not match because a tag starts with a letter.
        StringLiteral(r"\$(?P<tag>[A-Za-z_]\w*)?\$", "${tag}$", escape=""),
    ),
)

_HTML = LanguageSyntax(
    name="html",
    block_comments=(_HTML_COMMENT,),
    embedded=(_SCRIPT, _STYLE),
)

_XML = LanguageSyntax(
    name="xml",
    block_comments=(_HTML_COMMENT,),
    strings=(StringLiteral(r"<!\[CDATA\[", "]]>", escape=""),),
)

_CSS = LanguageSyntax(
    name="css",
    block_comments=(_C_BLOCK,),
    strings=(
        # An unquoted url(...) can contain "//", which is not a comment in any
        # style language.
        StringLiteral(r"url\(", ")", multiline=False),
        _DOUBLE,
        _SINGLE,
    ),
)
_SCSS = replace(_CSS, name="scss", line_comments=(_SLASH_SLASH,))

_YAML = LanguageSyntax(
    name="yaml",
    line_comments=(LineComment("#", not_after=r"\S"),),
    strings=(
        # Quotes open a string only where a value starts: "it's" inside a plain
        # value is text. Block scalars (| and >) are strings too.
        # NOTE: so a "#" comment inside a shell script held in `run: |` is not found.
        _quoted('"', after=":-[{,?"),
        _quoted("'", escape="", doubled=True, after=":-[{,?"),
        *(
            StringLiteral(
                re.escape(indicator) + r"[-+1-9]{0,2}(?=[ \t]*(?:#[^\n]*)?$)",
                "",
                body="indented",
                after=":-?",
            )
            for indicator in "|>"
        ),
    ),
)

_TOML = LanguageSyntax(
    name="toml",
    line_comments=(_HASH,),
    strings=(
        _quoted('"""'),
        _quoted("'''", escape=""),
        _DOUBLE,
        _quoted("'", escape="", multiline=False),
    ),
)

_INI = LanguageSyntax(name="ini", line_comments=(LineComment(";", after=""), LineComment("#", after="")))

_DOCKERFILE = LanguageSyntax(name="dockerfile", line_comments=(LineComment("#", after=""),))

_GITIGNORE = LanguageSyntax(name="gitignore", line_comments=(LineComment("#", after=""),))

_MAKEFILE = LanguageSyntax(
    name="makefile",
    # NOTE: make itself ignores quotes, so `X = "a # b"` ends at the "#" for make
    # but is read here as one string, as the shell reading a recipe line would.
    line_comments=(LineComment("#", not_after=r"\\"),),
    strings=(_DOUBLE, _SINGLE),
)

_CMAKE = LanguageSyntax(
    name="cmake",
    line_comments=(_HASH,),
    block_comments=(BlockComment(r"#\[(?P<level>=*)\[", "]{level}]"),),
    strings=(
        StringLiteral(r"\[(?P<level>=*)\[", "]{level}]", escape=""),
        _DOUBLE_MULTILINE,
    ),
)

_LUA = LanguageSyntax(
    name="lua",
    line_comments=(LineComment("--"),),
    block_comments=(BlockComment(r"--\[(?P<level>=*)\[", "]{level}]"),),
    strings=(
        StringLiteral(r"\[(?P<level>=*)\[", "]{level}]", escape=""),
        _DOUBLE,
        _SINGLE,
    ),
)

_HASKELL = LanguageSyntax(
    name="haskell",
    # "-->" and similar symbol runs are operators, not comments.
    line_comments=(LineComment(r"--+(?![!#$%&*+./<=>?@\\^|~:])"),),
    block_comments=(BlockComment(r"\{-", "-}", nests=True),),
    strings=(_DOUBLE, replace(_CHAR_WHOLE, not_after=r"[\w']")),
)

_ELIXIR = LanguageSyntax(
    name="elixir",
    line_comments=(_HASH,),
    strings=(
        _quoted('"""', interpolation="#{"),
        _quoted("'''", interpolation="#{"),
        _quoted('"', interpolation="#{"),
        _quoted("'", interpolation="#{"),
        # ?# and ?" are character codes, not a comment or a string.
        StringLiteral(r"\?(?:\\[^\n]|[^\s\\])", "", not_after=r"\w"),
    ),
)

_ERLANG = LanguageSyntax(
    name="erlang",
    line_comments=(LineComment("%"),),
    strings=(
        _quoted('"""', escape=""),
        _DOUBLE_MULTILINE,
        _quoted("'", multiline=False),
        # $% and $" are character literals.
        StringLiteral(r"\$(?:\\[^\n]|[^\n])", ""),
    ),
)

_R = LanguageSyntax(
    name="r",
    line_comments=(_HASH,),
    strings=(
        # Raw strings: r"(...)", R'[...]', r"--{...}--" and the like.
        *(
            StringLiteral(
                prefix + r"(?P<quote>[\"'])(?P<dashes>-*)" + re.escape(opening),
                closing + "{dashes}{quote}",
                escape="",
            )
            for prefix in "rR"
            for opening, closing in (("(", ")"), ("[", "]"), ("{", "}"))
        ),
        _DOUBLE_MULTILINE,
        _SINGLE_MULTILINE,
        _quoted("`", multiline=False),
    ),
)

_JULIA = LanguageSyntax(
    name="julia",
    line_comments=(_HASH,),
    block_comments=(BlockComment("#=", "=#", nests=True),),
    strings=(
        _quoted('"""'),
        _DOUBLE_MULTILINE,
        _quoted("`"),
        # After a name, a closing bracket or a quote, "'" is the transpose operator.
        replace(_CHAR_WHOLE, not_after=r"[\w)\]}'.]"),
    ),
)

_HCL = LanguageSyntax(
    name="hcl",
    line_comments=(_HASH, _SLASH_SLASH),
    block_comments=(_C_BLOCK,),
    strings=(
        StringLiteral(
            r"<<-?(?P<tag>[A-Za-z_]\w*)",
            r"^[ \t]*(?P<tag>[A-Za-z_]\w*)[ \t]*$",
            closer_is_pattern=True,
            body="heredoc",
        ),
        _quoted('"', multiline=False, interpolation="${"),
    ),
)

_GRAPHQL = LanguageSyntax(
    name="graphql",
    line_comments=(_HASH,),
    strings=(_quoted('"""'), _DOUBLE),
)

# NOTE: indented code blocks are not recognized, so an HTML comment shown in one counts.
_MARKDOWN = LanguageSyntax(
    name="markdown",
    block_comments=(_HTML_COMMENT,),
    strings=(
        # A fenced code block runs to a line holding a fence at least as long,
        # or to the end of the document when it is never closed. Only the first
        # 64 fence characters count, which keeps the closer pattern small.
        *(
            StringLiteral(
                f"{fence}(?P<more>{fence[0]}{{0,61}})",
                rf"^ {{0,3}}{fence}{{more}}{fence[0]}*[ \t]*$",
                escape="",
                closer_is_pattern=True,
                after="",
            )
            for fence in ("```", "~~~")
        ),
        StringLiteral("`(?P<ticks>`*)", "`{ticks}", escape="", multiline=False),
    ),
)

_VUE = replace(_HTML, name="vue")
_SVELTE = replace(_HTML, name="svelte")

LANGUAGES: dict[str, LanguageSyntax] = {
    syntax.name: syntax
    for syntax in (
        _PYTHON,
        _JAVASCRIPT,
        replace(_JAVASCRIPT, name="jsx"),
        _TYPESCRIPT,
        replace(_JAVASCRIPT, name="tsx"),
        _GO,
        _RUST,
        _JAVA,
        _KOTLIN,
        _C,
        _CPP,
        _CSHARP,
        _SWIFT,
        _SCALA,
        _DART,
        _GROOVY,
        _RUBY,
        _PHP,
        _SHELL,
        _POWERSHELL,
        _SQL,
        _HTML,
        _XML,
        _VUE,
        _SVELTE,
        _CSS,
        _SCSS,
        replace(_SCSS, name="less"),
        _YAML,
        _TOML,
        _INI,
        _DOCKERFILE,
        _MAKEFILE,
        _CMAKE,
        _LUA,
        _HASKELL,
        _ELIXIR,
        _ERLANG,
        _R,
        _JULIA,
        _HCL,
        _MARKDOWN,
        _JSON,
        _PROTOBUF,
        _GRAPHQL,
        _GITIGNORE,
        # The code inside <?php ... ?> has its own entry because the file-level
        # "php" entry describes the HTML around it. Touchpoints still report "php".
        _PHP_CODE,
    )
}
"""Syntax of every scannable language, by name."""

EXTENSIONS: dict[str, str] = {
    "py": "python",
    "pyi": "python",
    "pyw": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "jsx": "jsx",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "rs": "rust",
    "java": "java",
    "kt": "kotlin",
    "kts": "kotlin",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "c++": "cpp",
    "hh": "cpp",
    "hpp": "cpp",
    "hxx": "cpp",
    "h++": "cpp",
    "ipp": "cpp",
    "inl": "cpp",
    "cs": "csharp",
    "swift": "swift",
    "scala": "scala",
    "sc": "scala",
    "dart": "dart",
    "groovy": "groovy",
    "gradle": "groovy",
    "rb": "ruby",
    "rake": "ruby",
    "gemspec": "ruby",
    "php": "php",
    "phtml": "php",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "ksh": "shell",
    "ps1": "powershell",
    "psm1": "powershell",
    "psd1": "powershell",
    "sql": "sql",
    "html": "html",
    "htm": "html",
    "xhtml": "html",
    "xml": "xml",
    "xsd": "xml",
    "xsl": "xml",
    "xslt": "xml",
    "svg": "xml",
    "plist": "xml",
    "csproj": "xml",
    "vue": "vue",
    "svelte": "svelte",
    "css": "css",
    "scss": "scss",
    "less": "less",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "ini": "ini",
    "cfg": "ini",
    "dockerfile": "dockerfile",
    "mk": "makefile",
    "mak": "makefile",
    "cmake": "cmake",
    "lua": "lua",
    "hs": "haskell",
    "lhs": "haskell",
    "ex": "elixir",
    "exs": "elixir",
    "erl": "erlang",
    "hrl": "erlang",
    "r": "r",
    "jl": "julia",
    "tf": "hcl",
    "tfvars": "hcl",
    "hcl": "hcl",
    "md": "markdown",
    "markdown": "markdown",
    "json": "json",
    "jsonc": "json",
    "json5": "json",
    "proto": "protobuf",
    "graphql": "graphql",
    "gql": "graphql",
    "ipynb": NOTEBOOK,
}
"""Language of each lower-case file extension, without the dot."""

FILENAMES: dict[str, str] = {
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Makefile": "makefile",
    "makefile": "makefile",
    "GNUmakefile": "makefile",
    "CMakeLists.txt": "cmake",
    "Jenkinsfile": "groovy",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
    "Vagrantfile": "ruby",
    "Pipfile": "toml",
    ".bashrc": "shell",
    ".bash_profile": "shell",
    ".profile": "shell",
    ".zshrc": "shell",
    ".zprofile": "shell",
    ".editorconfig": "ini",
    ".gitconfig": "ini",
    ".gitmodules": "ini",
    ".npmrc": "ini",
    ".gitignore": "gitignore",
    ".gitattributes": "gitignore",
    ".dockerignore": "gitignore",
    ".npmignore": "gitignore",
    ".prettierignore": "gitignore",
    ".eslintignore": "gitignore",
    ".hgignore": "gitignore",
    "CODEOWNERS": "gitignore",
}
"""Language of well-known file names that have no telling extension, matched exactly."""

KERNEL_LANGUAGES: dict[str, str] = {
    "python": "python",
    "python3": "python",
    "ipython": "python",
    "r": "r",
    "julia": "julia",
    "javascript": "javascript",
    "js": "javascript",
    "typescript": "typescript",
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "zsh": "shell",
    "powershell": "powershell",
    "sql": "sql",
    "scala": "scala",
    "kotlin": "kotlin",
    "java": "java",
    "go": "go",
    "rust": "rust",
    "c": "c",
    "c++": "cpp",
    "cpp": "cpp",
    "c#": "csharp",
    "csharp": "csharp",
    "ruby": "ruby",
    "haskell": "haskell",
    "elixir": "elixir",
    "lua": "lua",
    "html": "html",
    "markdown": "markdown",
}
"""Language of each lower-case notebook kernel or cell language name."""


def language_for_path(path: str) -> str | None:
    """Return the language of a file from its name, or None when it is not scanned.

    Args:
        path: File path with ``/`` or ``\\`` separators. Only the last component is used.
    """
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    known = FILENAMES.get(name)
    if known is not None:
        return known

    lower = name.lower()
    if lower in ("dockerfile", "containerfile") or lower.startswith(("dockerfile.", "containerfile.")):
        return "dockerfile"

    stem, dot, extension = lower.rpartition(".")
    if not dot or not stem:
        return None
    return EXTENSIONS.get(extension)
